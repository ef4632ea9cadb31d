"""Who is on each customer's contact list: import files, topic lists and Identity Center sync.

Pure decisions only (no I/O): the CLI (``runtime/cli/audience.py``) and the portal read the
contacts through the tenant's SES adapter, ask here what to change, print the plan and then
apply it through the adapter (``runtime/services/contacts.py``).

Rules every plan keeps:
- A contact who unsubscribed from everything is never re-subscribed (``UnsubscribeAll`` is only
  ever kept as it is).
- Identity sync marks the contacts it created (``managedBy`` in the contact's attributes) and
  records the preferences it set (``syncTopics``); it changes a topic only while the contact
  still holds what sync set there, so a choice a person made themselves is kept, and it never
  touches a contact it did not create.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from runtime.domain.errors import InvalidInput
from runtime.domain.recipients import OPT_IN, OPT_OUT, Contact, valid_address

STATUSES = (OPT_IN, OPT_OUT)
MANAGED_BY = "managedBy"
SYNC_MARK = "ttr-identity-sync"
SYNC_TOPICS = "syncTopics"   # what identity sync set last: "topic=OPT_IN;topic2=OPT_OUT"


# ---------------------------------------------------------------------------------------------
# What a file or a sync wants, and what to do about it


@dataclass(frozen=True)
class Wanted:
    """One contact as an import file (or identity sync) wants it: explicit topic choices only."""

    email: str
    topics: Mapping[str, str] = field(default_factory=dict, hash=False)
    line: int = 0   # where it came from (file line, or JSON entry number), for error messages


@dataclass(frozen=True)
class Action:
    """One line of a plan: ``kind`` is add, update, unsubscribe or unchanged.

    ``preferences`` and ``attributes`` are the contact's complete new values (SES replaces them
    whole; ``attributes=None``: keep what the contact has); ``note`` says why, in words.
    """

    kind: str
    email: str
    preferences: Mapping[str, str] = field(default_factory=dict, hash=False)
    attributes: Mapping[str, str] | None = field(default=None, hash=False)
    changed: tuple[str, ...] = ()
    note: str = ""
    unsubscribe_all: bool = False   # kept as the contact has it: a plan never changes it

    @property
    def writes(self) -> bool:
        return self.kind != "unchanged"

    def line(self) -> str:
        what = ", ".join(self.changed)
        parts = [f"{self.kind} {self.email}"]
        if what:
            parts.append(what)
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)


def _by_email(contacts: Iterable[Contact]) -> dict[str, Contact]:
    return {c.email.lower(): c for c in contacts}


def _fmt(topics: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(f"{t}={s}" for t, s in topics.items())


def plan_import(current: Iterable[Contact], wanted: Sequence[Wanted]) -> list[Action]:
    """What an import changes: new contacts are added, explicit cells override, empty cells keep.

    A contact who unsubscribed from everything is left exactly as it is.
    """
    have = _by_email(current)
    out: list[Action] = []
    for w in wanted:
        c = have.get(w.email.lower())
        if c is None:
            out.append(Action("add", w.email, dict(w.topics), changed=_fmt(w.topics)))
            continue
        diff = {t: s for t, s in w.topics.items() if c.preferences.get(t) != s}
        if c.unsubscribe_all or not diff:
            out.append(Action("unchanged", c.email, dict(c.preferences), dict(c.attributes), unsubscribe_all=c.unsubscribe_all,
                              note="unsubscribed from everything; not re-subscribed" if diff else ""))
            continue
        out.append(Action("update", c.email, {**c.preferences, **diff}, None, _fmt(diff)))
    return out


# ---------------------------------------------------------------------------------------------
# Import files


def parse_import(text: str, *, fmt: str, topics: Sequence[str], source: str = "FILE") -> list[Wanted]:
    """Read a whole import file, or raise InvalidInput naming the first bad line (nothing read
    is used then). ``fmt``: csv or json. ``topics``: the configured topic names."""
    if fmt == "json":
        return _parse_json(text, topics, source)
    if fmt == "csv":
        return _parse_csv(text, topics, source)
    raise InvalidInput(f"{source}: unknown format {fmt!r} (csv or json)")


def format_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".csv"):
        return "csv"
    raise InvalidInput(f"{path}: cannot tell the format: name the file .csv or .json")


def check_row(email: object, topics: Mapping, known: Sequence[str], where: str,
              seen: dict[str, str] | None = None) -> Wanted:
    """One contact of an import (or ``contacts add``), checked; InvalidInput names ``where``."""
    seen = {} if seen is None else seen
    if not valid_address(email):
        raise InvalidInput(f"{where}: {email!r} is not an email address", field="email")
    assert isinstance(email, str)
    clean: dict[str, str] = {}
    for t, s in topics.items():
        if t not in known:
            raise InvalidInput(f"{where}: unknown topic {t!r} (configured: {', '.join(known)})", field="topics")
        if s in (None, ""):
            continue
        if not isinstance(s, str) or s.strip().upper() not in STATUSES:
            raise InvalidInput(f"{where}: topic {t}: {s!r} is not OPT_IN, OPT_OUT or empty", field="topics")
        clean[t] = s.strip().upper()
    key = email.lower()
    if key in seen:
        raise InvalidInput(f"{where}: {email} is listed twice (first at {seen[key]})", field="email")
    seen[key] = where
    return Wanted(email, clean)


def _parse_csv(text: str, known: Sequence[str], source: str) -> list[Wanted]:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise InvalidInput(f"{source} line 1: empty file; expected a header email,topic:NAME,...")
    header = [h.strip() for h in rows[0]]
    if not header or header[0].lower() != "email":
        raise InvalidInput(f"{source} line 1: the header must start with 'email' (then topic:NAME columns)")
    names: list[str] = []
    for h in header[1:]:
        if not h.startswith("topic:"):
            raise InvalidInput(f"{source} line 1: column {h!r} is not topic:NAME")
        name = h.removeprefix("topic:")
        if name not in known:
            raise InvalidInput(f"{source} line 1: unknown topic {name!r} (configured: {', '.join(known)})")
        if name in names:
            raise InvalidInput(f"{source} line 1: topic {name!r} appears twice")
        names.append(name)
    out: list[Wanted] = []
    seen: dict[str, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{source} line {n}"
        if len(row) != len(header):
            raise InvalidInput(f"{where}: {len(row)} cells, the header has {len(header)}")
        w = check_row(row[0].strip(), dict(zip(names, (c.strip() for c in row[1:]))), known, where, seen)
        out.append(Wanted(w.email, w.topics, n))
    return out


def _parse_json(text: str, known: Sequence[str], source: str) -> list[Wanted]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{source} line {getattr(exc, 'lineno', 1)}: not JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(data, list):
        raise InvalidInput(f"{source}: expected a JSON list of {{email, topics}}")
    lines = _json_entry_lines(text, len(data))
    out: list[Wanted] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(data):
        where = f"{source} line {lines[i]} (entry {i + 1})"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected an object {{email, topics}}")
        extra = sorted(set(item) - {"email", "topics"})
        if extra:
            raise InvalidInput(f"{where}: unknown field(s) {extra} (email, topics)")
        topics = item.get("topics") or {}
        if not isinstance(topics, dict):
            raise InvalidInput(f"{where}: topics must be an object {{NAME: OPT_IN|OPT_OUT}}")
        w = check_row(item.get("email"), topics, known, where, seen)
        out.append(Wanted(w.email, w.topics, lines[i]))
    return out


def _json_entry_lines(text: str, count: int) -> list[int]:
    """The line each top-level entry of a (valid) JSON list starts on, so errors name the line."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    pos = text.index("[") + 1
    while len(lines) < count:
        while text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
    return lines


def export(contacts: Iterable[Contact], topics: Sequence[str], fmt: str) -> str:
    """What ``import`` reads back: every contact's explicit choices (empty cell: no choice)."""
    rows = sorted(contacts, key=lambda c: c.email.lower())
    if fmt == "json":
        return json.dumps([{"email": c.email, "topics": {t: c.preferences[t] for t in topics if t in c.preferences}}
                           for c in rows], indent=2) + "\n"
    if fmt != "csv":
        raise InvalidInput(f"--format: {fmt!r} is not csv or json")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["email", *(f"topic:{t}" for t in topics)])
    for c in rows:
        w.writerow([c.email, *(c.preferences.get(t, "") for t in topics)])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# The contact list's topics


@dataclass(frozen=True)
class TopicStep:
    kind: str     # add | update | remove | unchanged
    name: str
    display: str = ""
    default: str = ""
    was: str = ""

    def line(self) -> str:
        if self.kind == "remove":
            return f"remove topic {self.name}"
        text = f"{self.kind} topic {self.name} ({self.display!r}, default {self.default})"
        return text + (f"; was {self.was}" if self.was else "")


def plan_topics(current: Iterable[Mapping], configured: Iterable) -> list[TopicStep]:
    """Steps that make a contact list carry exactly the configured topics (``TopicConfig``s)."""
    have = {t.get("TopicName"): t for t in current}
    steps: list[TopicStep] = []
    names = set()
    for t in configured:
        names.add(t.name)
        cur = have.get(t.name)
        if cur is None:
            steps.append(TopicStep("add", t.name, t.display, t.default))
            continue
        was = []
        if cur.get("DisplayName") != t.display:
            was.append(f"{cur.get('DisplayName')!r}")
        if (cur.get("DefaultSubscriptionStatus") or OPT_OUT) != t.default:
            was.append(f"default {cur.get('DefaultSubscriptionStatus')}")
        steps.append(TopicStep("update" if was else "unchanged", t.name, t.display, t.default, ", ".join(was)))
    for name in have:
        if name not in names:
            steps.append(TopicStep("remove", str(name)))
    return steps


def ses_topics(configured: Iterable) -> list[dict]:
    """The ``Topics`` argument of Create/UpdateContactList for the configured topics."""
    return [{"TopicName": t.name, "DisplayName": t.display, "DefaultSubscriptionStatus": t.default}
            for t in configured]


# ---------------------------------------------------------------------------------------------
# Identity Center sync


def sync_topics(attributes: Mapping[str, str]) -> dict[str, str]:
    """What identity sync set last on a contact, from its attributes."""
    out: dict[str, str] = {}
    for part in str(attributes.get(SYNC_TOPICS, "")).split(";"):
        name, eq, status = part.partition("=")
        if eq and name and status in STATUSES:
            out[name] = status
    return out


def managed(contact: Contact) -> bool:
    return contact.attributes.get(MANAGED_BY) == SYNC_MARK


def _sync_attributes(base: Mapping[str, str], topics: Mapping[str, str]) -> dict[str, str]:
    attrs = {**base, MANAGED_BY: SYNC_MARK}
    attrs[SYNC_TOPICS] = ";".join(f"{t}={s}" for t, s in sorted(topics.items()))
    return attrs


def merge_mapped(grants: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """One person in several mapped groups of a customer: OPT_IN wins over OPT_OUT."""
    out: dict[str, str] = {}
    for g in grants:
        for t, s in g.items():
            out[t] = OPT_IN if OPT_IN in (s, out.get(t)) else s
    return out


def plan_identity(current: Iterable[Contact], members: Mapping[str, Mapping[str, str]]) -> list[Action]:
    """What identity sync changes in one customer's list.

    ``members``: email -> the mapped topics (merged over the person's groups). A member without a
    contact is added, marked. A marked contact gets, per topic, what the mapping says while it
    still holds what sync set there (or nothing); a topic it set that the person is no longer
    granted (a leaver, or a mapping that lost the topic) is unsubscribed the same way. A person's
    own choice, and every unmarked contact, is left as it is.
    """
    have = _by_email(current)
    out: list[Action] = []
    wanted = {e.lower(): (e, dict(t)) for e, t in members.items()}
    for key, (email, topics) in sorted(wanted.items()):
        c = have.get(key)
        if c is None:
            out.append(Action("add", email, dict(topics), _sync_attributes({}, topics), _fmt(topics)))
            continue
        if not managed(c):
            out.append(Action("unchanged", c.email, dict(c.preferences), dict(c.attributes),
                              note="not created by identity sync; left as is", unsubscribe_all=c.unsubscribe_all))
            continue
        out.append(_resync(c, topics))
    for key, c in sorted(have.items()):
        if key in wanted or not managed(c):
            continue
        out.append(_resync(c, {}))
    return out


def _resync(c: Contact, topics: Mapping[str, str]) -> Action:
    was_set = sync_topics(c.attributes)
    prefs = dict(c.preferences)
    now_set: dict[str, str] = {}
    changed: list[str] = []
    unsubscribed: list[str] = []
    kept: list[str] = []
    for t, s in topics.items():
        cur = prefs.get(t)
        if cur is not None and cur != was_set.get(t):
            kept.append(t)          # the person's own choice
            continue
        now_set[t] = s
        if cur != s:
            prefs[t] = s
            changed.append(f"{t}={s}")
    for t, s in was_set.items():
        if t in topics:
            continue
        if prefs.get(t) == s:       # still what sync set: take back what it gave
            if s == OPT_IN:
                prefs[t] = OPT_OUT
                unsubscribed.append(t)
    attrs = _sync_attributes({k: v for k, v in c.attributes.items() if k not in (MANAGED_BY, SYNC_TOPICS)}, now_set)
    note = f"kept the person's own choice for {', '.join(kept)}" if kept else ""
    if c.unsubscribe_all and (changed or unsubscribed):
        # never re-subscribe; an unsubscribe is moot too
        return Action("unchanged", c.email, dict(c.preferences), dict(c.attributes), unsubscribe_all=True,
                      note="unsubscribed from everything; left as is")
    if unsubscribed and not changed:
        return Action("unsubscribe", c.email, prefs, attrs, tuple(unsubscribed), note, c.unsubscribe_all)
    if changed or unsubscribed:
        return Action("update", c.email, prefs, attrs,
                      tuple(changed) + tuple(f"{t}=OPT_OUT" for t in unsubscribed), note, c.unsubscribe_all)
    if attrs != dict(c.attributes):
        # nothing changes for the person, but what sync owns did (a choice became the person's)
        return Action("update", c.email, prefs, attrs, (), note or "bookkeeping only", c.unsubscribe_all)
    return Action("unchanged", c.email, prefs, dict(c.attributes), note=note, unsubscribe_all=c.unsubscribe_all)


# ---------------------------------------------------------------------------------------------
# Who gets what, and why (the portal's Audience page and the preview before approval). Both use
# ``decide_recipients``, the function the runtime sends by: never a second copy of the rules.


def who_gets_what(contacts: Sequence[Contact], topics: Sequence[str], defaults: Mapping[str, str],
                  allow, suppressed=None) -> list[dict]:
    """One row per contact: per topic, its own choice, whether it is told, and if not, why.
    ``suppressed``: the customer's suppression check (hard bounces, complaints), as the runtime's."""
    from runtime.domain.recipients import decide_recipients

    by_topic = {t: decide_recipients(contacts, t, defaults, allow, suppressed) for t in topics}
    rows = []
    for i, c in enumerate(contacts):
        cells = []
        for t in topics:
            d = by_topic[t][i]
            cells.append({"topic": t, "choice": c.preferences.get(t), "default": defaults.get(t, OPT_OUT),
                          "told": d.send, "reason": d.reason, "why": d.why})
        rows.append({"email": c.email, "unsubscribeAll": c.unsubscribe_all, "attributes": dict(c.attributes),
                     "managed": managed(c), "cells": cells})
    return rows


def approval_topics(change: Mapping) -> list[tuple[str, str]]:
    """(topic, what it is for) that approving ``change`` tells, as the runtime routes them."""
    from runtime.domain.kinds import route
    from runtime.domain.recipients import CALENDAR

    purpose = "the announcement" if change.get("kind") == "announcement" else "the approval email"
    out = [(route(change, "approved", approved_before=False).topic, purpose)]
    if (change.get("meeting") or {}).get("required"):
        out.append((CALENDAR, "the Teams meeting invitation"))
    return out


def preview(change: Mapping, audiences: Mapping[str, tuple[Sequence[Contact], Mapping[str, str]] | Exception],
            allow_of, names: Mapping[str, str], suppressed_of=None) -> list[dict]:
    """Per customer of the change and per topic its approval tells: who would be told, who not
    and why. ``audiences``: code -> (contacts, the list's topic defaults), or the error met
    reading them; ``allow_of(code)`` is that customer's allow-list check, ``suppressed_of(code)``
    its suppression check (as the runtime applies them)."""
    from runtime.domain.recipients import decide_recipients

    out = []
    for code in change.get("customers") or []:
        got = audiences.get(code)
        entry: dict = {"customer": code, "name": names.get(code, code), "topics": [], "error": None}
        if isinstance(got, Exception) or got is None:
            entry["error"] = str(got) if got is not None else "not read"
            out.append(entry)
            continue
        contacts, defaults = got
        for topic, purpose in approval_topics(change):
            ds = decide_recipients(contacts, topic, defaults, allow_of(code),
                                   suppressed_of(code) if suppressed_of else None)
            entry["topics"].append({"topic": topic, "purpose": purpose,
                                    "told": [d.email for d in ds if d.send],
                                    "skipped": [{"email": d.email, "reason": d.reason, "why": d.why}
                                                for d in ds if not d.send]})
        out.append(entry)
    return out
