"""``ttr change view ID``: a change for people, in the terminal (``show`` stays the JSON).

The summary, the window in the change's zone and in UTC with its duration, the Teams meeting,
then per customer every contact with what happened for each notice (sent, failed, or not told
and why, as recorded in the delivery ledger at the time), then the history. The same read
model as the portal's delivery view (``runtime.services.delivery``), so both say the same thing.
"""

from __future__ import annotations

from typing import Mapping

from runtime.emails import format_duration, format_schedule, format_utc
from runtime.services import delivery
from runtime.services.ledger import read_ledgers

_OUTCOME = {"sent": "sent", "failed": "FAILED", "skipped": "not told"}


def render_view(change: Mapping, names: Mapping[str, str], ledgers: Mapping[tuple[str, int], Mapping]) -> str:
    """The text of ``ttr change view`` (pure)."""
    schedule = change.get("schedule") or {}
    lines = [f"{change.get('changeId', '')}  {change.get('title', '')}",
             f"Status:    {change.get('status', '?')} (version {change.get('version', '?')}), "
             f"submitted by {change.get('createdBy', '?')}"]
    local = format_schedule(schedule)
    if local:
        lines.append(f"Window:    {local}")
        utc, duration = format_utc(schedule), format_duration(schedule)
        if utc:
            lines.append(f"           {utc}" + (f"  ({duration})" if duration else ""))
    lines.append("Customers: " + ", ".join(f"{names.get(c, c)} ({c})" for c in change.get("customers") or []))
    m = delivery.meeting(change)
    meeting = f"Meeting:   {m['label']}"
    if m.get("joinUrl"):
        meeting += f": {m['joinUrl']}"
    elif m.get("failure"):
        meeting += f": {m['failure']}"
    lines.append(meeting)
    for key, label in (("reason", "Reason"), ("customerImpact", "Customer impact")):
        if change.get(key):
            lines += ["", f"{label}:"] + [f"  {line}" for line in str(change[key]).splitlines()]

    lines += ["", "Delivery"]
    for row in delivery.delivery(change, names, ledgers):
        lines.append(f"  {row['name']} ({row['customer']}): {row['stateLabel']}")
        for rej in row["rejected"]:
            lines.append(f"    rejected: {rej['reason']}")
        for s in row["steps"]:
            head = f"    #{s['seq']} {s['label']}"
            if s["topic"]:
                head += f" · {s['topic']}"
            if s["state"] == "sent":
                head += f" · {s['emailsSent']} sent" + (f", {s['emailsFailed']} failed" if s["emailsFailed"] else "")
            elif s["state"] == "pending":
                head += " · waiting to be sent"
            lines.append(head)
            width = max((len(c["email"]) for c in s["contacts"]), default=0)
            for c in s["contacts"]:
                why = f": {c['why']}" if c["why"] else ""
                lines.append(f"        {c['email']:<{width}}  {_OUTCOME[c['outcome']]}{why}")
    lines += ["", "History"]
    for e in delivery.timeline(change, names):
        lines.append(f"  {e['when']}  {e['title']}" + (f" (by {e['actor']})" if e["kind"] == "lifecycle" else ""))
        lines += [f"      {d}" for d in e["details"]]
    return "\n".join(lines)


def cmd_change_view(args) -> int:
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.domain.config import load_config
    from runtime.domain.model import check_change_id
    from runtime.services.archive import ArchiveStore

    cfg = load_config(getattr(args, "config", None))
    store = S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket)
    change, _ = ArchiveStore(store).load(check_change_id(args.id))
    names = {c.code: c.name for c in cfg.customers}
    ledgers = read_ledgers(store, change["changeId"])
    print(render_view(change, names, ledgers), flush=True)
    return 0
