"""Ports: the narrow interfaces the domain code talks through.

Real adapters live in ``runtime.adapters`` (boto3, msgraph-sdk). They raise only errors from
``runtime.errors``; no vendor exception crosses a port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime


class ObjectStore(Protocol):
    """An S3-like bucket. Conditional writes fail with PreconditionFailed / AlreadyExists."""

    def get(self, key: str) -> StoredObject:
        """Raises NotFound when the key does not exist."""

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            if_none_match: bool = False) -> str:
        """Write and return the new ETag. ``if_none_match``: create-only (AlreadyExists);
        ``if_match``: compare-and-swap on the ETag (PreconditionFailed)."""

    def delete(self, key: str) -> None:
        """Delete; deleting a missing key is not an error."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under the prefix, all pages."""
