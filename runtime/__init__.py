"""Transient Trigger Runtime (ttr): multi-customer change notifications on Ray.

The public surface of the package is small: configuration (``runtime.config``), the change
model (``runtime.model``), the lifecycle (``runtime.lifecycle``) and the error tree
(``runtime.errors``). Everything else is an implementation detail of the CLI and the actors.
"""

__version__ = "0.1.0"
