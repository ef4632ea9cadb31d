"""The portal's state: config, lifecycle, the change index, identity sources, the templates,
and the delivery ledgers it reads (cached by ETag). One per app (``app.state.portal``).
"""

from __future__ import annotations

import time

from runtime.domain.words import topic_display, topic_names
from runtime.services.ledger import LedgerCache, read_ledgers
from runtime.web._auth import ApiTokens, LocalUsers, LoginThrottle, Principal, Unauthenticated
from runtime.web._http import HERE, SESSION_IDLE, SESSION_MAX, SESSION_REFRESH, new_csrf
from runtime.web._principals import PrincipalRecords

LEDGER_CACHE = 5000                # delivery ledgers kept parsed (by ETag)


class Portal:
    """Everything a request handler needs: config, lifecycle, index, identity sources."""

    def __init__(self, cfg, store, *, session_secret: str, throttle: LoginThrottle | None = None,
                 session_idle: int = SESSION_IDLE, session_max: int = SESSION_MAX,
                 clock=time.time):
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        from runtime.emails import format_time, format_window
        from runtime.services import delivery
        from runtime.services.lifecycle import Lifecycle
        from runtime.web import _views
        from runtime.web._index import ChangeIndex
        from runtime.web._markdown import mini_markdown

        self.cfg = cfg
        self.store = store
        self.lifecycle = Lifecycle(store, cfg.customer_codes, topics=[t.name for t in cfg.topics])
        self.index = ChangeIndex(store)
        self.users = LocalUsers(cfg.web.users)
        self.records = PrincipalRecords(store, clock=clock)
        self.tokens = ApiTokens(session_secret, self.records, clock=clock,
                                credential_of=lambda u: self.users.credential(u.name) if u.source == "local" else "")
        self.throttle = throttle or LoginThrottle()
        self.session_idle = session_idle
        self.session_max = session_max
        self.clock = clock
        self.names = _views.customer_names(cfg)
        self.topic_names = topic_names(cfg)
        self._ledgers = LedgerCache(LEDGER_CACHE)
        self.oidc = None
        if cfg.web.oidc is not None:
            from runtime.web._oidc import Oidc

            self.oidc = Oidc(cfg.web.oidc)
        self.templates = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                                     autoescape=select_autoescape(default=True, default_for_string=True),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(when=format_time, window=format_window, safe_url=delivery.safe_url,
                                      ts=_views.local_time, md=mini_markdown,
                                      topic=lambda name: topic_display(name, names=self.topic_names),
                                      customer=lambda code: self.names.get(code, code))
        self.templates.globals.update(customer_names=self.names)

    # identity --------------------------------------------------------------------------------
    def session_user(self, session: dict) -> Principal | None:
        data = session.get("user") if isinstance(session, dict) else None
        if not isinstance(data, dict) or "name" not in data:
            return None
        at = float(data.get("at") or 0)
        if not (self.clock() - self.session_max <= at <= self.clock() + 60):
            session.pop("user", None)
            return None
        name, source = str(data["name"]), str(data.get("source") or "oidc")
        # signed out since (on any instance), or the password changed since: the session is over
        if (not self.records.session_valid(source, name, data.get("gen"))
                or (source == "local" and data.get("cred") != self.users.credential(name))):
            session.pop("user", None)
            return None
        if source == "local":
            user = self.users.current(name)
            if user is None:
                session.pop("user", None)
            return user
        if self.oidc is None:  # single sign-on switched off: its sessions end with it
            session.pop("user", None)
            return None
        return Principal(name=name, roles=frozenset(data.get("roles") or ()), source=source,
                         display=str(data.get("display") or ""))

    def touch(self, session: dict) -> None:
        """Re-issue the cookie now and then, so the idle lifetime slides while the user is active
        (the absolute lifetime, ``session_max`` from sign-in, still ends it)."""
        now = int(self.clock())
        if now - int(session.get("seen") or 0) >= SESSION_REFRESH:
            session["seen"] = now

    def start_session(self, session: dict, user: Principal) -> None:
        session.clear()  # nothing from before the sign-in survives it
        cred = self.users.credential(user.name) if user.source == "local" else ""
        session["user"] = user.to_session(at=self.clock(), generation=self.records.generation(user.source, user.name),
                                          credential=cred)
        session["seen"] = int(self.clock())
        new_csrf(session)

    def end_sessions(self, user: Principal) -> None:
        """Sign-out: every session of this user ends, here and on the other instances."""
        self.records.end_sessions(user.source, user.name)

    async def verify_bearer(self, token: str) -> Principal:
        from runtime.web._auth import API_TOKEN_PREFIX

        if token.startswith(API_TOKEN_PREFIX):
            user = self.tokens.verify(token)
            if user.source != "local" and self.oidc is None:
                raise Unauthenticated("the API token came from single sign-on, which is switched off")
            if user.source == "local":
                current = self.users.current(user.name, via="bearer")
                if current is None:
                    raise Unauthenticated("the API token's user no longer exists")
                # the token never grants more than the user has now
                return Principal(name=current.name, roles=current.roles & user.roles, source="local",
                                 via="bearer", token_id=user.token_id)
            return user
        if self.oidc is not None:
            return await self.oidc.verify_bearer(token)
        raise Unauthenticated("the bearer token is not valid")

    # data ------------------------------------------------------------------------------------
    def ledgers(self, change_id: str) -> dict[tuple[str, int], dict]:
        """The delivery ledgers of a change, by (customer, seq); unchanged ones come from a cache."""
        return read_ledgers(self.store, change_id, cache=self._ledgers)

    def render(self, template: str, **ctx) -> str:
        return self.templates.get_template(template).render(**ctx)

