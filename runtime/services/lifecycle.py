"""The change lifecycle: the transition table (pure) and the submission sequence.

Every transition bumps ``version`` and appends one lifecycle modification whose ``seq`` is the
version it created. The writer stores the archive first (create-only for a submit, compare-and-swap
for the rest), then writes one trigger per customer (up to ``TRIGGER_WRITERS`` at once). A trigger
write that fails is reported, not hidden: the archive already holds the transition, so
``retrigger`` finishes the job safely.
"""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from runtime.domain.announcements import TRANSITIONS as ANNOUNCEMENT_TRANSITIONS
from runtime.domain.announcements import USER_FIELDS as ANNOUNCEMENT_FIELDS
from runtime.domain.announcements import is_announcement, new_announcement_id, validate_announcement
from runtime.domain.errors import IllegalTransition, InvalidInput, NotFound, StaleVersion, TtrError
from runtime.domain.model import (
    DRAFT_FIELDS,
    SYSTEM_FIELDS,
    USER_FIELDS,
    Trigger,
    append_modifications,
    check_change_id,
    draft_key,
    latest_lifecycle,
    lifecycle_entries,
    new_change_id,
    now_iso,
    parse_rfc3339,
    validate_change,
    validate_schedule,
)
from runtime.domain.rules import DRAFT_BOOKKEEPING, FREE_PREFIX, check_complete, check_known_fields, check_window
from runtime.ports import ObjectStore
from runtime.services.archive import ArchiveStore
from runtime.telemetry import metrics

# Trigger writes of one transition in flight at once: a change for 100 customers is 100 PUTs,
# one round trip each (tens of ms on S3), and the customers' actors start on theirs sooner.
TRIGGER_WRITERS = 16

ACTIONS = ("submit", "update", "approve", "reschedule", "complete", "cancel")

# action -> (statuses it may start from, status after, modification type)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "submit": (("draft", "new"), "submitted", "submitted"),
    "update": (("submitted",), "submitted", "updated"),
    "approve": (("submitted",), "approved", "approved"),
    "reschedule": (("submitted", "approved"), None, "rescheduled"),  # None: status unchanged
    "complete": (("approved",), "completed", "completed"),
    "cancel": (("submitted", "approved"), "cancelled", "cancelled"),
}


def transitions_of(obj: Mapping | None) -> dict[str, tuple[tuple[str, ...], str | None, str]]:
    """The transition table of the object's kind (a change's, or an announcement's)."""
    return ANNOUNCEMENT_TRANSITIONS if obj and is_announcement(obj) else TRANSITIONS


def allowed_actions(status: str, obj: Mapping | None = None) -> list[str]:
    return [a for a, (sources, _, _) in transitions_of(obj).items() if status in sources]


def check_transition(status: str, action: str, obj: Mapping | None = None) -> None:
    table = transitions_of(obj)
    what, article = ("announcement", "an") if obj and is_announcement(obj) else ("change", "a")
    if action not in table:
        raise InvalidInput(f"unknown action {action!r} for {article} {what}; known: {', '.join(table)}")
    sources, _, _ = table[action]
    if status not in sources:
        can = allowed_actions(status, obj)
        hint = f"; from {status} the {what} can: {', '.join(can)}" if can else f"; {status} is final"
        raise IllegalTransition(f"cannot {action} {article} {what} that is {status}{hint}")


def ever_approved(change: Mapping, before_seq: int | None = None) -> bool:
    return any(m["type"] == "approved" and (before_seq is None or m["seq"] < before_seq)
               for m in lifecycle_entries(change))


def apply_transition(change: Mapping, action: str, *, actor: str, now: str,
                     params: Mapping[str, Any] | None = None,
                     known_customers: Iterable[str] = (),
                     expected_version: int | None = None) -> dict:
    """Return the archive after ``action`` (pure: no I/O). Raises ConflictError or InvalidInput.

    ``params``: for ``update`` the new content fields; for ``reschedule`` ``start``/``end`` (and
    optionally ``timezone``); for any action an optional ``note`` recorded with the transition
    (kept apart from the change's own ``reason`` field, which an update may change).
    ``allow_past`` (update, reschedule) accepts a window that started already; ``before_start``
    (complete) accepts completing before the window starts (``runtime.domain.rules``).
    """
    params = dict(params or {})
    note = params.pop("note", None)
    allow_past = bool(params.pop("allow_past", False))
    before_start = bool(params.pop("before_start", False))
    status = change.get("status", "new") if change else "new"
    check_transition(status, action, change)
    version = int(change.get("version", 0) or 0)
    if expected_version is not None and expected_version != version:
        raise StaleVersion(f"change {change.get('changeId')} is at version {version}, not {expected_version}")
    sources, new_status, mod_type = transitions_of(change)[action]
    out = json.loads(json.dumps(change))  # deep copy, unknown fields included
    out.setdefault("modifications", [])
    extra: dict[str, Any] = {}

    if action == "update":
        check_known_fields(params)
        content = {k: v for k, v in params.items() if k in USER_FIELDS or k.startswith(FREE_PREFIX)}
        if not content:
            raise InvalidInput(f"update: nothing to change (updatable fields: {', '.join(USER_FIELDS)})",
                               field="update")
        candidate = {**out, **content}
        candidate = validate_change(candidate, known_customers)
        changed = sorted(k for k in content if out.get(k) != candidate.get(k))
        if not changed:
            raise InvalidInput("update: the new content is identical to the current change", field="update")
        if "schedule" in changed:
            check_window(candidate["schedule"], now, allow_past=allow_past)
        before = list(out.get("customers", []))
        out.update({k: candidate[k] for k in content})
        extra["fields"] = changed
        added = [c for c in out["customers"] if c not in before]
        removed = [c for c in before if c not in out["customers"]]
        if added:
            extra["addedCustomers"] = added
        if removed:
            extra["removedCustomers"] = removed
    elif action == "reschedule":
        sched = dict(out.get("schedule") or {})
        if "start" not in params or "end" not in params:
            raise InvalidInput("reschedule: both --start and --end are required", field="reschedule")
        previous = dict(sched)
        sched["implementationStart"] = params["start"]
        sched["implementationEnd"] = params["end"]
        if params.get("timezone"):
            sched["timezone"] = params["timezone"]
        out["schedule"] = validate_schedule(sched)
        check_window(out["schedule"], now, allow_past=allow_past)
        if (out["schedule"]["implementationStart"], out["schedule"]["implementationEnd"],
                out["schedule"]["timezone"]) == (previous.get("implementationStart"),
                                                 previous.get("implementationEnd"), previous.get("timezone")):
            raise InvalidInput("reschedule: the new schedule is the same as the current one", field="reschedule")
        extra["previousSchedule"] = previous
        extra["schedule"] = dict(out["schedule"])
    elif action == "cancel":
        extra["wasApproved"] = ever_approved(out)
    elif action == "complete":
        check_complete(out, now, before_start=before_start)

    seq = version + 1
    out["version"] = seq
    if new_status is not None:
        out["status"] = new_status
    entry = {"type": mod_type, "timestamp": now, "actor": actor, "seq": seq,
             "customers": list(out.get("customers", [])), **extra}
    if note:
        entry["note"] = str(note)
    append_modifications(out, [entry])
    return out


def new_archive(content: Mapping, *, change_id: str, actor: str, now: str,
                known_customers: Iterable[str], allow_past: bool = False, author: str | None = None,
                draft_authors: Iterable[str] = ()) -> dict:
    """The archive of a newly submitted change (version 1, one ``submitted`` record).

    From a draft: ``author`` (the draft's creator) stays ``createdBy``, the ``submitted`` record's
    actor is who submitted it, and ``draftAuthors`` keeps everyone who wrote the draft (four-eyes).
    """
    data = validate_change(content, known_customers)
    check_window(data["schedule"], now, allow_past=allow_past)
    for f in SYSTEM_FIELDS + DRAFT_FIELDS:
        if f in data and f not in ("changeId",):
            data.pop(f)
    base = {"changeId": change_id, **{k: v for k, v in data.items() if k != "changeId"},
            "status": "new", "version": 0, "createdAt": now, "createdBy": author or actor, "modifications": []}
    base.setdefault("meeting", {"required": False})
    out = apply_transition(base, "submit", actor=actor, now=now, known_customers=known_customers)
    writers = sorted({str(a) for a in (author, *draft_authors) if a})
    if writers:
        out["modifications"][-1]["draftAuthors"] = writers
    return out


def new_announcement(content: Mapping, *, announcement_id: str, actor: str, now: str,
                     known_customers: Iterable[str], known_topics: Iterable[str] | None = None,
                     allow_past: bool = False) -> dict:
    """The archive of a newly submitted announcement (version 1, one ``submitted`` record):
    the same rules as a change (unknown fields with a suggestion, ``x-`` free; a meeting's
    window not in the past), its own fields and transitions (``runtime.domain.announcements``)."""
    check_known_fields(content, top=("changeId",) + ANNOUNCEMENT_FIELDS, also=("kind",))
    if content.get("kind") not in (None, "announcement"):
        raise InvalidInput(f"kind: {content.get('kind')!r}; an announcement is of kind announcement", field="kind")
    data = validate_announcement(content, known_customers, known_topics=known_topics)
    if data.get("schedule") is not None:
        check_window(data["schedule"], now, allow_past=allow_past)
    base = {"changeId": announcement_id, "kind": "announcement",
            **{k: v for k, v in data.items() if k not in SYSTEM_FIELDS + DRAFT_FIELDS + ("kind",)},
            "status": "new", "version": 0, "createdAt": now, "createdBy": actor, "modifications": []}
    base.setdefault("meeting", {"required": False})
    return apply_transition(base, "submit", actor=actor, now=now, known_customers=known_customers)


# ---------------------------------------------------------------------------------------------
# The submission sequence (archive first, then triggers)


@dataclass
class TransitionResult:
    change: dict
    action: str
    seq: int
    triggers_written: list[str] = field(default_factory=list)
    triggers_failed: dict[str, str] = field(default_factory=dict)

    @property
    def change_id(self) -> str:
        return self.change["changeId"]

    @property
    def complete(self) -> bool:
        return not self.triggers_failed


class Lifecycle:
    """The writer side used by the CLI and the web API."""

    def __init__(self, store: ObjectStore, customers: Iterable[str], *,
                 clock: Callable[[], str] = now_iso, topics: Iterable[str] | None = None):
        self.store = store
        self.archive = ArchiveStore(store)
        self.customers = tuple(customers)
        self.clock = clock
        self.topics = tuple(topics) if topics is not None else None  # the configured topics

    # drafts ------------------------------------------------------------------------------
    def save_draft(self, content: Mapping, *, actor: str) -> str:
        check_known_fields(content, also=DRAFT_BOOKKEEPING)
        editors = [str(e) for e in (content.get("editors") or []) if e]
        data = validate_change({k: v for k, v in content.items() if k != "editors"}, self.customers, partial=True)
        change_id = data.get("changeId") or new_change_id()
        check_change_id(change_id)
        if self.archive.exists(change_id):
            from runtime.domain.errors import AlreadyExists
            raise AlreadyExists(f"change {change_id} is already submitted; drafts are for new changes")
        now = self.clock()
        data.update({"changeId": change_id, "status": "draft", "modifiedAt": now, "modifiedBy": actor})
        data.setdefault("createdAt", now)
        data.setdefault("createdBy", actor)
        # everyone who wrote the draft: kept into the submitted record, for four-eyes
        data["editors"] = editors + ([actor] if actor not in editors else [])
        self.store.put(draft_key(change_id), _dump(data))
        return change_id

    def load_draft(self, change_id: str) -> dict:
        obj = self.store.get(draft_key(change_id))
        try:
            return json.loads(obj.body)
        except ValueError:
            raise InvalidInput(f"draft {change_id} is not valid JSON") from None

    # transitions -------------------------------------------------------------------------
    def submit(self, content: Mapping, *, actor: str, draft_id: str | None = None,
               allow_past: bool = False) -> TransitionResult:
        check_known_fields(content)
        author, draft_authors = None, []
        if draft_id is not None:
            draft = self.load_draft(draft_id)
            check_known_fields(draft, also=DRAFT_BOOKKEEPING)
            author = draft.get("createdBy") or None
            draft_authors = [e for e in (draft.get("editors") or []) + [draft.get("modifiedBy")] if e]
            content = {**draft, **{k: v for k, v in content.items()}}
            content["changeId"] = draft_id
        change_id = content.get("changeId") or new_change_id()
        check_change_id(change_id)
        change = new_archive(content, change_id=change_id, actor=actor, now=self.clock(),
                             known_customers=self.customers, allow_past=allow_past, author=author,
                             draft_authors=draft_authors)
        self.archive.create(change)  # create-only: AlreadyExists if the id is taken
        if draft_id is not None:
            try:
                self.store.delete(draft_key(draft_id))
            except TtrError:
                pass  # the archive is the truth now; a stale draft is harmless
        return self._trigger(change, "submit")

    def announce(self, content: Mapping, *, actor: str, allow_past: bool = False) -> TransitionResult:
        """Submit an announcement: archive first (create-only), then one trigger per customer."""
        announcement_id = new_announcement_id()
        obj = new_announcement(content, announcement_id=announcement_id, actor=actor, now=self.clock(),
                               known_customers=self.customers, known_topics=self.topics,
                               allow_past=allow_past)
        self.archive.create(obj)
        return self._trigger(obj, "submit")

    def transition(self, change_id: str, action: str, *, actor: str,
                   params: Mapping[str, Any] | None = None,
                   expected_version: int | None = None) -> TransitionResult:
        if action == "submit":
            raise InvalidInput("use submit() for new changes")
        check_change_id(change_id)
        now = self.clock()

        def mutate(current: dict) -> dict:
            return apply_transition(current, action, actor=actor, now=now, params=params,
                                    known_customers=self.customers,
                                    expected_version=expected_version)

        change = self.archive.update(change_id, mutate)
        return self._trigger(change, action)

    def retrigger(self, change_id: str, customers: Iterable[str] | None = None) -> TransitionResult:
        change, _ = self.archive.load(change_id)
        latest = latest_lifecycle(change)
        if latest is None:
            raise InvalidInput(f"change {change_id} has no lifecycle transitions to process")
        on_change = list(change.get("customers", []))
        wanted = list(customers) if customers else on_change
        for c in wanted:
            if c not in on_change:
                raise InvalidInput(f"customer {c!r} is not on change {change_id} "
                                   f"(its customers: {', '.join(on_change)})")
        action = _action_of(latest["type"])
        return self._trigger(change, action, only=wanted)

    def _trigger(self, change: dict, action: str, only: Iterable[str] | None = None) -> TransitionResult:
        # A customer the latest transition took off the change is woken too: it is told once
        # that the change no longer affects it (runtime.domain.processing).
        seq = int(change["version"])
        result = TransitionResult(change=change, action=action, seq=seq)
        now = self.clock()
        targets = list(only) if only is not None else list(change.get("customers", [])) + just_removed(change)

        def write(code: str) -> TtrError | None:
            trig = Trigger(change["changeId"], code, seq, action, now)
            try:
                self.store.put(trig.key, _dump(trig.to_json()))
            except TtrError as exc:
                return exc
            return None

        if len(targets) > 1:
            with ThreadPoolExecutor(min(TRIGGER_WRITERS, len(targets)), thread_name_prefix="ttr-trigger") as pool:
                # each write in a copy of this context: the caller's trace reaches the store's spans
                futures = [pool.submit(contextvars.copy_context().run, write, code) for code in targets]
                outcomes = [f.result() for f in futures]
        else:
            outcomes = [write(code) for code in targets]
        for code, exc in zip(targets, outcomes):   # reported in the customers' order
            if exc is None:
                result.triggers_written.append(code)
                metrics().triggers_created.add(1, {"tenant": code, "action": action,
                                                   "kind": change.get("kind") or "change"})
            else:
                result.triggers_failed[code] = str(exc)
                metrics().trigger_writes_failed.add(1, {"tenant": code})
        return result

    # reads -------------------------------------------------------------------------------
    def show(self, change_id: str) -> dict:
        change, _ = self.archive.load(change_id)
        return change

    def list(self, status: str | None = None, customer: str | None = None,
             kind: str | None = None) -> list[dict]:
        """The archive's objects, newest first; ``kind`` ("change", "announcement") filters."""
        out = []
        for info in self.store.list("archive/"):
            if not info.key.endswith(".json"):
                continue
            try:
                change = json.loads(self.store.get(info.key).body)
            except (NotFound, ValueError):
                continue  # deleted meanwhile, or not ours to judge here
            if status and change.get("status") != status:
                continue
            if customer and customer not in change.get("customers", []):
                continue
            if kind and (change.get("kind") or "change") != kind:
                continue
            out.append(change)
        out.sort(key=lambda c: c.get("createdAt", ""), reverse=True)
        return out


def _action_of(mod_type: str) -> str:
    return {"submitted": "submit", "updated": "update", "approved": "approve",
            "rescheduled": "reschedule", "completed": "complete", "cancelled": "cancel"}[mod_type]


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False).encode("utf-8")


__all__ = ["ACTIONS", "TRANSITIONS", "Lifecycle", "TransitionResult", "apply_transition",
           "allowed_actions", "check_transition", "ever_approved", "new_archive", "parse_rfc3339"]


def just_removed(change: Mapping) -> list[str]:
    """The customers on the previous lifecycle transition that the latest one took off."""
    entries = lifecycle_entries(change)
    if len(entries) < 2:
        return []
    now_on = set(change.get("customers") or [])
    before = entries[-2].get("customers")
    return [c for c in (before if isinstance(before, list) else []) if c not in now_on]
