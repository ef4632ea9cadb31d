"""Configuration: one YAML file, validated with pydantic.

A bad file gets one ``ConfigError`` whose message names the file and the field
(``customers[1].code: ...``). Nothing else in ttr reads YAML configuration.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime.domain.errors import ConfigError, InvalidInput
from runtime.domain.notices import AlertingConfig
from runtime.domain.tenant import (
    CUSTOMER_CODE_RE,
    ConfigFacts,
    CustomerFacts,
    TenantConfig,
    TenantCustomer,
    TenantEmail,
)

DEFAULT_CONFIG_PATH = "configs/local.yaml"
TOPICS = ("aws-approval", "aws-announce", "aws-calendar")  # the topics every contact list always has
TOPIC_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")       # what SES accepts as a topic name
Subscription = Literal["OPT_IN", "OPT_OUT"]
ROLES = ("viewer", "submitter", "approver", "admin")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailConfig(_Strict):
    sender: str
    portal_base_url: str = "http://127.0.0.1:8080"
    # Each customer is told only about itself; true lists every affected customer again.
    show_affected_customers: bool = False

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if "@" not in v or "\n" in v or "\r" in v:
            raise ValueError("must be an email address")
        return v


class GraphConfig(_Strict):
    base_url: str = "https://graph.microsoft.com/v1.0"
    organizer: str
    # Create the Teams event with hideAttendees, so no customer sees another's invitees.
    hide_attendees: bool = True


class CustomerConfig(CustomerFacts, _Strict):
    code: str
    name: str
    ses_role_arn: str
    # sent as sts:ExternalId when assuming ses_role_arn; the role's trust policy requires it
    external_id: str | None = None
    region: str | None = None
    queue: str | None = None
    contact_list: str = "ccoe-customer-contacts"
    sender: str | None = None
    restricted_recipients: tuple[str, ...] = ()
    max_send_rate: float = Field(default=14.0, gt=0, le=10000)
    # The zone its recipients read times in, unless a contact's own ``timezone`` attribute says otherwise.
    timezone: str | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not CUSTOMER_CODE_RE.match(v):
            raise ValueError(f"{v!r} does not match {CUSTOMER_CODE_RE.pattern}")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is not None:
            from runtime.domain.model import check_timezone

            try:
                check_timezone(v, "timezone")
            except InvalidInput as exc:  # reported as this field's problem
                raise ValueError(str(exc).removeprefix("timezone: ")) from None
        return v

    @field_validator("ses_role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$", v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
        return v

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[\w+=,.@:/-]{2,1224}$", v):
            raise ValueError("2 to 1224 characters of letters, digits and +=,.@:/-_ (what STS accepts)")
        return v


class WebUser(_Strict):
    username: str
    password_hash: str
    roles: tuple[Literal["viewer", "submitter", "approver", "admin"], ...] = ("viewer",)

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        # no "@", ":" or "/": single sign-on identities ("oidc:{issuer}/{subject}") never collide
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", v):
            raise ValueError(f"{v!r}: 1 to 64 letters, digits, '.', '_' or '-' (single sign-on users are "
                             "configured under web.oidc, not here)")
        return v


class OidcConfig(_Strict):
    issuer: str
    client_id: str
    client_secret_env: str = "TTR_OIDC_CLIENT_SECRET"
    roles_claim: str = "groups"
    # which of the provider's groups grant which roles; required: no group grants anything by its name
    role_map: dict[str, tuple[Literal["viewer", "submitter", "approver", "admin"], ...]]
    # bearer tokens: the audience an API access token must carry (besides client_id), and the
    # clients (azp / client_id claim) whose tokens are accepted (default: the portal's client_id)
    audience: str | None = None
    api_clients: tuple[str, ...] = ()

    @field_validator("role_map")
    @classmethod
    def _role_map(cls, v: dict) -> dict:
        if not v:
            raise ValueError("required and not empty: map your identity provider's groups to ttr roles "
                             "(e.g. {change-approvers: [approver]}); an empty map would grant nothing")
        return v


class WebConfig(_Strict):
    users: tuple[WebUser, ...] = ()
    oidc: OidcConfig | None = None
    # the proxies (addresses or CIDR ranges) whose X-Forwarded-For the portal believes
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for p in v:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"{p!r} is not an IP address or CIDR range") from None
        return v


class LocalContact(_Strict):
    email: str
    topics: dict[str, Subscription] = {}   # checked against the configured topics by Config
    unsubscribe_all: bool = False


class LocalConfig(_Strict):
    aws_port: int = Field(default=4566, ge=0, le=65535)
    graph_port: int = Field(default=4580, ge=0, le=65535)
    web_port: int = Field(default=8080, ge=0, le=65535)
    contacts: dict[str, tuple[LocalContact, ...]] = {}
    # The old spelling of the topics' defaults (the three aws-* only); folded into ``topics`` by
    # Config. Prefer ``topics:``; giving both is an error.
    topic_defaults: dict[str, Subscription] | None = None

    @field_validator("topic_defaults")
    @classmethod
    def _defaults(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        unknown = sorted(set(v or ()) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; known: {list(TOPICS)} (configure other "
                             "topics under topics:)")
        return v


class TopicConfig(_Strict):
    """One topic of every customer's contact list: its SES name, the name people read, its default."""

    name: str
    display: str
    default: Subscription = "OPT_OUT"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TOPIC_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a valid SES topic name ({TOPIC_NAME_RE.pattern})")
        return v

    @field_validator("display")
    @classmethod
    def _display(cls, v: str) -> str:
        if not v.strip() or len(v) > 128:
            raise ValueError("must be 1 to 128 characters")
        return v


DEFAULT_TOPICS: tuple[TopicConfig, ...] = (
    TopicConfig(name="aws-approval", display="Change approvals", default="OPT_OUT"),
    TopicConfig(name="aws-announce", display="Change announcements", default="OPT_IN"),
    TopicConfig(name="aws-calendar", display="Change meetings", default="OPT_OUT"),
    # Announcements (runtime.domain.announcements): one topic per type, and their approval requests.
    TopicConfig(name="cic-announce", display="CIC announcements", default="OPT_OUT"),
    TopicConfig(name="finops-announce", display="FinOps announcements", default="OPT_OUT"),
    TopicConfig(name="inner-announce", display="InnerSource announcements", default="OPT_OUT"),
    TopicConfig(name="general-updates", display="General updates", default="OPT_IN"),
    TopicConfig(name="announce-approval", display="Announcement approvals", default="OPT_OUT"),
)


class IdentityMapping(_Strict):
    group: str = Field(min_length=1)
    customer: str
    topics: dict[str, Subscription] = Field(min_length=1)


class IdentityCenterConfig(_Strict):
    identity_store_id: str
    region: str | None = None
    mappings: tuple[IdentityMapping, ...] = Field(min_length=1)

    @field_validator("identity_store_id")
    @classmethod
    def _store(cls, v: str) -> str:
        if not re.match(r"^d-[0-9a-f]{10}$|^[0-9a-f-]{1,36}$", v):
            raise ValueError(f"{v!r} is not an identity store id (d-1234567890)")
        return v


class RuntimeSettings(_Strict):
    """What the runtime's Ray actors reserve, and how they wait. Tenants are I/O-bound: a small
    CPU share and the memory they really use (about 60-90 MB USS each); Ray places by these."""

    tenant_cpus: float = Field(default=0.01, ge=0, le=64)
    tenant_memory_mb: int = Field(default=100, ge=0, le=1_000_000)
    service_cpus: float = Field(default=0.05, ge=0, le=64)        # archive, meetings, orphans: each
    service_memory_mb: int = Field(default=200, ge=0, le=1_000_000)
    local_cpus: float | None = Field(default=None, gt=0, le=4096)  # the local Ray's CPUs (default: all)
    poll_wait_s: int = Field(default=20, ge=1, le=20)              # SQS long poll
    # Ray worker processes a local Ray starts at once; None: Ray's default, the node's CPU count
    # (starting a worker is CPU-bound: more at once on 2 cores made the last tenant later).
    worker_startup_concurrency: int | None = Field(default=None, ge=1, le=256)
    start_timeout_s: float = Field(default=300.0, gt=0, le=3600)   # wait for every tenant to accept work
    archive_linger_ms: int = Field(default=400, ge=0, le=5000)     # group commit: wait for a change's other records


class Config(ConfigFacts, _Strict):
    bucket: str
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    email: EmailConfig
    graph: GraphConfig
    customers: tuple[CustomerConfig, ...] = Field(min_length=1)
    web: WebConfig = WebConfig()
    local: LocalConfig = LocalConfig()
    topics: tuple[TopicConfig, ...] = DEFAULT_TOPICS
    identity_center: IdentityCenterConfig | None = None
    alerting: AlertingConfig = AlertingConfig()
    runtime: RuntimeSettings = RuntimeSettings()
    # Where the file came from; set by load_config, not by the YAML.
    source: str = Field(default="", exclude=True)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", v):
            raise ValueError(f"{v!r} is not a valid S3 bucket name")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        codes = [c.code for c in self.customers]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"customers: duplicate code(s) {dupes}")
        queues = [c.queue_name for c in self.customers]
        qdupes = sorted({q for q in queues if queues.count(q) > 1})
        if qdupes:
            raise ValueError(f"customers: two customers share queue(s) {qdupes}; each tenant needs its own")
        _one_customer_each(self.customers, "ses_role_arn", lambda c: c.ses_role_arn, "SES role")
        _one_customer_each(self.customers, "ses_role_arn", lambda c: c.account_id, "AWS account")
        _one_customer_each(self.customers, "external_id", lambda c: c.external_id, "external_id")
        unknown = sorted(set(self.local.contacts) - set(codes))
        if unknown:
            raise ValueError(f"local.contacts: unknown customer code(s) {unknown}")
        self._fold_topics()
        known = list(self.topic_defaults)
        for code, contacts in self.local.contacts.items():
            for i, contact in enumerate(contacts):
                bad = sorted(set(contact.topics) - set(known))
                if bad:
                    raise ValueError(f"local.contacts.{code}[{i}].topics: unknown topic(s) {bad}; known: {known}")
        if self.identity_center:
            for i, m in enumerate(self.identity_center.mappings):
                if m.customer not in codes:
                    raise ValueError(f"identity_center.mappings[{i}].customer: unknown customer {m.customer!r}")
                bad = sorted(set(m.topics) - set(known))
                if bad:
                    raise ValueError(f"identity_center.mappings[{i}].topics: unknown topic(s) {bad}; known: {known}")
        return self

    def _fold_topics(self) -> None:
        names = [t.name for t in self.topics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"topics: topic(s) {dupes} listed twice")
        missing = [t for t in TOPICS if t not in names]
        if missing:
            raise ValueError(f"topics: the runtime needs topic(s) {missing} (add them; they always exist)")
        legacy = self.local.topic_defaults
        if legacy is None:
            return
        if "topics" in self.model_fields_set:
            raise ValueError("local.topic_defaults: the topics' defaults are set under topics: now; "
                             "move these defaults there and remove local.topic_defaults")
        folded = tuple(t.model_copy(update={"default": legacy.get(t.name, t.default)}) for t in self.topics)
        object.__setattr__(self, "topics", folded)  # frozen model: set once, while validating

    @property
    def topic_defaults(self) -> dict[str, str]:
        """topic name -> default subscription, in configured order (the contact lists' truth)."""
        return {t.name: t.default for t in self.topics}

    def topic_display(self, name: str) -> str:
        from runtime.domain.words import topic_display

        return topic_display(name, self)

    def customer(self, code: str) -> CustomerConfig:
        for c in self.customers:
            if c.code == code:
                return c
        raise KeyError(code)

    @property
    def customer_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.customers)

    def tenant_view(self, code: str) -> TenantConfig:
        """What customer ``code``'s actor is shipped: its own customer and the settings a tenant
        uses, as frozen pydantic-free dataclasses (``runtime.domain.tenant``)."""
        c = self.customer(code)
        return TenantConfig(
            bucket=self.bucket, region=self.region, aws_endpoint_url=self.aws_endpoint_url,
            email=TenantEmail(sender=self.email.sender, portal_base_url=self.email.portal_base_url,
                              show_affected_customers=self.email.show_affected_customers),
            tenant=TenantCustomer(**{name: getattr(c, name) for name in type(c).model_fields}),
            source=self.source)

    def with_overrides(self, **changes) -> "Config":
        """A copy with top-level fields replaced (e.g. the emulator's endpoint and ports)."""
        return self.model_copy(update=changes)


def _one_customer_each(customers, field: str, value_of, what: str) -> None:
    """Tenant isolation: two customers sharing a role, an account or an ExternalId would send one
    customer's mail through the other's SES."""
    seen: dict[str, str] = {}
    for c in customers:
        v = value_of(c)
        if v is None:
            continue
        if v in seen:
            raise ValueError(f"customers: {seen[v]} and {c.code} use the same {what} ({v}; {field}); each "
                             "customer's mail must go through its own account")
        seen[v] = c.code


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_config(data: object, source: str = "<config>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = _field_path(tuple(err.get("loc", ())))
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{source}: {path}: {msg}{more}") from None
    return cfg.model_copy(update={"source": source})


def resolve_config_path(path: str | os.PathLike | None) -> Path:
    return Path(path or os.environ.get("TTR_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate the configuration (``--config``, else ``$TTR_CONFIG``, else the default)."""
    p = resolve_config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found (use --config F or $TTR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the configuration file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(p))
