"""Contact administration through each customer's own SES (its assumed role): read, apply plans.

The decisions live in ``runtime/domain/audience.py`` (pure); this module does the I/O around them for
the CLI and the portal: it reads a customer's contacts and topics, applies a plan in order and
says, when it stops part-way, what was and was not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from runtime.domain.audience import Action, TopicStep, merge_mapped, plan_topics, ses_topics
from runtime.domain.config import Config, CustomerConfig
from runtime.domain.errors import InvalidInput, NotFound, TtrError
from runtime.domain.recipients import Contact
from runtime.ports import ContactStore, Directory


def customer_of(cfg: Config, code: str) -> CustomerConfig:
    try:
        return cfg.customer(code)
    except KeyError:
        raise InvalidInput(f"--customer: unknown customer {code!r} (configured: "
                           f"{', '.join(cfg.customer_codes)})") from None


@dataclass
class Applied:
    """The outcome of applying a plan: what was written, and where it stopped (if it did)."""

    written: list[str] = field(default_factory=list)
    failed: str | None = None
    not_written: list[str] = field(default_factory=list)
    error: TtrError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        done = ", ".join(self.written) or "nothing"
        left = ", ".join(self.not_written) or "nothing"
        return (f"stopped at {self.failed}: {self.error}\n"
                f"written: {done}\nNOT written: {left}")


class CustomerContacts:
    """One customer's contact list, through that customer's role (``ses``: its ContactStore)."""

    def __init__(self, cfg: Config, customer: CustomerConfig, ses: ContactStore):
        self.cfg = cfg
        self.customer = customer
        self.contact_list = customer.contact_list
        self.ses = ses

    @property
    def where(self) -> str:
        return f"{self.customer.code} ({self.customer.account_id}, list {self.contact_list})"

    def contacts(self, *, attributes: bool = False) -> list[Contact]:
        """Every contact. SES ListContacts leaves out each contact's attributes: with
        ``attributes=True`` each contact is read once more (GetContact) to have them."""
        items = self.ses.all_contacts(self.contact_list)
        if attributes:
            items = [{**i, "AttributesData": self.ses.get_contact(self.contact_list, i["EmailAddress"]).get("AttributesData")}
                     for i in items]
        return [Contact.from_ses(i) for i in items]

    def topics(self) -> list[dict]:
        return self.ses.contact_list_topics(self.contact_list)

    def apply(self, actions: Sequence[Action], report: Callable[[Action], None] | None = None) -> Applied:
        """Write the plan's actions in order; ``report`` hears each line once it is done."""
        out = Applied()
        for i, a in enumerate(actions):
            if a.writes:
                try:
                    attrs = a.attributes
                    if attrs is None and a.kind != "add":   # keep the contact's own attributes
                        cur = Contact.from_ses(self.ses.get_contact(self.contact_list, a.email))
                        attrs = cur.attributes
                    self.ses.put_contact(self.contact_list, a.email, preferences=dict(a.preferences),
                                         unsubscribe_all=a.unsubscribe_all,
                                         attributes=dict(attrs) if attrs else None,
                                         create=a.kind == "add")
                except TtrError as exc:
                    out.failed, out.error = a.email, exc
                    out.not_written = [b.email for b in actions[i:] if b.writes]
                    return out
                out.written.append(a.email)
            if report:
                report(a)
        return out

    def remove(self, email: str) -> str:
        """Delete one contact (its spelling on the list is found case-insensitively)."""
        match = [c.email for c in self.contacts() if c.email.lower() == email.lower()]
        if not match:
            raise NotFound(f"{email} is not a contact of {self.where}")
        self.ses.delete_contact(self.contact_list, match[0])
        return match[0]

    def sync_topics(self, *, dry_run: bool) -> list[TopicStep]:
        """Make the list carry exactly the configured topics (creating the list if needed)."""
        try:
            current = self.topics()
        except NotFound:
            steps = [TopicStep("add", t.name, t.display, t.default) for t in self.cfg.topics]
            if not dry_run:
                self.ses.put_contact_list(self.contact_list, ses_topics(self.cfg.topics), create=True)
            return steps
        steps = plan_topics(current, self.cfg.topics)
        if not dry_run and any(s.kind != "unchanged" for s in steps):
            self.ses.put_contact_list(self.contact_list, ses_topics(self.cfg.topics), create=False)
        return steps


def identity_members(cfg: Config, directory: Callable[[str, str], Directory], codes: Iterable[str],
                     warn: Callable[[str], None]) -> dict[str, dict[str, dict[str, str]]]:
    """customer code -> email -> mapped topics, from every mapped group (read fully, every page,
    before anything is written). A user without an email address is skipped with a warning.
    ``directory(store_id, region)`` opens the configured identity store."""
    ic = cfg.identity_center
    if ic is None:
        raise InvalidInput(f"{cfg.source}: identity_center is not configured (identity_store_id, mappings)")
    store = directory(ic.identity_store_id, ic.region or cfg.region)
    wanted = set(codes)
    grants: dict[str, dict[str, list[Mapping[str, str]]]] = {c: {} for c in wanted}
    emails: dict[str, str | None] = {}
    for m in ic.mappings:
        if m.customer not in wanted:
            continue
        gid = store.group_id(m.group)
        for uid in store.member_ids(gid):
            if uid not in emails:
                emails[uid] = store.email_of(uid)
                if emails[uid] is None:
                    warn(f"identity sync: user {uid} in group {m.group} has no email address; skipped")
            if emails[uid]:
                grants[m.customer].setdefault(emails[uid].lower(), []).append(m.topics)
    out: dict[str, dict[str, dict[str, str]]] = {}
    for code, people in grants.items():
        spelled = {e.lower(): e for e in emails.values() if e}
        out[code] = {spelled[k]: merge_mapped(g) for k, g in people.items()}
    return out
