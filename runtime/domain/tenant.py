"""What one tenant's process knows of the configuration: a small frozen view, without pydantic.

The supervisor parses and validates the whole configuration (``runtime.domain.config``, pydantic)
once; each CustomerActor is shipped ``Config.tenant_view(code)``: its own customer, the bucket, the
region, the AWS endpoint and the email settings, nothing about the other customers (tenant
isolation) and no pydantic in the tenant's process (issue 11: a tenant's memory).

What follows from the configured fields (queue names, the whitelist, a customer's region and
sender) is written once, in ``CustomerFacts`` and ``ConfigFacts``: the pydantic models and these
views both inherit it.
"""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError, dataclass

CUSTOMER_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class CustomerFacts:
    """What a customer's configured fields imply; mixed into ``CustomerConfig`` and ``TenantCustomer``
    (which carry ``code``, ``queue``, ``ses_role_arn`` and ``restricted_recipients``)."""

    __slots__ = ()

    @property
    def account_id(self) -> str:
        return self.ses_role_arn.split(":")[4]

    @property
    def queue_name(self) -> str:
        return self.queue or f"ttr-{self.code}"

    @property
    def dlq_name(self) -> str:
        return f"{self.queue_name}-dlq"

    @property
    def feedback_queue_name(self) -> str:
        """Where this customer's SES feedback (bounces, complaints, deliveries) arrives."""
        return f"{self.queue_name}-feedback"

    @property
    def feedback_topic_name(self) -> str:
        """The SNS topic (management account) this customer's SES publishes its feedback to."""
        return f"{self.queue_name}-ses-feedback"

    def allows(self, address: str) -> bool:
        """The non-production whitelist: empty allows everyone; otherwise case-insensitive."""
        if not self.restricted_recipients:
            return True
        return address.strip().lower() in {r.strip().lower() for r in self.restricted_recipients}


class ConfigFacts:
    """A customer's effective region and sender; mixed into ``Config`` and ``TenantConfig`` (which
    carry ``region`` and ``email.sender``)."""

    __slots__ = ()

    def region_of(self, customer: CustomerFacts) -> str:
        return customer.region or self.region

    def sender_of(self, customer: CustomerFacts) -> str:
        return customer.sender or self.email.sender


class TenantCustomer(CustomerFacts):
    """One customer's configuration as ``CustomerConfig`` validated it, read-only: every field of
    the model, by the model's names. The field list lives once, in ``CustomerConfig``:
    ``Config.tenant_view`` copies each of its fields here, so a field added there reaches the
    tenant without a second declaration (this module cannot import the pydantic model)."""

    __slots__ = ("_values",)

    def __init__(self, **values):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str):
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            raise AttributeError(f"TenantCustomer has no field {name!r}") from None

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"TenantCustomer is read-only: cannot set {name!r}")

    def __reduce__(self):  # pickled as Ray ships it: the values, rebuilt by the constructor
        return (_tenant_customer, (self._values,))

    def __eq__(self, other) -> bool:
        return isinstance(other, TenantCustomer) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"TenantCustomer(code={self._values.get('code')!r})"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._values)


def _tenant_customer(values: dict) -> TenantCustomer:
    return TenantCustomer(**values)


@dataclass(frozen=True, slots=True)
class TenantEmail:
    """``email:`` as a tenant uses it."""

    sender: str
    portal_base_url: str
    show_affected_customers: bool = False


@dataclass(frozen=True, slots=True)
class TenantConfig(ConfigFacts):
    """What a CustomerActor is given: built by ``Config.tenant_view(code)`` from the validated
    configuration, never parsed on its own. It answers the ``Config`` calls a tenant makes
    (``customer(code)`` for its own code only, ``region_of``, ``sender_of``)."""

    bucket: str
    region: str
    aws_endpoint_url: str | None
    email: TenantEmail
    tenant: TenantCustomer
    source: str = ""

    def customer(self, code: str) -> TenantCustomer:
        if code != self.tenant.code:  # a tenant's view holds no other customer
            raise KeyError(code)
        return self.tenant

    @property
    def customer_codes(self) -> tuple[str, ...]:
        return (self.tenant.code,)
