"""A tenant's SES (v2), inside the tenant's own account through its assumed role.

The role is assumed once per credential lifetime and refreshed shortly before expiry, not per
message. The credentials never leave this object (and so never leave the tenant's actor).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Mapping

from ..config import Config, CustomerConfig
from ..errors import PermanentError, RecipientRejected, RetryableError
from .aws import AwsClients, aws_errors

REFRESH_MARGIN = 300          # seconds before expiry we assume the role again
SESSION_SECONDS = 3600

# SES codes that concern one recipient only: record the recipient as failed, go on.
RECIPIENT_CODES = {"MessageRejected"}


class TenantSes:
    def __init__(self, clients: AwsClients, cfg: Config, customer: CustomerConfig):
        self.clients = clients
        self.customer = customer
        self.region = cfg.region_of(customer)
        self._lock = threading.Lock()
        self._client = None
        self._expires_at = 0.0
        self.assume_role_calls = 0

    def _ses(self):
        with self._lock:
            if self._client is None or time.time() > self._expires_at - REFRESH_MARGIN:
                sts = self.clients.client("sts")
                with aws_errors("sts.AssumeRole"):
                    creds = sts.assume_role(RoleArn=self.customer.ses_role_arn,
                                            RoleSessionName=f"ttr-{self.customer.code}-ses",
                                            DurationSeconds=SESSION_SECONDS)["Credentials"]
                self.assume_role_calls += 1
                exp = creds.get("Expiration")
                if isinstance(exp, datetime):
                    self._expires_at = exp.astimezone(timezone.utc).timestamp()
                else:
                    self._expires_at = time.time() + SESSION_SECONDS
                self._client = self.clients.client_with("sesv2", creds, self.region)
            return self._client

    @property
    def credentials_expire_at(self) -> float:
        return self._expires_at

    def list_contacts(self, contact_list: str) -> list[dict]:
        ses = self._ses()
        out: list[dict] = []
        token = None
        seen: set[str] = set()
        while True:
            kwargs = {"ContactListName": contact_list, "PageSize": 1000}
            if token:
                kwargs["NextToken"] = token
            with aws_errors("sesv2.ListContacts"):
                resp = ses.list_contacts(**kwargs)
            out += resp.get("Contacts", [])
            token = resp.get("NextToken")
            if not token:
                return out
            if token in seen:  # a server repeating itself would loop us forever
                raise RetryableError(f"sesv2.ListContacts: NextToken {token[:20]!r} came back twice",
                                     operation="sesv2.ListContacts")
            seen.add(token)

    def topic_defaults(self, contact_list: str) -> dict[str, str]:
        with aws_errors("sesv2.GetContactList"):
            resp = self._ses().get_contact_list(ContactListName=contact_list)
        return {t["TopicName"]: t.get("DefaultSubscriptionStatus", "OPT_OUT") for t in resp.get("Topics", [])}

    def send(self, *, sender: str, to: str, subject: str, html: str, text: str,
             contact_list: str, topic: str, headers: Mapping[str, str] | None = None) -> str:
        ses = self._ses()
        simple: dict = {"Subject": {"Data": subject, "Charset": "UTF-8"},
                        "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                 "Html": {"Data": html, "Charset": "UTF-8"}}}
        if headers:  # e.g. X-TTR-Ref, which comes back in SES feedback (runtime.feedback)
            simple["Headers"] = [{"Name": k, "Value": v} for k, v in headers.items()]
        try:
            with aws_errors("sesv2.SendEmail"):
                resp = ses.send_email(
                    FromEmailAddress=sender,
                    Destination={"ToAddresses": [to]},
                    Content={"Simple": simple},
                    ListManagementOptions={"ContactListName": contact_list, "TopicName": topic})
        except PermanentError as exc:  # narrow the one per-recipient case
            if exc.code in RECIPIENT_CODES:
                raise RecipientRejected(str(exc), operation="sesv2.SendEmail", code=exc.code) from exc
            raise
        return resp["MessageId"]
