"""Thin Ray actors around the ports in ``runtime``: CustomerActor, ArchiveActor, MeetingCoordinator."""
