"""Provisioning against AWS (``ttr provision``, also the embedded stack's bootstrap) and the
preflight checks (``ttr doctor``)."""
