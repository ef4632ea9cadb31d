"""Idempotent set-up of what the runtime needs, reported one line per resource.

``ensure_management`` covers the runtime's own account: the bucket, a queue and a DLQ per
customer, and the bucket notifications. With ``harden=True`` (``ttr provision``, for real AWS)
it also converges the bucket's versioning, default encryption (SSE-S3), public access block and
a lifecycle rule for the trigger versions that versioning keeps, and SSE on the queues.
``seed_customer_ses`` (emulator only) creates, inside each customer's own account (reached
through the customer's role), the SES sender identity, the contact list with its topics and the
seed contacts. Provisioning never touches customer accounts: their SES is theirs (``ttr doctor``
checks it).

Each step reads first and writes only what differs, so running it twice changes nothing. Under
``dry_run`` every step still reads, and reports what it would do, but writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from runtime.adapters.aws import AwsClients, assume_customer_role, aws_errors
from runtime.domain.audience import plan_topics, ses_topics
from runtime.domain.config import Config, CustomerConfig
from runtime.domain.errors import AlreadyExists, NotFound
from runtime.domain.queues import MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT
from runtime.services.feedback import feedback_topic_arn

RETENTION = 4 * 24 * 3600        # main queue: 4 days
DLQ_RETENTION = 14 * 24 * 3600   # DLQ: 14 days, the maximum
WAIT_TIME = 20                   # long polling
NOTIFICATION_ID_PREFIX = "ttr-"
# The bucket keeps every version once versioning is on. Triggers are transient by design (the
# runtime deletes them), so their old versions and the delete markers left behind go after a
# week; archive/ versions are kept: they are the history of the source of truth.
TRIGGER_LIFECYCLE_RULE = {
    "ID": "ttr-triggers-noncurrent",
    "Filter": {"Prefix": "customers/"},
    "Status": "Enabled",
    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
    "Expiration": {"ExpiredObjectDeleteMarker": True},
}
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
# Default encryptions we accept as they are; anything else (none) becomes SSE-S3, which needs no
# KMS permissions on the runtime's role.
ACCEPTED_SSE = ("AES256", "aws:kms", "aws:kms:dsse")


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


def queue_policy(bucket: str, queue_arn: str) -> dict:
    """Only the bucket may send, and only while it belongs to the queue's own account (a bucket
    name is global: a deleted bucket's name can be taken by another account)."""
    condition: dict = {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}
    account = queue_arn.split(":")[4] if queue_arn.count(":") >= 5 else ""
    if account:
        condition["StringEquals"] = {"aws:SourceAccount": account}
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ttr-allow-bucket-events",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": condition,
        }],
    }


def queue_attributes(dlq_arn: str, bucket: str, queue_arn: str) -> dict[str, str]:
    policy = queue_policy(bucket, queue_arn)
    return {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
        "MessageRetentionPeriod": str(RETENTION),
        "ReceiveMessageWaitTimeSeconds": str(WAIT_TIME),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        "Policy": json.dumps(policy),
    }


def _ensure_queue(sqs, name: str, attributes: dict[str, str], rec: _Recorder,
                  new_arn: Callable[[str], str] | None = None) -> tuple[str, str]:
    """Create or converge a queue; returns (url, arn). Under dry-run a missing queue gets the
    ARN ``new_arn(name)`` it would have."""
    try:
        with aws_errors("sqs.GetQueueUrl"):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except NotFound:
        url = None
    if url is None:
        if rec.dry_run:
            rec(f"sqs queue {name}", "created")
            return f"(new queue {name})", new_arn(name) if new_arn else f"arn:aws:sqs:::{name}"
        with aws_errors("sqs.CreateQueue"):
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        rec(f"sqs queue {name}", "created")
    else:
        with aws_errors("sqs.GetQueueAttributes"):
            current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if current.get("KmsMasterKeyId"):
            # Someone chose SSE-KMS for this queue: keep it (SQS-managed SSE would conflict).
            attributes = {k: v for k, v in attributes.items() if k != "SqsManagedSseEnabled"}
        differs = {k: v for k, v in attributes.items() if not _same_attr(k, current.get(k), v)}
        if differs:
            if not rec.dry_run:
                # The policy goes along with any change: moto forgets a queue's policy on every
                # SetQueueAttributes without one (AWS does not; sending it again is harmless).
                update = {**differs, **({"Policy": attributes["Policy"]} if "Policy" in attributes else {})}
                with aws_errors("sqs.SetQueueAttributes"):
                    sqs.set_queue_attributes(QueueUrl=url, Attributes=update)
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


def _ensure_bucket(s3, cfg: Config, rec: _Recorder) -> bool:
    """Create the bucket if it is missing; True when it exists now (or, under dry-run, already)."""
    try:
        with aws_errors("s3.HeadBucket"):
            s3.head_bucket(Bucket=cfg.bucket)
        rec(f"s3 bucket {cfg.bucket}", "unchanged")
        return True
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
    return not rec.dry_run


def _get_or_none(operation: str, call: Callable[[], dict]) -> dict | None:
    """A bucket sub-resource, or None when it is not configured (S3 answers 404 for those)."""
    try:
        with aws_errors(operation):
            resp = call()
    except NotFound:
        return None
    resp.pop("ResponseMetadata", None)
    return resp


def _ensure_bucket_hardening(s3, cfg: Config, rec: _Recorder, exists: bool) -> None:
    """Versioning, default encryption, public access block, the trigger lifecycle rule."""
    b = cfg.bucket
    lifecycle_name = f"s3 bucket {b} lifecycle ({TRIGGER_LIFECYCLE_RULE['ID']})"
    if not exists:  # dry-run of a bucket that is not there yet: nothing to read
        for what in ("versioning (Enabled)", "default encryption (SSE-S3)", "public access block"):
            rec(f"s3 bucket {b} {what}", "created")
        rec(lifecycle_name, "created")
        return

    # Versioning: a bad archive write can be rolled back, a deleted object recovered.
    current = _get_or_none("s3.GetBucketVersioning", lambda: s3.get_bucket_versioning(Bucket=b)) or {}
    status = current.get("Status")
    if status == "Enabled":
        rec(f"s3 bucket {b} versioning (Enabled)", "unchanged")
    else:
        if not rec.dry_run:
            with aws_errors("s3.PutBucketVersioning"):
                s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        rec(f"s3 bucket {b} versioning (Enabled{', was ' + status if status else ''})",
            "updated" if status else "created")

    enc = _get_or_none("s3.GetBucketEncryption", lambda: s3.get_bucket_encryption(Bucket=b))
    rules = (enc or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    algos = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
    kept = next((a for a in algos if a in ACCEPTED_SSE), None)
    if kept:
        label = "SSE-S3" if kept == "AES256" else f"{kept}, kept as configured"
        rec(f"s3 bucket {b} default encryption ({label})", "unchanged")
    else:
        if not rec.dry_run:
            with aws_errors("s3.PutBucketEncryption"):
                s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        rec(f"s3 bucket {b} default encryption (SSE-S3)", "updated" if rules else "created")

    pab = _get_or_none("s3.GetPublicAccessBlock", lambda: s3.get_public_access_block(Bucket=b))
    have = (pab or {}).get("PublicAccessBlockConfiguration", {})
    if all(have.get(k) is True for k in PUBLIC_ACCESS_BLOCK):
        rec(f"s3 bucket {b} public access block", "unchanged")
    else:
        if not rec.dry_run:
            with aws_errors("s3.PutPublicAccessBlock"):
                s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        off = sorted(k for k in PUBLIC_ACCESS_BLOCK if have.get(k) is not True)
        rec(f"s3 bucket {b} public access block" + (f" (was off: {', '.join(off)})" if have else ""),
            "updated" if have else "created")

    _ensure_lifecycle(s3, b, rec, lifecycle_name)


def _ensure_lifecycle(s3, bucket: str, rec: _Recorder, name: str) -> None:
    """Merge our lifecycle rule by ID; every other rule (someone else's) is kept as it is."""
    current = _get_or_none("s3.GetBucketLifecycleConfiguration",
                           lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)) or {}
    rules = current.get("Rules", [])
    wanted = TRIGGER_LIFECYCLE_RULE
    ours = next((r for r in rules if r.get("ID") == wanted["ID"]), None)
    # Compare only what we set: S3 may add defaults of its own to a rule it hands back.
    if ours is not None and all(ours.get(k) == v for k, v in wanted.items()):
        rec(name, "unchanged")
        return
    if not rec.dry_run:
        merged = [r for r in rules if r.get("ID") != wanted["ID"]] + [wanted]
        kwargs: dict = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": merged}}
        if current.get("TransitionDefaultMinimumObjectSize"):
            kwargs["TransitionDefaultMinimumObjectSize"] = current["TransitionDefaultMinimumObjectSize"]
        with aws_errors("s3.PutBucketLifecycleConfiguration"):
            s3.put_bucket_lifecycle_configuration(**kwargs)
    rec(name, "updated" if ours is not None else "created")


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
                      dry_run: bool = False, harden: bool = False) -> list[Step]:
    """The bucket, per customer a queue with its DLQ, and the bucket notifications.

    ``harden`` (``ttr provision``) adds the bucket's versioning, default encryption, public
    access block and trigger lifecycle rule, and SQS-managed encryption on the queues."""
    rec = _Recorder(report, dry_run)
    s3 = clients.client("s3")
    sqs = clients.client("sqs")
    exists = _ensure_bucket(s3, cfg, rec)
    if harden:
        _ensure_bucket_hardening(s3, cfg, rec, exists)
    sse = {"SqsManagedSseEnabled": "true"} if harden else {}
    new_arn = _NewQueueArn(clients, cfg.region)
    rules = []
    dlq_arns: dict[str, str] = {}
    for customer in cfg.customers:
        _, dlq_arn = dlq_arns[customer.code] = _ensure_queue(sqs, customer.dlq_name,
                                   {"MessageRetentionPeriod": str(DLQ_RETENTION), **sse}, rec, new_arn)
        queue_arn = _queue_arn_for(sqs, customer.queue_name, dlq_arn)
        _, queue_arn = _ensure_queue(sqs, customer.queue_name,
                                     {**queue_attributes(dlq_arn, cfg.bucket, queue_arn), **sse}, rec, new_arn)
        rules.append(notification_rule(customer, queue_arn))
    _ensure_notifications(s3, cfg, rules, rec)
    sns = clients.client("sns")
    for customer in cfg.customers:
        _ensure_feedback(sqs, sns, customer, dlq_arns[customer.code][1], sse, rec, new_arn)
    return rec.steps


# ---------------------------------------------------------------------------------------------
# SES feedback (runtime.services.feedback): per customer an SNS topic that the customer's SES publishes
# its bounce, complaint and delivery notifications to, and the queue the runtime reads them from


def feedback_topic_policy(customer: CustomerConfig, topic_arn: str) -> dict:
    """Only SES, sending for this customer's own account, may publish."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ttr-allow-customer-ses", "Effect": "Allow", "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic_arn,
        "Condition": {"StringEquals": {"aws:SourceAccount": customer.account_id}}}]}


def feedback_queue_policy(queue_arn: str, topic_arn: str) -> dict:
    """Only the customer's feedback topic may send."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ttr-allow-feedback-topic", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}


def _ensure_feedback(sqs, sns, customer: CustomerConfig, dlq_arn: str, sse: dict, rec: _Recorder,
                     new_arn: Callable[[str], str]) -> None:
    topic_arn = feedback_topic_arn(customer, dlq_arn)
    queue_arn = _queue_arn_for(sqs, customer.feedback_queue_name, dlq_arn)
    _ensure_queue(sqs, customer.feedback_queue_name,
                  {"MessageRetentionPeriod": str(DLQ_RETENTION),
                   "Policy": json.dumps(feedback_queue_policy(queue_arn, topic_arn)), **sse}, rec, new_arn)
    policy = feedback_topic_policy(customer, topic_arn)
    try:
        with aws_errors("sns.GetTopicAttributes"):
            current = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    except NotFound:
        current = None
    if current is None:
        if not rec.dry_run:
            with aws_errors("sns.CreateTopic"):
                sns.create_topic(Name=customer.feedback_topic_name, Attributes={"Policy": json.dumps(policy)})
        rec(f"sns topic {customer.feedback_topic_name}", "created")
    elif not _same_attr("Policy", current.get("Policy"), json.dumps(policy)):
        if not rec.dry_run:
            with aws_errors("sns.SetTopicAttributes"):
                sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy",
                                         AttributeValue=json.dumps(policy))
        rec(f"sns topic {customer.feedback_topic_name} (Policy)", "updated")
    else:
        rec(f"sns topic {customer.feedback_topic_name}", "unchanged")
    subscribed = False
    if current is not None:
        with aws_errors("sns.ListSubscriptionsByTopic"):
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
            subscribed = any(s.get("Protocol") == "sqs" and s.get("Endpoint") == queue_arn
                             for page in pages for s in page.get("Subscriptions", []))
    what = f"sns subscription {customer.feedback_topic_name} -> {customer.feedback_queue_name}"
    if subscribed:
        rec(what, "unchanged")
        return
    if not rec.dry_run:
        with aws_errors("sns.Subscribe"):
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    rec(what, "created")


class _NewQueueArn:
    """The ARN a queue that does not exist yet would get (dry-run only): the caller's account."""

    def __init__(self, clients: AwsClients, region: str):
        self.clients, self.region, self._account = clients, region, None

    def __call__(self, name: str) -> str:
        if self._account is None:
            with aws_errors("sts.GetCallerIdentity"):
                self._account = self.clients.client("sts").get_caller_identity()["Account"]
        return f"arn:aws:sqs:{self.region}:{self._account}:{name}"


def _queue_arn_for(sqs, name: str, dlq_arn: str) -> str:
    # The queue ARN is needed inside its own policy; it follows from the DLQ's account and region.
    prefix = dlq_arn.rsplit(":", 1)[0]
    return f"{prefix}:{name}"


# ---------------------------------------------------------------------------------------------
# Customer SES (emulator seed)


def assume_customer(clients: AwsClients, customer: CustomerConfig, session_name: str) -> dict:
    return assume_customer_role(clients, customer, session_name, 3600)


FEEDBACK_TYPES = ("Bounce", "Complaint", "Delivery")


def identity_feedback_calls(sender: str, topic_arn: str) -> list[tuple[str, dict]]:
    """The SES (v1) calls, in the customer's account, that send the sender identity's feedback,
    with the original headers (X-TTR-Ref), to ``topic_arn``; ``ttr provision`` prints them as
    the customer's part."""
    out: list[tuple[str, dict]] = []
    for kind in FEEDBACK_TYPES:
        out.append(("set_identity_notification_topic",
                    {"Identity": sender, "NotificationType": kind, "SnsTopic": topic_arn}))
        out.append(("set_identity_headers_in_notifications_enabled",
                    {"Identity": sender, "NotificationType": kind, "Enabled": True}))
    return out


def _ensure_identity_feedback(clients: AwsClients, cfg: Config, customer: CustomerConfig, creds: dict,
                              sender: str, rec: _Recorder, where: str) -> None:
    """Emulator seed: the sender identity's notifications go to the customer's feedback topic.
    (moto models neither reading the topics back nor the original-headers switch, so this sets
    the topics each time; against real SES the customer runs ``identity_feedback_calls``.)"""
    ses = clients.client_with("ses", creds, cfg.region_of(customer))
    with aws_errors("sqs.GetQueueAttributes"):
        sqs = clients.client("sqs")
        url = sqs.get_queue_url(QueueName=customer.feedback_queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic_arn = feedback_topic_arn(customer, arn)
    for op, kwargs in identity_feedback_calls(sender, topic_arn):
        if op == "set_identity_notification_topic":
            with aws_errors(f"ses.{op}"):
                getattr(ses, op)(**kwargs)
    rec(f"ses feedback {sender} -> {customer.feedback_topic_name} {where}", "updated")


def seed_customer_ses(cfg: Config, clients: AwsClients, *, report: Report | None = None) -> list[Step]:
    """Inside each customer's account: sender identity, contact list and topics, seed contacts."""
    rec = _Recorder(report, False)
    topics = ses_topics(cfg.topics)   # the configured topics: the one source of truth
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
        _ensure_identity_feedback(clients, cfg, customer, creds, sender, rec, where)

        try:
            with aws_errors("sesv2.GetContactList"):
                current = ses.get_contact_list(ContactListName=customer.contact_list)
            if any(s.kind != "unchanged" for s in plan_topics(current.get("Topics", []), cfg.topics)):
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
