"""``ttr web`` and ``ttr web hash-password``: argparse registration only (heavy imports inside)."""

from __future__ import annotations

import sys


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_web(args) -> int:
    from runtime.domain.config import load_config
    from runtime.local.stack import wait_for_signal
    from runtime.services.logins import demo_exposed, demo_logins
    from runtime.web._server import start_portal

    cfg = load_config(args.config)
    port = cfg.local.web_port if args.port is None else args.port
    if not cfg.web.users and cfg.web.oidc is None:
        _err("warning: no web.users and no web.oidc in the configuration: nobody can sign in")
    refused = demo_exposed(cfg, args.host)
    if refused:
        _err(f"ttr: error: not serving the portal: {refused}")
        return 2
    try:
        handle = start_portal(cfg, port, host=args.host)
    except OSError as exc:
        _err(f"ttr: error: {exc}")
        return 1
    for login in demo_logins(cfg):
        if login["password"]:
            _err(f"  demo login: {login['username']} / {login['password']} ({', '.join(login['roles'])})")
    print(f"ready portal={handle.url}", flush=True)
    try:
        wait_for_signal()
    finally:
        handle.stop()
    _err("stopped")
    return 0


def _read_password(stdin=None) -> str:
    import getpass

    from runtime.domain.errors import InvalidInput

    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Again: ")
        if first != again:
            raise InvalidInput("the two passwords differ")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput("the password is empty (type it at the prompt, or pipe it on stdin)")
    return password


def cmd_hash_password(args) -> int:
    from runtime.services.logins import hash_password

    print(hash_password(_read_password()), flush=True)
    return 0


def register(sub, common, fmt) -> None:
    web = sub.add_parser(
        "web", help="the web portal and its JSON API (hash-password: a hash for web.users)",
        formatter_class=fmt,
        description="Serve the web portal and its JSON API (/docs, /openapi.json) until SIGINT/SIGTERM. "
                    "Prints a line 'ready portal=URL' once it listens. Sign-in: web.users (local users "
                    "with argon2 password hashes) and/or web.oidc (single sign-on). The session key "
                    "comes from $TTR_SESSION_SECRET, else .ttr/session-secret (generated).")
    web.add_argument("--port", type=int, metavar="P", help="port (default: local.web_port, 8080)")
    web.add_argument("--host", default="127.0.0.1", metavar="H",
                     help="address to listen on (default 127.0.0.1; put a TLS proxy in front otherwise)")
    common(web)
    web.set_defaults(func=cmd_web)
    wsub = web.add_subparsers(dest="web_command", metavar="ACTION")
    p = wsub.add_parser("hash-password", formatter_class=fmt,
                        help="print the argon2 hash of a password for web.users[].password_hash",
                        description="Read a password (at a prompt, twice; or one line on stdin) and print "
                                    "its argon2id hash. The password is never taken from the command line.")
    common(p)
    p.set_defaults(func=cmd_hash_password)
