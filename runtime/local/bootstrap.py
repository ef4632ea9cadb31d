"""Idempotent set-up of what the runtime needs, reported one line per resource.

``ensure_management`` covers the runtime's own account: the bucket, a queue and a DLQ per
customer, and the bucket notifications. ``seed_customer_ses`` (emulator only) creates, inside
each customer's own account (reached through the customer's role), the SES sender identity,
the contact list with its topics and the seed contacts.

Each step reads first and writes only what differs, so running it twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from ..adapters.aws import AwsClients, aws_errors
from ..config import TOPICS, Config, CustomerConfig
from ..errors import AlreadyExists, NotFound

VISIBILITY_TIMEOUT = 60          # seconds; heartbeats extend it while work runs
MAX_RECEIVE_COUNT = 5
RETENTION = 4 * 24 * 3600        # main queue: 4 days
DLQ_RETENTION = 14 * 24 * 3600   # DLQ: 14 days, the maximum
WAIT_TIME = 20                   # long polling
NOTIFICATION_ID_PREFIX = "ttr-"
TOPIC_DISPLAY = {"aws-approval": "Change approval requests",
                 "aws-announce": "Change announcements",
                 "aws-calendar": "Change implementation meetings"}


@dataclass(frozen=True)
class Step:
    resource: str
    outcome: str  # created | updated | unchanged (or "would ..." under dry-run)

    def __str__(self) -> str:
        return f"{self.outcome:<16} {self.resource}"


Report = Callable[[Step], None]


class _Recorder:
    def __init__(self, report: Report | None, dry_run: bool):
        self.steps: list[Step] = []
        self.report = report
        self.dry_run = dry_run

    def __call__(self, resource: str, outcome: str) -> None:
        if self.dry_run and outcome != "unchanged":
            outcome = {"created": "would create", "updated": "would update"}[outcome]
        step = Step(resource, outcome)
        self.steps.append(step)
        if self.report:
            self.report(step)


def queue_attributes(dlq_arn: str, bucket: str, queue_arn: str) -> dict[str, str]:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ttr-allow-bucket-events",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
        }],
    }
    return {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
        "MessageRetentionPeriod": str(RETENTION),
        "ReceiveMessageWaitTimeSeconds": str(WAIT_TIME),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        "Policy": json.dumps(policy),
    }


def _ensure_queue(sqs, name: str, attributes: dict[str, str], rec: _Recorder) -> tuple[str, str]:
    """Create or converge a queue; returns (url, arn)."""
    try:
        with aws_errors("sqs.GetQueueUrl"):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except NotFound:
        url = None
    if url is None:
        if rec.dry_run:
            rec(f"sqs queue {name}", "created")
            return f"(new queue {name})", f"arn:aws:sqs:::{name}"
        with aws_errors("sqs.CreateQueue"):
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        rec(f"sqs queue {name}", "created")
    else:
        with aws_errors("sqs.GetQueueAttributes"):
            current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        differs = {k: v for k, v in attributes.items() if not _same_attr(k, current.get(k), v)}
        if differs:
            if not rec.dry_run:
                with aws_errors("sqs.SetQueueAttributes"):
                    sqs.set_queue_attributes(QueueUrl=url, Attributes=differs)
            rec(f"sqs queue {name} ({', '.join(sorted(differs))})", "updated")
        else:
            rec(f"sqs queue {name}", "unchanged")
    with aws_errors("sqs.GetQueueAttributes"):
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _same_attr(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name in ("RedrivePolicy", "Policy"):
        try:
            return json.loads(current) == json.loads(wanted)
        except ValueError:
            return False
    return str(current) == str(wanted)


def _ensure_bucket(s3, cfg: Config, rec: _Recorder) -> None:
    try:
        with aws_errors("s3.HeadBucket"):
            s3.head_bucket(Bucket=cfg.bucket)
        rec(f"s3 bucket {cfg.bucket}", "unchanged")
        return
    except NotFound:
        pass
    if not rec.dry_run:
        kwargs: dict = {"Bucket": cfg.bucket}
        if cfg.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": cfg.region}
        try:
            with aws_errors("s3.CreateBucket"):
                s3.create_bucket(**kwargs)
        except AlreadyExists:
            pass
    rec(f"s3 bucket {cfg.bucket}", "created")


def notification_rule(customer: CustomerConfig, queue_arn: str) -> dict:
    return {
        "Id": f"{NOTIFICATION_ID_PREFIX}{customer.code}",
        "QueueArn": queue_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [
            {"Name": "prefix", "Value": f"customers/{customer.code}/"},
            {"Name": "suffix", "Value": ".json"}]}},
    }


def _rule_key(rule: dict) -> tuple:
    rules = rule.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return (rule.get("QueueArn"), tuple(sorted(rule.get("Events", []))),
            tuple(sorted((r["Name"].lower(), r["Value"]) for r in rules)))


def _ensure_notifications(s3, cfg: Config, wanted: list[dict], rec: _Recorder) -> None:
    """Merge our rules into the bucket's notification configuration; never drop others' rules."""
    try:
        with aws_errors("s3.GetBucketNotificationConfiguration"):
            current = s3.get_bucket_notification_configuration(Bucket=cfg.bucket)
    except NotFound:
        current = {}
    current.pop("ResponseMetadata", None)
    queues = current.get("QueueConfigurations", [])
    ours = {r["Id"]: r for r in wanted}
    merged = [q for q in queues if q.get("Id") not in ours]
    merged.extend(wanted)
    before = {q.get("Id"): _rule_key(q) for q in queues}
    changed = [i for i, r in ours.items() if before.get(i) != _rule_key(r)]
    if not changed:
        rec(f"s3 notifications {cfg.bucket} ({len(wanted)} ttr rules)", "unchanged")
        return
    new_cfg = {k: v for k, v in current.items() if k in (
        "TopicConfigurations", "LambdaFunctionConfigurations", "EventBridgeConfiguration")}
    new_cfg["QueueConfigurations"] = merged
    if not rec.dry_run:
        with aws_errors("s3.PutBucketNotificationConfiguration"):
            s3.put_bucket_notification_configuration(Bucket=cfg.bucket, NotificationConfiguration=new_cfg)
    outcome = "created" if not any(i in before for i in changed) else "updated"
    rec(f"s3 notifications {cfg.bucket} ({', '.join(sorted(changed))})", outcome)


def ensure_management(cfg: Config, clients: AwsClients, *, report: Report | None = None,
                      dry_run: bool = False) -> list[Step]:
    """The bucket, per customer a queue with its DLQ, and the bucket notifications."""
    rec = _Recorder(report, dry_run)
    s3 = clients.client("s3")
    sqs = clients.client("sqs")
    _ensure_bucket(s3, cfg, rec)
    rules = []
    for customer in cfg.customers:
        _, dlq_arn = _ensure_queue(sqs, customer.dlq_name,
                                   {"MessageRetentionPeriod": str(DLQ_RETENTION)}, rec)
        queue_arn = _queue_arn_for(sqs, customer.queue_name, dlq_arn)
        _, queue_arn = _ensure_queue(sqs, customer.queue_name,
                                     queue_attributes(dlq_arn, cfg.bucket, queue_arn), rec)
        rules.append(notification_rule(customer, queue_arn))
    _ensure_notifications(s3, cfg, rules, rec)
    return rec.steps


def _queue_arn_for(sqs, name: str, dlq_arn: str) -> str:
    # The queue ARN is needed inside its own policy; it follows from the DLQ's account and region.
    prefix = dlq_arn.rsplit(":", 1)[0]
    return f"{prefix}:{name}"


# ---------------------------------------------------------------------------------------------
# Customer SES (emulator seed)


def assume_customer(clients: AwsClients, customer: CustomerConfig, session_name: str) -> dict:
    sts = clients.client("sts")
    with aws_errors("sts.AssumeRole"):
        return sts.assume_role(RoleArn=customer.ses_role_arn, RoleSessionName=session_name,
                               DurationSeconds=3600)["Credentials"]


def seed_customer_ses(cfg: Config, clients: AwsClients, *, report: Report | None = None) -> list[Step]:
    """Inside each customer's account: sender identity, contact list and topics, seed contacts."""
    rec = _Recorder(report, False)
    defaults = cfg.local.topic_defaults
    for customer in cfg.customers:
        creds = assume_customer(clients, customer, f"ttr-bootstrap-{customer.code}")
        ses = clients.client_with("sesv2", creds, cfg.region_of(customer))
        where = f"[{customer.code} {customer.account_id}]"
        sender = cfg.sender_of(customer)
        try:
            with aws_errors("sesv2.GetEmailIdentity"):
                ses.get_email_identity(EmailIdentity=sender)
            rec(f"ses identity {sender} {where}", "unchanged")
        except NotFound:
            with aws_errors("sesv2.CreateEmailIdentity"):
                ses.create_email_identity(EmailIdentity=sender)
            rec(f"ses identity {sender} {where}", "created")

        topics = [{"TopicName": t, "DisplayName": TOPIC_DISPLAY[t],
                   "DefaultSubscriptionStatus": defaults[t]} for t in TOPICS]
        try:
            with aws_errors("sesv2.GetContactList"):
                current = ses.get_contact_list(ContactListName=customer.contact_list)
            have = {t["TopicName"]: t.get("DefaultSubscriptionStatus") for t in current.get("Topics", [])}
            if have != {t["TopicName"]: t["DefaultSubscriptionStatus"] for t in topics}:
                with aws_errors("sesv2.UpdateContactList"):
                    ses.update_contact_list(ContactListName=customer.contact_list, Topics=topics)
                rec(f"ses contact list {customer.contact_list} {where}", "updated")
            else:
                rec(f"ses contact list {customer.contact_list} {where}", "unchanged")
        except NotFound:
            with aws_errors("sesv2.CreateContactList"):
                ses.create_contact_list(ContactListName=customer.contact_list, Topics=topics)
            rec(f"ses contact list {customer.contact_list} {where}", "created")

        for contact in cfg.local.contacts.get(customer.code, ()):
            prefs = [{"TopicName": t, "SubscriptionStatus": s} for t, s in contact.topics.items()]
            try:
                with aws_errors("sesv2.GetContact"):
                    cur = ses.get_contact(ContactListName=customer.contact_list, EmailAddress=contact.email)
                same = (bool(cur.get("UnsubscribeAll")) == contact.unsubscribe_all and
                        {p["TopicName"]: p["SubscriptionStatus"] for p in cur.get("TopicPreferences", [])}
                        == dict(contact.topics))
                if same:
                    rec(f"ses contact {contact.email} {where}", "unchanged")
                    continue
                with aws_errors("sesv2.UpdateContact"):
                    ses.update_contact(ContactListName=customer.contact_list, EmailAddress=contact.email,
                                       TopicPreferences=prefs, UnsubscribeAll=contact.unsubscribe_all)
                rec(f"ses contact {contact.email} {where}", "updated")
            except NotFound:
                with aws_errors("sesv2.CreateContact"):
                    ses.create_contact(ContactListName=customer.contact_list, EmailAddress=contact.email,
                                       TopicPreferences=prefs, UnsubscribeAll=contact.unsubscribe_all)
                rec(f"ses contact {contact.email} {where}", "created")
    return rec.steps
