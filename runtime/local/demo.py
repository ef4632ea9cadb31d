"""``ttr demo``: the sample scenario on the embedded stack, with a readable report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import Config
from ..files import load_document

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "examples" / "change.yaml"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(cfg: Config, *, actor: str) -> int:
    from ..adapters.s3 import S3ObjectStore
    from ..adapters.aws import AwsClients
    from ..lifecycle import Lifecycle
    from .stack import LocalStack

    # Free ports: the demo never collides with a `ttr local up` already running.
    stack = LocalStack(cfg, aws_port=0)
    with stack:
        cfg = stack.cfg
        clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
        lc = Lifecycle(S3ObjectStore(clients, cfg.bucket), cfg.customer_codes)
        content = load_document(SAMPLE) if SAMPLE.exists() else {}
        content["customers"] = list(cfg.customer_codes[:2])
        submitted = lc.submit(content, actor=actor)
        change_id = submitted.change_id
        _log(f"submitted {change_id} for {', '.join(content['customers'])}")
        approved = lc.transition(change_id, "approve", actor="demo-approver")
        _log(f"approved {change_id} (version {approved.seq})")

        s3, sqs = clients.client("s3"), clients.client("sqs")
        print(f"\n== Change {change_id}: {approved.change['title']}")
        print(f"status {approved.change['status']}, version {approved.change['version']}")
        print("\n== Archive modifications")
        for m in approved.change["modifications"]:
            print(f"  seq {m.get('seq', '-'):>2}  {m['type']:<10} by {m['actor']:<15} at {m['timestamp']}")
        print("\n== Triggers in S3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cfg.bucket, Prefix="customers/"):
            for o in page.get("Contents", []):
                body = json.loads(s3.get_object(Bucket=cfg.bucket, Key=o["Key"])["Body"].read())
                print(f"  {o['Key']}  seq={body['seq']} action={body['action']}")
        print("\n== S3 events waiting per customer queue")
        for c in cfg.customers:
            url = sqs.get_queue_url(QueueName=c.queue_name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            print(f"  {c.code:<12} {c.queue_name:<24} {attrs['Attributes']['ApproximateNumberOfMessages']} message(s)")
    return 0
