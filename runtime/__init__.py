"""Transient Trigger Runtime (ttr): multi-customer change notifications on Ray.

The public surface of the package is small: configuration (``runtime.domain.config``), the change
model (``runtime.domain.model``), the lifecycle (``runtime.services.lifecycle``) and the error tree
(``runtime.domain.errors``). Everything else is an implementation detail of the CLI and the actors.
"""

__version__ = "0.1.0"
