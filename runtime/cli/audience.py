"""``ttr contacts``, ``ttr topics`` and ``ttr identity``: argparse registration and thin handlers.

Everything goes through each customer's own SES, reached through its role; the plans come from
``runtime/domain/audience.py``. One line per contact (or topic) on stdout, a summary on stderr.
Heavy imports (boto3) happen inside the handlers; no Ray at all.
"""

from __future__ import annotations

import sys

IMPORT_HELP = """\
Import contacts into one customer's list.
  CSV:  a header `email,topic:NAME,...`, then one contact per line; each topic cell is OPT_IN,
        OPT_OUT or empty (empty: keep what the contact has).
  JSON: a list of {"email": ..., "topics": {NAME: OPT_IN|OPT_OUT}}.
One line per contact: add, update or unchanged. A contact who unsubscribed from everything is
never re-subscribed. The whole file is checked first: a bad line exits 2, naming it, and nothing
is written. --dry-run prints the same lines and changes nothing.
"""

IDENTITY_HELP = """\
Make the members of each mapped Identity Center group (identity_center.mappings) contacts of the
mapped customer with the mapped topics. Contacts it creates are marked (attribute
managedBy=ttr-identity-sync, with the preferences it set); it unsubscribes a former member from
what it had set, never overrides a preference the person set themselves, and never touches a
contact it did not create. Lines as `contacts import`, plus `unsubscribe`.
"""


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def register(sub, common, fmt) -> None:
    contacts = sub.add_parser("contacts", help="each customer's contacts (SES, through its role)",
                              formatter_class=fmt)
    csub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)

    p = csub.add_parser("list", help="every contact with its topics, unsubscribe-all flag and attributes",
                        formatter_class=fmt)
    p.add_argument("--customer", metavar="C", required=True, help="the customer code")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    common(p)
    p.set_defaults(func=cmd_list)

    p = csub.add_parser("add", help="add a contact (or set its topics)", formatter_class=fmt)
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--customer", metavar="C", required=True, help="the customer code")
    p.add_argument("--topic", metavar="NAME=OPT_IN|OPT_OUT", action="append", default=[],
                   help="a topic preference (repeatable)")
    common(p)
    p.set_defaults(func=cmd_add)

    p = csub.add_parser("remove", help="delete a contact from the customer's list", formatter_class=fmt)
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--customer", metavar="C", required=True, help="the customer code")
    common(p)
    p.set_defaults(func=cmd_remove)

    p = csub.add_parser("import", help="add or update contacts from a CSV or JSON file",
                        description=IMPORT_HELP, formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help=".csv or .json")
    p.add_argument("--customer", metavar="C", required=True, help="the customer code")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    common(p)
    p.set_defaults(func=cmd_import)

    p = csub.add_parser("export", help="write the contacts as `import` reads them", formatter_class=fmt)
    p.add_argument("--customer", metavar="C", required=True, help="the customer code")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    common(p)
    p.set_defaults(func=cmd_export)

    topics = sub.add_parser("topics", help="the topics of each customer's contact list", formatter_class=fmt)
    tsub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    p = tsub.add_parser("sync", help="give each contact list exactly the configured topics (contacts untouched)",
                        formatter_class=fmt,
                        description="Each customer's contact list gets exactly the configured topics "
                                    "(topics: name, display, default); extra topics are removed. "
                                    "Contacts are not touched. Lines: add, update, remove, unchanged.")
    p.add_argument("--customer", metavar="C", action="append", help="only this customer (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    common(p)
    p.set_defaults(func=cmd_topics_sync)

    ident = sub.add_parser("identity", help="Identity Center groups as contacts", formatter_class=fmt)
    isub = ident.add_subparsers(dest="identity_command", metavar="ACTION", required=True)
    p = isub.add_parser("sync", help="members of the mapped groups become contacts with the mapped topics",
                        description=IDENTITY_HELP, formatter_class=fmt)
    p.add_argument("--customer", metavar="C", action="append", help="only this customer (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    common(p)
    p.set_defaults(func=cmd_identity_sync)


# ---------------------------------------------------------------------------------------------


def _clients(cfg):
    """The AWS client factory of these commands (tests add botocore hooks to it)."""
    from runtime.adapters.aws import AwsClients

    return AwsClients(cfg.region, cfg.aws_endpoint_url)


def _setup(args):
    from runtime.domain.config import load_config

    cfg = load_config(args.config)
    return cfg, _clients(cfg)


def _book(cfg, clients, customer):
    """One customer's contacts, through its own SES (throttling retried)."""
    from runtime.adapters.ses import TenantSes
    from runtime.services.contacts import CustomerContacts

    return CustomerContacts(cfg, customer, TenantSes.for_admin(clients, cfg, customer))


def _one(args):
    from runtime.services.contacts import customer_of

    cfg, clients = _setup(args)
    return cfg, _book(cfg, clients, customer_of(cfg, args.customer))


def _codes(cfg, wanted) -> list[str]:
    from runtime.services.contacts import customer_of

    return [customer_of(cfg, c).code for c in wanted] if wanted else list(cfg.customer_codes)


def _tally(actions) -> str:
    counts: dict[str, int] = {}
    for a in actions:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "no contacts"


def _run_plan(book, actions, dry_run: bool, label: str) -> int:
    """Print (dry run) or apply a plan; exit 1 with what was and was not written on failure."""
    if dry_run:
        for a in actions:
            _out(a.line())
        _err(f"{label}: dry run: {_tally(actions)}; nothing was changed")
        return 0
    applied = book.apply(actions, report=lambda a: _out(a.line()))
    if not applied.ok:
        _err(f"ttr: error: {label}: {applied.describe()}\n"
             "Fix the cause and run the same command again: it only writes what still differs.")
        return 1
    _err(f"{label}: {_tally(actions)}")
    return 0


def cmd_list(args) -> int:
    import json

    cfg, book = _one(args)
    contacts = sorted(book.contacts(attributes=True), key=lambda c: c.email.lower())
    names = list(cfg.topic_defaults)
    if args.json:
        _out(json.dumps([{"email": c.email, "topics": dict(c.preferences), "unsubscribeAll": c.unsubscribe_all,
                          "attributes": dict(c.attributes)} for c in contacts], indent=2))
        return 0
    width = max([len("EMAIL"), *(len(c.email) for c in contacts)])
    _out(f"{'EMAIL':<{width}}  " + "  ".join(f"{t:<13}" for t in names) + "  UNSUBSCRIBED-ALL  ATTRIBUTES")
    for c in contacts:
        cells = [c.preferences.get(t, "-") for t in names]
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(c.attributes.items()))
        _out(f"{c.email:<{width}}  " + "  ".join(f"{v:<13}" for v in cells)
             + f"  {'yes' if c.unsubscribe_all else 'no':<16}  {attrs}")
    _err(f"{len(contacts)} contact(s) of {book.where}; '-' = no choice made (the topic's default applies: "
         + ", ".join(f"{t} {d}" for t, d in cfg.topic_defaults.items()) + ")")
    return 0


def cmd_add(args) -> int:
    from runtime.domain.audience import check_row, plan_import
    from runtime.domain.errors import InvalidInput

    cfg, book = _one(args)
    topics: dict[str, str] = {}
    for spec in args.topic:
        name, eq, status = spec.partition("=")
        if not eq:
            raise InvalidInput(f"--topic {spec!r}: expected NAME=OPT_IN or NAME=OPT_OUT")
        topics[name.strip()] = status
    wanted = check_row(args.email, topics, list(cfg.topic_defaults), "contacts add")   # as an import line
    return _run_plan(book, plan_import(book.contacts(), [wanted]), False, f"contacts of {book.where}")


def cmd_remove(args) -> int:
    _cfg, book = _one(args)
    email = book.remove(args.email)
    _out(f"remove {email}")
    return 0


def cmd_import(args) -> int:
    from runtime.domain.audience import format_of, parse_import, plan_import
    from runtime.domain.errors import InvalidInput

    cfg, book = _one(args)
    try:
        with open(args.file, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{args.file}: cannot read: {exc}") from None
    wanted = parse_import(text, fmt=format_of(args.file), topics=list(cfg.topic_defaults), source=args.file)
    return _run_plan(book, plan_import(book.contacts(), wanted), args.dry_run, f"contacts of {book.where}")


def cmd_export(args) -> int:
    from runtime.domain.audience import export

    cfg, book = _one(args)
    contacts = book.contacts()
    sys.stdout.write(export(contacts, list(cfg.topic_defaults), args.format))
    sys.stdout.flush()
    _err(f"{len(contacts)} contact(s) of {book.where}")
    return 0


def cmd_topics_sync(args) -> int:
    from runtime.domain.errors import TtrError

    cfg, clients = _setup(args)
    done: list[str] = []
    codes = _codes(cfg, args.customer)
    for code in codes:
        book = _book(cfg, clients, cfg.customer(code))
        try:
            steps = book.sync_topics(dry_run=args.dry_run)
        except TtrError as exc:
            left = [c for c in codes if c not in done]
            _err(f"ttr: error: topics sync stopped at {book.where}: {exc}\n"
                 f"synced: {', '.join(done) or 'none'}; NOT synced: {', '.join(left)}")
            return 1
        for s in steps:
            _out(f"{code}: {s.line()}")
        done.append(code)
    _err(("dry run: nothing was changed; " if args.dry_run else "")
         + f"topics of {len(done)} customer(s): {', '.join(t.name for t in cfg.topics)}")
    return 0


def cmd_identity_sync(args) -> int:
    from runtime.adapters.identity import IdentityStore
    from runtime.domain.audience import plan_identity
    from runtime.services.contacts import identity_members

    cfg, clients = _setup(args)
    codes = _codes(cfg, args.customer)
    members = identity_members(cfg, lambda store_id, region: IdentityStore(clients, store_id, region),
                               codes, _err)   # everything read before any write
    status = 0
    for code in codes:
        book = _book(cfg, clients, cfg.customer(code))
        actions = plan_identity(book.contacts(attributes=True), members.get(code, {}))
        status = max(status, _run_plan(book, actions, args.dry_run, f"identity sync {book.where}"))
        if status:
            _err(f"customers after {code} were not synced")
            break
    return status
