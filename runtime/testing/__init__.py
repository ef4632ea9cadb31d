"""ttr's own test harness: in-memory doubles of the ports, fault injection through the adapters' seams and the chaos runner.

Nothing here is imported by the production code paths; the chaos actors are subclasses of the
real ones with botocore event hooks installed (``AwsClients.add_hook``)."""
