"""Listing and searching changes without stopping at 1,000 objects.

Every request lists the whole prefix (all pages; keys and ETags only, 1,000 per call) and reads
only the objects whose ETag changed since the last request, into a small per-process summary
cache. Filtering, counting and cursor pagination then run in memory on the summaries. The
original portal did one 1,000-key listing and then one GET per object on every request.

Cursors are opaque to clients: the sort key of the last item returned, so a page boundary holds
still while new changes arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Callable, Iterable, Mapping

from runtime.domain.errors import InvalidInput, NotFound, TtrError
from runtime.domain.model import TEXT_FIELDS, lifecycle_entries, parse_rfc3339
from runtime.domain.processing import plan
from runtime.ports import ObjectStore
from runtime.services.review import open_request
from runtime.web._auth import shaped_by, submitted_by

SEARCH_TEXT_LIMIT = 4000  # characters per long text field kept for search
MAX_PAGE = 200
DEFAULT_PAGE = 25


def summarize_change(change: Mapping) -> dict:
    """The list view of an archive (also what filters and counts run on)."""
    sched = change.get("schedule") or {}
    customers = list(change.get("customers") or [])
    pending: list[str] = []
    for c in customers:
        try:
            if plan(change, c).steps:
                pending.append(c)
        except TtrError:
            continue
    entries = lifecycle_entries(change)
    updated = max([str(m.get("timestamp", "")) for m in change.get("modifications", []) or []
                   if isinstance(m, Mapping)] + [str(change.get("createdAt", ""))])
    meta = change.get("meetingMetadata") or {}
    return {
        "changeId": change.get("changeId"),
        "kind": change.get("kind") or "change",
        "type": change.get("type"),          # an announcement's type
        "title": change.get("title", ""),
        "status": change.get("status"),
        "version": change.get("version"),
        "customers": customers,
        "createdAt": change.get("createdAt", ""),
        "createdBy": change.get("createdBy", ""),
        "submittedBy": submitted_by(change),
        "editedBy": shaped_by(change),
        "updatedAt": updated,
        "lastTransition": entries[-1]["type"] if entries else None,
        "schedule": {k: sched.get(k) for k in ("implementationStart", "implementationEnd", "timezone")},
        "meetingRequired": bool((change.get("meeting") or {}).get("required")),
        "joinUrl": meta.get("joinUrl"),
        "pendingCustomers": pending,
        "tickets": dict(change.get("tickets") or {}),
        "changesRequested": open_request(change),
    }


def summarize_draft(draft: Mapping) -> dict:
    sched = draft.get("schedule") or {}
    return {
        "changeId": draft.get("changeId"),
        "title": draft.get("title") or "",
        "status": "draft",
        "customers": list(draft.get("customers") or []),
        "createdAt": draft.get("createdAt", ""),
        "createdBy": draft.get("createdBy", ""),
        "updatedAt": draft.get("modifiedAt", draft.get("createdAt", "")),
        "schedule": {k: sched.get(k) for k in ("implementationStart", "implementationEnd", "timezone")},
    }


def _search_text(doc: Mapping) -> str:
    parts = [str(doc.get("changeId", "")), str(doc.get("title", "")), str(doc.get("createdBy", "")),
             " ".join(str(c) for c in doc.get("customers") or [])]
    parts += [str(v) for v in (doc.get("tickets") or {}).values() if v]
    parts += [str(doc.get(f) or "")[:SEARCH_TEXT_LIMIT] for f in TEXT_FIELDS]
    return "\n".join(parts).lower()


@dataclass
class _Entry:
    etag: str
    summary: dict
    text: str


class ObjectIndex:
    """Summaries of every JSON object under ``prefix``, refreshed by ETag."""

    def __init__(self, store: ObjectStore, prefix: str, summarize: Callable[[Mapping], dict],
                 *, workers: int = 8):
        self.store = store
        self.prefix = prefix
        self.summarize = summarize
        self.workers = workers
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _load(self, key: str, etag: str) -> tuple[str, _Entry | None]:
        try:
            obj = self.store.get(key)
            doc = json.loads(obj.body)
        except (NotFound, ValueError):
            return key, None  # deleted meanwhile, or not a document: not listed
        if not isinstance(doc, dict) or not doc.get("changeId"):
            return key, None
        return key, _Entry(etag=obj.etag or etag, summary=self.summarize(doc), text=_search_text(doc))

    def refresh(self) -> list[tuple[dict, str]]:
        listed = {info.key: info.etag for info in self.store.list(self.prefix) if info.key.endswith(".json")}
        with self._lock:
            stale = [(k, e) for k, e in listed.items()
                     if k not in self._entries or self._entries[k].etag != e]
        loaded: list[tuple[str, _Entry | None]] = []
        if len(stale) > 4 and self.workers > 1:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ttr-index") as pool:
                loaded = list(pool.map(lambda ke: self._load(*ke), stale))
        else:
            loaded = [self._load(k, e) for k, e in stale]
        with self._lock:
            for k, entry in loaded:
                if entry is None:
                    self._entries.pop(k, None)
                else:
                    self._entries[k] = entry
            for k in list(self._entries):
                if k not in listed:
                    del self._entries[k]
            return [(e.summary, e.text) for e in self._entries.values()]


# ---------------------------------------------------------------------------------------------
# Filters and pagination (pure)


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    customer: str | None = None
    text: str | None = None
    date_from: datetime | None = None   # the change window overlaps [date_from, date_to]
    date_to: datetime | None = None
    created_by: str | None = None
    kind: str | None = "change"         # changes by default; "announcement"; None: every kind

    @property
    def active(self) -> bool:
        return any(v for v in (self.status, self.customer, self.text, self.date_from, self.date_to,
                               self.created_by))


def parse_date(value: str | None, field: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a whole UTC day) or an RFC 3339 timestamp."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    try:
        d = date.fromisoformat(value)
        return datetime.combine(d, time.max if end else time.min, tzinfo=timezone.utc)
    except ValueError:
        pass
    try:
        return parse_rfc3339(value, field)
    except InvalidInput:
        raise InvalidInput(f"{field}: {value!r} is not a date (YYYY-MM-DD) or an RFC 3339 timestamp",
                           field=field) from None


def _window(summary: Mapping) -> tuple[datetime, datetime] | None:
    sched = summary.get("schedule") or {}
    try:
        start = parse_rfc3339(sched.get("implementationStart"), "start")
        end = parse_rfc3339(sched.get("implementationEnd") or sched.get("implementationStart"), "end")
    except InvalidInput:
        return None
    return start, end


def matches(summary: Mapping, text: str, f: Filters) -> bool:
    if f.kind and (summary.get("kind") or "change") != f.kind:
        return False
    if f.status and summary.get("status") != f.status:
        return False
    if f.customer and f.customer not in (summary.get("customers") or []):
        return False
    if f.created_by and str(summary.get("createdBy", "")).lower() != f.created_by.lower():
        return False
    if f.text:
        words = f.text.lower().split()
        if not all(w in text for w in words):
            return False
    if f.date_from or f.date_to:
        win = _window(summary)
        if win is None:
            return False
        start, end = win
        if f.date_from and end < f.date_from:
            return False
        if f.date_to and start > f.date_to:
            return False
    return True


def sort_key(summary: Mapping) -> tuple[str, str]:
    return (str(summary.get("createdAt") or ""), str(summary.get("changeId") or ""))


def encode_cursor(summary: Mapping) -> str:
    raw = json.dumps(list(sort_key(summary)), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            return value[0], value[1]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidInput("cursor: not a cursor from this API (use nextCursor from the previous page)", field="cursor")


@dataclass(frozen=True)
class Page:
    items: list[dict]
    total: int
    next_cursor: str | None


def paginate(items: Iterable[dict], *, cursor: str | None, limit: int) -> Page:
    """Newest first (createdAt, then changeId, descending); ``cursor`` = after that item."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: from 1 to {MAX_PAGE}", field="limit")
    ordered = sorted(items, key=sort_key, reverse=True)
    total = len(ordered)
    if cursor:
        after = decode_cursor(cursor)
        ordered = [s for s in ordered if sort_key(s) < after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(items=page, total=total, next_cursor=encode_cursor(page[-1]) if more and page else None)


class Snapshot:
    """One listing of the bucket, shared by every query of one request (each prefix listed once)."""

    def __init__(self, index: "ChangeIndex"):
        self.index = index
        self._rows: dict[bool, list[tuple[dict, str]]] = {}

    def rows(self, drafts: bool = False) -> list[tuple[dict, str]]:
        if drafts not in self._rows:
            self._rows[drafts] = (self.index.drafts if drafts else self.index.changes).refresh()
        return self._rows[drafts]

    def search(self, f: Filters, *, cursor: str | None = None, limit: int = DEFAULT_PAGE,
               drafts: bool = False) -> Page:
        return paginate([s for s, t in self.rows(drafts) if matches(s, t, f)], cursor=cursor, limit=limit)

    def counts(self) -> dict[str, int]:
        out = {"submitted": 0, "approved": 0, "completed": 0, "cancelled": 0}
        for s, _ in self.rows():
            if s.get("status") in out and (s.get("kind") or "change") == "change":
                out[s["status"]] += 1
        out["total"] = sum(out.values())
        return out


class ChangeIndex:
    """The archive and the drafts, summarised; the queries the API and pages run."""

    def __init__(self, store: ObjectStore):
        self.changes = ObjectIndex(store, "archive/", summarize_change)
        self.drafts = ObjectIndex(store, "drafts/", summarize_draft)

    def snapshot(self) -> Snapshot:
        return Snapshot(self)

    def search(self, f: Filters, *, cursor: str | None = None, limit: int = DEFAULT_PAGE,
               drafts: bool = False) -> Page:
        return self.snapshot().search(f, cursor=cursor, limit=limit, drafts=drafts)

    def counts(self) -> dict[str, int]:
        return self.snapshot().counts()
