"""Logging set-up shared by the CLI process and every Ray worker (logs go to stderr)."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"


def setup_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if getattr(root, "_ttr_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TTR_LOG_LEVEL", "INFO"))
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "httpx", "azure"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._ttr_configured = True  # type: ignore[attr-defined]
