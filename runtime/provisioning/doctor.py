"""``ttr doctor``: preflight checks that say exactly what is wrong and how to fix it.

Shared checks (the runtime's own credentials, the bucket, Microsoft Graph) and, per customer:
the queue and DLQ with the redrive policy, the bucket notification rule, the SES role, the
sender identity, the contact list and its topics, the SES account (sandbox, sending enabled) and
the send quota. Every check reads; none writes.

A check that depends on an earlier one that failed (the SES checks when the role cannot be
assumed) is reported as failed with "not checked", so nothing is ever shown as passing that was
not looked at.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from email.utils import parseaddr
from typing import Callable, Iterable
from urllib.parse import urlsplit

from runtime.adapters.aws import AwsClients, assume_customer_role, aws_errors
from runtime.domain.audience import plan_topics
from runtime.domain.config import Config, CustomerConfig
from runtime.domain.errors import NotFound, PermanentError, TtrError
from runtime.domain.queues import MAX_RECEIVE_COUNT
from runtime.provisioning.bootstrap import notification_rule
from runtime.services.feedback import feedback_topic_arn

PASS, WARN, FAIL = "pass", "warn", "fail"
PROBE_CHANGE_ID = "ttr-doctor-probe"   # a changeId no meeting carries: the lookup finds nothing
PROVISION = "run `ttr provision` (it creates or repairs the bucket, queues, DLQs and notifications)"


@dataclass(frozen=True)
class Check:
    name: str       # "bucket", "graph/token", "{code}/role", ...
    status: str     # pass | warn | fail
    message: str    # what was found; for warn/fail, exactly what is wrong
    fix: str = ""   # how to fix it (empty when it passed)

    def to_dict(self) -> dict:
        return asdict(self)


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    return 1 if any(c.status == FAIL for c in checks) else 0


def summary(checks: list[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL)}


def render_json(checks: list[Check]) -> str:
    return json.dumps({"ok": exit_code(checks) == 0, "summary": summary(checks),
                       "checks": [c.to_dict() for c in checks]}, indent=2)


def render_line(check: Check) -> str:
    line = f"{check.status.upper():<5} {check.name:<24} {check.message}"
    if check.fix:
        line += f"\n{'':<30} fix: {check.fix}"
    return line


class Doctor:
    """Runs the checks against ``cfg``'s AWS account(s) and Graph.

    ``clients`` builds every boto3 client (the runtime's own and, through ``client_with``, the
    tenants'): tests hand in one whose sessions carry botocore event hooks to plant faults that
    the emulator cannot produce."""

    def __init__(self, cfg: Config, clients: AwsClients, *, report: Callable[[Check], None] | None = None):
        self.cfg = cfg
        self.clients = clients
        self.report = report
        self.checks: list[Check] = []
        self._notifications: dict | None = None
        self._notifications_error: TtrError | None = None

    # -- driver -----------------------------------------------------------------------------
    def _add(self, name: str, status: str, message: str, fix: str = "") -> Check:
        check = Check(name, status, message, fix if status != PASS else "")
        self.checks.append(check)
        if self.report:
            self.report(check)
        return check

    def run(self, customer: str | None = None) -> list[Check]:
        customers = self.cfg.customers if customer is None else (self.cfg.customer(customer),)
        self.check_credentials()
        bucket_ok = self.check_bucket()
        for c in customers:
            self.check_customer_queues(c)
            self.check_notification(c, bucket_ok)
            self.check_feedback(c)
            self.check_customer_ses(c)
        self.check_graph()
        self.check_portal_sign_ins()
        return self.checks

    def check_portal_sign_ins(self) -> None:
        """The README's demo passwords must never reach a portal others can use."""
        from runtime.services.logins import DEMO_PASSWORD_SUFFIX, demo_exposed, demo_logins

        names = [d["username"] for d in demo_logins(self.cfg) if d["password"]]
        if not names:
            self._add("web/demo-logins", PASS, "no web.users entry has its documented demo password")
            return
        refused = demo_exposed(self.cfg, None)
        fix = ("give them real passwords (`ttr web hash-password`) or remove them from web.users")
        if refused:
            self._add("web/demo-logins", FAIL, f"`ttr web` refuses to start: {refused}", fix)
        else:
            self._add("web/demo-logins", WARN,
                      f"{', '.join(names)} sign in with the demo password (username + {DEMO_PASSWORD_SUFFIX!r}); "
                      "`ttr web` serves them on loopback only", fix)

    # -- the runtime's own account ------------------------------------------------------------
    def check_credentials(self) -> None:
        try:
            with aws_errors("sts.GetCallerIdentity"):
                me = self.clients.client("sts").get_caller_identity()
        except TtrError as exc:
            self._add("aws/credentials", FAIL, f"the runtime's AWS credentials do not work: {exc}",
                      "provide credentials the usual boto3 way (environment, AWS_PROFILE, instance "
                      "or ECS task role) for the management account that holds the bucket and queues")
            return
        self._add("aws/credentials", PASS, f"running as {me['Arn']} (account {me['Account']})")

    def check_bucket(self) -> bool:
        s3 = self.clients.client("s3")
        b = self.cfg.bucket
        try:
            with aws_errors("s3.HeadBucket"):
                s3.head_bucket(Bucket=b)
        except NotFound:
            self._add("bucket", FAIL, f"bucket {b} does not exist (or is in another region than {self.cfg.region})",
                      PROVISION)
            return False
        except TtrError as exc:
            self._add("bucket", FAIL, f"bucket {b} cannot be reached: {exc}",
                      f"allow s3:ListBucket on arn:aws:s3:::{b} for the runtime's role "
                      "(deploy/iam/runtime-policy.json), and check that the bucket is yours")
            return False
        missing: list[str] = []
        try:
            missing = self._bucket_hardening(s3, b)
        except TtrError as exc:
            self._add("bucket", WARN, f"bucket {b} exists; its settings could not be read: {exc}",
                      "allow the read-only s3:GetBucket* actions of deploy/iam/operator-policy.json "
                      "to whoever runs `ttr doctor`")
            return True
        if missing:
            self._add("bucket", WARN, f"bucket {b} exists but {'; '.join(missing)}", PROVISION)
        else:
            self._add("bucket", PASS, f"bucket {b}: versioning on, default encryption, public access blocked")
        return True

    @staticmethod
    def _bucket_hardening(s3, b: str) -> list[str]:
        def read(op: str, call) -> dict:
            try:
                with aws_errors(op):
                    return call()
            except NotFound:
                return {}

        missing = []
        if read("s3.GetBucketVersioning", lambda: s3.get_bucket_versioning(Bucket=b)).get("Status") != "Enabled":
            missing.append("versioning is off")
        enc = read("s3.GetBucketEncryption", lambda: s3.get_bucket_encryption(Bucket=b))
        if not enc.get("ServerSideEncryptionConfiguration", {}).get("Rules"):
            missing.append("it has no default encryption")
        pab = read("s3.GetPublicAccessBlock", lambda: s3.get_public_access_block(Bucket=b))
        flags = pab.get("PublicAccessBlockConfiguration", {})
        off = [k for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
               if flags.get(k) is not True]
        if off:
            missing.append(f"public access is not blocked ({', '.join(off)} off)")
        return missing

    def check_customer_queues(self, c: CustomerConfig) -> None:
        sqs = self.clients.client("sqs")
        dlq_arn = None
        try:
            dlq_url, dlq_attrs = self._queue(sqs, c.dlq_name)
            dlq_arn = dlq_attrs["QueueArn"]
            depth = int(dlq_attrs.get("ApproximateNumberOfMessages", 0) or 0)
            if depth:
                self._add(f"{c.code}/dlq", WARN,
                          f"DLQ {c.dlq_name} holds {depth} message(s): triggers that failed {MAX_RECEIVE_COUNT} times",
                          f"look at them with `ttr status` and the runtime's logs, fix the cause, then "
                          f"`ttr dlq redrive --customer {c.code}`")
            else:
                self._add(f"{c.code}/dlq", PASS, f"DLQ {c.dlq_name} exists and is empty")
        except NotFound:
            self._add(f"{c.code}/dlq", FAIL, f"DLQ {c.dlq_name} does not exist: failing triggers would have "
                      "nowhere to go", PROVISION)
        except TtrError as exc:
            self._add(f"{c.code}/dlq", FAIL, f"DLQ {c.dlq_name} cannot be read: {exc}",
                      "allow sqs:GetQueueUrl and sqs:GetQueueAttributes on the ttr-* queues "
                      "(deploy/iam/runtime-policy.json)")

        name = f"{c.code}/queue"
        try:
            _, attrs = self._queue(sqs, c.queue_name)
        except NotFound:
            self._add(name, FAIL, f"queue {c.queue_name} does not exist: this customer's triggers are never "
                      "delivered", PROVISION)
            return
        except TtrError as exc:
            self._add(name, FAIL, f"queue {c.queue_name} cannot be read: {exc}",
                      "allow sqs:GetQueueUrl and sqs:GetQueueAttributes on the ttr-* queues "
                      "(deploy/iam/runtime-policy.json)")
            return
        problems = []
        try:
            redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
        except ValueError:
            redrive = {}
        if not redrive:
            problems.append("it has no redrive policy (a failing trigger would be retried until it expires)")
        elif dlq_arn and redrive.get("deadLetterTargetArn") != dlq_arn:
            problems.append(f"its redrive policy sends to {redrive.get('deadLetterTargetArn')}, not to {dlq_arn}")
        elif int(redrive.get("maxReceiveCount", 0)) != MAX_RECEIVE_COUNT:
            problems.append(f"its maxReceiveCount is {redrive.get('maxReceiveCount')}, not {MAX_RECEIVE_COUNT}")
        if not self._policy_allows_bucket(attrs.get("Policy"), attrs["QueueArn"]):
            problems.append(f"its policy does not let bucket {self.cfg.bucket} send to it (S3 events are dropped)")
        if problems:
            self._add(name, FAIL, f"queue {c.queue_name}: " + "; ".join(problems), PROVISION)
        else:
            self._add(name, PASS, f"queue {c.queue_name}: redrive to {c.dlq_name} after {MAX_RECEIVE_COUNT} "
                      f"receives; bucket {self.cfg.bucket} may send")

    @staticmethod
    def _queue(sqs, name: str) -> tuple[str, dict]:
        with aws_errors("sqs.GetQueueUrl"):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        with aws_errors("sqs.GetQueueAttributes"):
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return url, attrs

    def _policy_allows_bucket(self, policy: str | None, queue_arn: str) -> bool:
        try:
            doc = json.loads(policy or "{}")
        except ValueError:
            return False
        statements = doc.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        bucket_arn = f"arn:aws:s3:::{self.cfg.bucket}"
        for st in statements:
            principal = st.get("Principal") or {}
            services = principal.get("Service", []) if isinstance(principal, dict) else []
            services = [services] if isinstance(services, str) else services
            actions = st.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            source = json.dumps(st.get("Condition", {}))
            if (st.get("Effect") == "Allow" and "s3.amazonaws.com" in services
                    and any(a in ("sqs:SendMessage", "sqs:*") for a in actions) and bucket_arn in source):
                return True
        return False

    def check_notification(self, c: CustomerConfig, bucket_ok: bool) -> None:
        name = f"{c.code}/notification"
        if not bucket_ok:
            self._add(name, FAIL, "not checked: the bucket is missing or unreachable (see bucket)", PROVISION)
            return
        if self._notifications is None and self._notifications_error is None:
            try:
                with aws_errors("s3.GetBucketNotificationConfiguration"):
                    self._notifications = self.clients.client("s3").get_bucket_notification_configuration(
                        Bucket=self.cfg.bucket)
            except TtrError as exc:
                self._notifications_error = exc
        if self._notifications_error is not None:
            self._add(name, FAIL, f"the bucket's notification configuration cannot be read: "
                      f"{self._notifications_error}",
                      "allow s3:GetBucketNotification on the bucket to whoever runs `ttr doctor`")
            return
        try:
            with aws_errors("sqs.GetQueueUrl"):
                url = self.clients.client("sqs").get_queue_url(QueueName=c.queue_name)["QueueUrl"]
            with aws_errors("sqs.GetQueueAttributes"):
                queue_arn = self.clients.client("sqs").get_queue_attributes(
                    QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        except TtrError:
            self._add(name, FAIL, f"not checked: queue {c.queue_name} is missing or unreadable "
                      f"(see {c.code}/queue)", PROVISION)
            return
        wanted = notification_rule(c, queue_arn)
        key = _rule_filter(wanted)
        rules = (self._notifications or {}).get("QueueConfigurations", [])
        if any(_rule_filter(r) == key for r in rules):
            self._add(name, PASS, f"customers/{c.code}/*.json -> {c.queue_name}")
            return
        prefix = f"customers/{c.code}/"
        elsewhere = [r.get("QueueArn") for r in rules if prefix in json.dumps(r.get("Filter", {}))]
        detail = f" (a rule for that prefix goes to {', '.join(elsewhere)})" if elsewhere else ""
        self._add(name, FAIL, f"no bucket notification sends new {prefix}*.json objects to {queue_arn}{detail}: "
                  "this customer's triggers never reach the runtime", PROVISION)

    # -- the customer's account -----------------------------------------------------------------
    def check_feedback(self, c: CustomerConfig) -> None:
        """The SES feedback queue and topic (management account), the topic feeding the queue.
        Without them sending still works, but bounces and complaints go unseen: a warning."""
        name, fix = f"{c.code}/feedback", "run `ttr provision` (it creates the feedback topic, queue and subscription)"
        sqs, sns = self.clients.client("sqs"), self.clients.client("sns")
        try:
            with aws_errors("sqs.GetQueueUrl"):
                url = sqs.get_queue_url(QueueName=c.feedback_queue_name)["QueueUrl"]
            with aws_errors("sqs.GetQueueAttributes"):
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            topic = feedback_topic_arn(c, arn)
            with aws_errors("sns.GetTopicAttributes"):
                sns.get_topic_attributes(TopicArn=topic)
            with aws_errors("sns.ListSubscriptionsByTopic"):
                subs = [s for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
                        for s in page.get("Subscriptions", [])]
        except NotFound as exc:
            self._add(name, WARN, f"SES feedback is not set up ({exc}): bounces and complaints go unseen", fix)
            return
        except TtrError as exc:
            self._add(name, WARN, f"cannot read the SES feedback set-up: {exc}",
                      "allow sqs:GetQueueAttributes, sns:GetTopicAttributes and sns:ListSubscriptionsByTopic "
                      "(deploy/iam/operator-policy.json)")
            return
        if not any(s.get("Protocol") == "sqs" and s.get("Endpoint") == arn for s in subs):
            self._add(name, WARN, f"topic {c.feedback_topic_name} does not feed queue {c.feedback_queue_name}", fix)
            return
        self._add(name, PASS, f"SES feedback arrives through {c.feedback_topic_name} in {c.feedback_queue_name} "
                              "(the customer's SES must publish to it: see `ttr provision`'s last lines)")

    def check_customer_ses(self, c: CustomerConfig) -> None:
        region = self.cfg.region_of(c)
        where = f"account {c.account_id} ({region})"
        dependents = ("sender", "contact-list", "ses-account", "send-quota")
        try:
            creds = assume_customer_role(self.clients, c, f"ttr-doctor-{c.code}", 900)
        except TtrError as exc:
            self._add(f"{c.code}/role", FAIL, f"cannot assume {c.ses_role_arn}: {exc}",
                      f"in {where}, create the role with deploy/iam/customer-ses-sender-trust-policy.json "
                      "(trusting the runtime's role) and deploy/iam/customer-ses-sender-policy.json; "
                      "in the management account, allow sts:AssumeRole on it "
                      "(deploy/iam/runtime-policy.json)")
            for d in dependents:
                self._add(f"{c.code}/{d}", FAIL, f"not checked: the role cannot be assumed (see {c.code}/role)",
                          f"fix {c.code}/role first")
            return
        if c.external_id:
            self._add(f"{c.code}/role", PASS, f"assumed {c.ses_role_arn} with its ExternalId")
        else:
            self._add(f"{c.code}/role", WARN, f"assumed {c.ses_role_arn} without an ExternalId",
                      f"set customers[{c.code}].external_id and require it in the role's trust policy "
                      "(deploy/iam/customer-ses-sender-trust-policy.json, sts:ExternalId)")
        ses = self.clients.client_with("sesv2", creds, region)
        self._check_sender(c, ses, where)
        self._check_contact_list(c, ses, where)
        self._check_account(c, ses, where)

    def _check_sender(self, c: CustomerConfig, ses, where: str) -> None:
        name = f"{c.code}/sender"
        address = parseaddr(self.cfg.sender_of(c))[1] or self.cfg.sender_of(c)
        domain = address.rpartition("@")[2]
        found: dict[str, dict] = {}
        for identity in (address, domain):
            try:
                with aws_errors("sesv2.GetEmailIdentity"):
                    found[identity] = ses.get_email_identity(EmailIdentity=identity)
            except NotFound:
                continue
            except TtrError as exc:
                self._add(name, FAIL, f"cannot read SES identity {identity} in {where}: {exc}",
                          "allow ses:GetEmailIdentity to the SES role (deploy/iam/customer-ses-sender-policy.json)")
                return
            if found[identity].get("VerifiedForSendingStatus"):
                via = "" if identity == address else f" (through the verified domain {domain})"
                self._add(name, PASS, f"{address} is verified for sending in {where}{via}")
                return
        if not found:
            self._add(name, FAIL, f"sender {address} is not an SES identity in {where} (nor is {domain})",
                      f"in {where}: `aws sesv2 create-email-identity --email-identity {address}` and click "
                      f"the link SES mails to it, or verify the domain {domain} (DKIM records)")
            return
        states = ", ".join(f"{i}: {r.get('VerificationStatus', 'not verified')}" for i, r in found.items())
        self._add(name, FAIL, f"sender {address} is not verified for sending in {where} ({states})",
                  f"finish the verification in {where}: click the link SES sent to {address}, or publish the "
                  f"DKIM records of {domain} (`aws sesv2 get-email-identity --email-identity {domain}`)")

    def _check_contact_list(self, c: CustomerConfig, ses, where: str) -> None:
        name = f"{c.code}/contact-list"
        try:
            with aws_errors("sesv2.GetContactList"):
                cl = ses.get_contact_list(ContactListName=c.contact_list)
        except NotFound:
            self._add(name, FAIL, f"contact list {c.contact_list} does not exist in {where}",
                      f"in {where}: `aws sesv2 create-contact-list --contact-list-name {c.contact_list} "
                      f"--topics {_topics_arg(self.cfg.topics)}` (or `ttr topics sync --customer {c.code}`), or set customers[{c.code}].contact_list to the "
                      "list that exists")
            return
        except TtrError as exc:
            self._add(name, FAIL, f"cannot read contact list {c.contact_list} in {where}: {exc}",
                      "allow ses:GetContactList and ses:ListContacts to the SES role "
                      "(deploy/iam/customer-ses-sender-policy.json)")
            return
        topics = cl.get("Topics", [])
        steps = plan_topics(topics, self.cfg.topics)
        missing = [st.name for st in steps if st.kind == "add"]
        if missing:
            # UpdateContactList replaces the whole topic list: the fix repeats the existing topics.
            self._add(name, FAIL, f"contact list {c.contact_list} in {where} lacks topic(s) {', '.join(missing)}: "
                      "nobody can receive those notifications",
                      f"`ttr topics sync --customer {c.code}`, or in {where}: `aws sesv2 update-contact-list "
                      f"--contact-list-name {c.contact_list} --topics {_topics_arg(self._configured(missing), topics)}` "
                      "(the command replaces the whole topic list, so it repeats the existing topics as they are)")
            return
        drift = [st.line() for st in steps if st.kind in ("update", "remove")]
        if drift:
            self._add(name, WARN, f"contact list {c.contact_list} in {where} differs from the configured topics: "
                      + "; ".join(drift), f"`ttr topics sync --customer {c.code}`")
            return
        self._add(name, PASS, f"contact list {c.contact_list} has topics {', '.join(self.cfg.topic_defaults)}")

    def _configured(self, names: Iterable[str]) -> list:
        wanted = set(names)
        return [t for t in self.cfg.topics if t.name in wanted]

    def _check_account(self, c: CustomerConfig, ses, where: str) -> None:
        try:
            with aws_errors("sesv2.GetAccount"):
                acct = ses.get_account()
        except NotFound:
            # Real SES always answers GetAccount; a 404 means an endpoint without it (moto).
            msg = "the SES endpoint does not implement GetAccount (HTTP 404; the moto emulator does not)"
            self._add(f"{c.code}/ses-account", WARN, f"{msg}: sandbox status unknown in {where}",
                      "check in the SES console that production access is granted")
            self._add(f"{c.code}/send-quota", WARN, f"{msg}: send quota unknown in {where}",
                      "check the sending quota in the SES console")
            return
        except TtrError as exc:
            for d in ("ses-account", "send-quota"):
                self._add(f"{c.code}/{d}", FAIL, f"cannot read the SES account of {where}: {exc}",
                          "allow ses:GetAccount to the SES role (deploy/iam/customer-ses-sender-policy.json)")
            return

        name = f"{c.code}/ses-account"
        enforcement = acct.get("EnforcementStatus", "HEALTHY")
        if not acct.get("SendingEnabled", True):
            self._add(name, FAIL, f"sending is disabled for the SES account of {where}",
                      f"in {where}: `aws sesv2 put-account-sending-attributes --sending-enabled` "
                      "(or find out in the SES console why AWS paused it)")
        elif enforcement == "SHUTDOWN":
            self._add(name, FAIL, f"SES has shut down sending for {where} (EnforcementStatus SHUTDOWN)",
                      "open a case with AWS Support from that account (see the SES reputation dashboard)")
        elif not acct.get("ProductionAccessEnabled"):
            self._add(name, WARN, f"SES in {where} is in the sandbox: it sends only to verified addresses, "
                      "at most 200 a day",
                      f"request production access for {where}: `aws sesv2 put-account-details "
                      "--production-access-enabled --mail-type TRANSACTIONAL --website-url ...` "
                      "(or in the SES console)")
        elif enforcement == "PROBATION":
            self._add(name, WARN, f"SES account of {where} is on probation (bounces or complaints)",
                      "see the SES reputation dashboard of that account before it is shut down")
        else:
            self._add(name, PASS, f"out of the sandbox, sending enabled ({where})")

        name = f"{c.code}/send-quota"
        quota = acct.get("SendQuota") or {}
        if not quota:
            self._add(name, FAIL, f"SES returned no send quota for {where}",
                      "check the account in the SES console")
            return
        rate, day, sent = (float(quota.get(k, 0)) for k in ("MaxSendRate", "Max24HourSend", "SentLast24Hours"))
        text = f"{rate:g}/s, {sent:g} of {day:g} sent in the last 24 h ({where})"
        if c.max_send_rate > rate:
            self._add(name, WARN, f"{text}; ttr paces this tenant at {c.max_send_rate:g}/s, above SES's {rate:g}/s",
                      f"set customers[{c.code}].max_send_rate to at most {rate:g}, or ask AWS for a higher rate")
        elif day and sent >= day * 0.9:
            self._add(name, WARN, f"{text}: 90 % of the daily quota is used",
                      "ask AWS for a higher sending quota for that account")
        else:
            self._add(name, PASS, text)

    # -- Microsoft Graph ------------------------------------------------------------------------
    def check_graph(self) -> None:
        from runtime.adapters.graph import AZURE_ENV, GRAPH_HOST

        g = self.cfg.graph
        host = (urlsplit(g.base_url).hostname or "").lower()
        is_graph = host == GRAPH_HOST or host.endswith("." + GRAPH_HOST)
        have_azure = all(os.environ.get(k) for k in AZURE_ENV)
        fix_creds = ("set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for an app registration "
                     "with the Calendars.ReadWrite application permission (docs/OPERATIONS.md, "
                     "'Rotate the Graph secret')")
        if not have_azure and is_graph:
            missing = [k for k in AZURE_ENV if not os.environ.get(k)]
            self._add("graph/token", FAIL, f"{', '.join(missing)} not set: no token for {g.base_url}", fix_creds)
            self._add("graph/mailbox", FAIL, "not checked: no Graph token (see graph/token)", fix_creds)
            return
        if not have_azure:
            self._add("graph/token", PASS, f"{g.base_url} is not Microsoft Graph: the emulator's static token is used")
        elif not self._graph_token(host, fix_creds):
            self._add("graph/mailbox", FAIL, "not checked: no Graph token (see graph/token)", fix_creds)
            return
        self._graph_mailbox()

    def _graph_token(self, host: str, fix: str) -> bool:
        from runtime.adapters.graph import request_token

        tenant, client = os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"]
        try:
            request_token(host, tenant, client, os.environ["AZURE_CLIENT_SECRET"])
        except TtrError as exc:
            self._add("graph/token", FAIL, f"no token for client {client} in tenant {tenant}: {exc}", fix)
            return False
        self._add("graph/token", PASS, f"token obtained for client {client} in tenant {tenant}")
        return True

    def _graph_mailbox(self) -> None:
        from runtime.adapters.graph import GraphCalendar

        g = self.cfg.graph

        async def probe() -> None:
            cal = GraphCalendar.from_config(g, emulator=False, max_retries=1, retry_delay=0.2,
                                            timeout=10.0, max_inline_wait=1.0)
            async with cal:
                await cal.find_by_change(PROBE_CHANGE_ID)

        try:
            asyncio.run(probe())
        except TtrError as exc:
            code = getattr(exc, "code", "") or ""
            if isinstance(exc, NotFound) or "Mailbox" in code or "InvalidUser" in code:
                fix = (f"graph.organizer must be an existing mailbox with Exchange Online ({g.organizer} "
                       "was not found)")
            elif isinstance(exc, PermanentError) and ("Access" in code or "403" in code or "401" in code):
                fix = ("grant the app the Calendars.ReadWrite application permission (admin consent) and "
                       f"include {g.organizer} in its application access policy "
                       "(New-ApplicationAccessPolicy)")
            else:
                fix = f"check that {g.base_url} is reachable from here (proxy, firewall, DNS)"
            self._add("graph/mailbox", FAIL, f"the calendar of {g.organizer} cannot be read: {exc}", fix)
            return
        self._add("graph/mailbox", PASS, f"the calendar of {g.organizer} is reachable at {g.base_url}")


def _rule_filter(rule: dict) -> tuple:
    rules = rule.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    events = set(rule.get("Events", []))
    created = bool(events & {"s3:ObjectCreated:*", "s3:ObjectCreated:Put"})
    return (rule.get("QueueArn"), created, tuple(sorted((r["Name"].lower(), r["Value"]) for r in rules)))


def _topics_arg(missing: Iterable, existing: Iterable[dict] = ()) -> str:
    """``--topics`` for the AWS CLI: the existing topics as they are, then the missing (configured) ones."""
    items = [(t["TopicName"], t.get("DisplayName") or t["TopicName"], t.get("DefaultSubscriptionStatus", "OPT_OUT"))
             for t in existing]
    items += [(t.name, t.display, t.default) for t in missing]
    return " ".join(f"'TopicName={n},DisplayName={d},DefaultSubscriptionStatus={s}'" for n, d, s in items)
