"""Operations: provisioning the real AWS resources and the preflight checks (``ttr provision``,
``ttr doctor``). The ``*_commands`` modules are light (argparse only); the work is imported by
the handlers that need it."""
