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

from .errors import ConfigError

DEFAULT_CONFIG_PATH = "configs/local.yaml"
CUSTOMER_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
TOPICS = ("aws-approval", "aws-announce", "aws-calendar")
Subscription = Literal["OPT_IN", "OPT_OUT"]
ROLES = ("viewer", "submitter", "approver", "admin")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailConfig(_Strict):
    sender: str
    portal_base_url: str = "http://127.0.0.1:8080"

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if "@" not in v or "\n" in v or "\r" in v:
            raise ValueError("must be an email address")
        return v


class GraphConfig(_Strict):
    base_url: str = "https://graph.microsoft.com/v1.0"
    organizer: str


class CustomerConfig(_Strict):
    code: str
    name: str
    ses_role_arn: str
    region: str | None = None
    queue: str | None = None
    contact_list: str = "ccoe-customer-contacts"
    sender: str | None = None
    restricted_recipients: tuple[str, ...] = ()
    max_send_rate: float = Field(default=14.0, gt=0, le=10000)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not CUSTOMER_CODE_RE.match(v):
            raise ValueError(f"{v!r} does not match {CUSTOMER_CODE_RE.pattern}")
        return v

    @field_validator("ses_role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$", v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
        return v

    @property
    def account_id(self) -> str:
        return self.ses_role_arn.split(":")[4]

    @property
    def queue_name(self) -> str:
        return self.queue or f"ttr-{self.code}"

    @property
    def dlq_name(self) -> str:
        return f"{self.queue_name}-dlq"

    def allows(self, address: str) -> bool:
        """The non-production whitelist: empty allows everyone; otherwise case-insensitive."""
        if not self.restricted_recipients:
            return True
        return address.strip().lower() in {r.strip().lower() for r in self.restricted_recipients}


class WebUser(_Strict):
    username: str
    password_hash: str
    roles: tuple[Literal["viewer", "submitter", "approver", "admin"], ...] = ("viewer",)


class OidcConfig(_Strict):
    issuer: str
    client_id: str
    client_secret_env: str = "TTR_OIDC_CLIENT_SECRET"
    roles_claim: str = "groups"
    role_map: dict[str, tuple[Literal["viewer", "submitter", "approver", "admin"], ...]] = {}


class WebConfig(_Strict):
    users: tuple[WebUser, ...] = ()
    oidc: OidcConfig | None = None


class LocalContact(_Strict):
    email: str
    topics: dict[str, Subscription] = {}
    unsubscribe_all: bool = False

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; known: {list(TOPICS)}")
        return v


class LocalConfig(_Strict):
    aws_port: int = Field(default=4566, ge=0, le=65535)
    graph_port: int = Field(default=4580, ge=0, le=65535)
    web_port: int = Field(default=8080, ge=0, le=65535)
    contacts: dict[str, tuple[LocalContact, ...]] = {}
    topic_defaults: dict[str, Subscription] = {
        "aws-announce": "OPT_IN", "aws-approval": "OPT_OUT", "aws-calendar": "OPT_OUT"}

    @field_validator("topic_defaults")
    @classmethod
    def _defaults(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; known: {list(TOPICS)}")
        return {t: v.get(t, "OPT_OUT") for t in TOPICS}


class RuntimeSettings(_Strict):
    """What the runtime's Ray actors reserve, and how they wait. Tenants are I/O-bound: a small
    CPU share and the memory they really use (about 60-90 MB USS each); Ray places by these."""

    tenant_cpus: float = Field(default=0.01, ge=0, le=64)
    tenant_memory_mb: int = Field(default=100, ge=0, le=1_000_000)
    service_cpus: float = Field(default=0.05, ge=0, le=64)        # archive, meetings, orphans: each
    service_memory_mb: int = Field(default=200, ge=0, le=1_000_000)
    local_cpus: float | None = Field(default=None, gt=0, le=4096)  # the local Ray's CPUs (default: all)
    poll_wait_s: int = Field(default=20, ge=1, le=20)              # SQS long poll
    worker_startup_concurrency: int = Field(default=8, ge=1, le=256)  # Ray workers started at once
    start_timeout_s: float = Field(default=300.0, gt=0, le=3600)   # wait for every tenant to accept work
    archive_linger_ms: int = Field(default=400, ge=0, le=5000)     # group commit: wait for a change's other records


class Config(_Strict):
    bucket: str
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    email: EmailConfig
    graph: GraphConfig
    customers: tuple[CustomerConfig, ...] = Field(min_length=1)
    web: WebConfig = WebConfig()
    local: LocalConfig = LocalConfig()
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
        unknown = sorted(set(self.local.contacts) - set(codes))
        if unknown:
            raise ValueError(f"local.contacts: unknown customer code(s) {unknown}")
        return self

    def customer(self, code: str) -> CustomerConfig:
        for c in self.customers:
            if c.code == code:
                return c
        raise KeyError(code)

    @property
    def customer_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.customers)

    def region_of(self, customer: CustomerConfig) -> str:
        return customer.region or self.region

    def sender_of(self, customer: CustomerConfig) -> str:
        return customer.sender or self.email.sender

    def with_overrides(self, **changes) -> "Config":
        """A copy with top-level fields replaced (e.g. the emulator's endpoint and ports)."""
        return self.model_copy(update=changes)


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
