"""The application services, over the ports (``runtime.ports``): what happens to a trigger
(handler, consumer), the lifecycle writer, the archive and ledger, meetings, feedback, orphans,
re-drive, review, contacts and the status model. They import no adapter, actor, web or CLI code."""
