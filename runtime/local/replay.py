"""The emulators' bare call sequence: what a piece of the runtime's work asked of AWS and Graph,
replayed against the same emulators with plain clients and no runtime (issue 11).

``scripts/bench.py`` takes, around the broadcast change, the per-operation deltas of every
process's ``aws_calls`` (each tenant, the ArchiveActor, the MeetingCoordinator, and the
submitting process) and the Graph calls the emulator received, builds a plan from them
(``build_plan``, pure) and runs it here in a separate process (``python -m runtime.local.replay``,
the plan as JSON on stdin, the result as JSON on stdout), so the clients' CPU does not share the
emulator's process and GIL. The time it takes is the reference for the broadcast's figure: what
the emulator alone needs to serve the same calls on this machine at this moment.

The replay works on its own bucket and queues on the same server (created before the clock
starts, removed after it stops), never on the runtime's: the bucket notifies one queue per tenant as the runtime's does,
so each trigger write fans out into a queue message that the tenant's receives then get and its
deletes remove. Payloads are the broadcast's own: S3 reads and writes are of an object the size
of its archive object, triggers the size of a trigger, and each tenant sends the emails it sent
(from its verified sender, through its assumed role, Raw when it sent Raw).

Order, in four stages (a stage starts when the one before has finished):
1. the submitter's calls, one at a time (``Lifecycle.submit`` then ``transition``: archive, then
   the triggers);
2. every receive (the messages are there);
3. everything else: reads, writes, sends, role assumptions, contact reads, the Graph calls;
4. deletes (messages and triggers).
Stages 2-4 run on a pool of ``width`` threads: ``replay_width``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

# The runtime runs tenants x concurrency message handlers, each making its calls one after the
# other. One client process cannot usefully run that many threads (its GIL and the server's
# thread per connection would be measured instead of the calls); botocore's pool in ttr is 32
# connections per client (runtime.adapters.aws.client_config), and so is the replay's cap.
REPLAY_WIDTH_CAP = 32

RECEIVES = ("sqs.ReceiveMessage",)
DELETES = ("sqs.DeleteMessageBatch", "sqs.DeleteMessage", "s3.DeleteObject")
# What the replay knows how to make, with a payload like the runtime's (anything else is counted
# as not replayed and reported beside the figure).
REPLAYABLE = frozenset({
    *RECEIVES, *DELETES,
    "s3.GetObject", "s3.PutObject", "s3.HeadObject", "s3.ListObjectsV2",
    "sqs.SendMessage", "sqs.ChangeMessageVisibility", "sqs.ChangeMessageVisibilityBatch",
    "sqs.GetQueueAttributes", "sts.AssumeRole",
    "sesv2.SendEmail", "sesv2.ListContacts", "sesv2.GetContactList", "sesv2.GetContact",
})


def call_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Calls made between two readings of an ``aws_calls`` counter, by operation."""
    out = {op: n - before.get(op, 0) for op, n in after.items()}
    return {op: n for op, n in sorted(out.items()) if n > 0}


def is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    from runtime.local.aws_emulator import LOOPBACK

    return (urlsplit(url).hostname or "") in (LOOPBACK, "localhost", "::1")


def replay_width(tenants: int, concurrency: int, cap: int = REPLAY_WIDTH_CAP) -> int:
    return max(1, min(tenants * concurrency, cap))


@dataclass(frozen=True)
class Task:
    owner: str        # a tenant's code, "services" (archive, meetings), "submitter" or "graph"
    op: str           # "s3.GetObject", ... or "graph"
    n: int            # the owner's n-th call of this operation (0-based)


def build_stages(submitter: Mapping[str, int], tenants: Mapping[str, Mapping[str, int]],
                 services: Mapping[str, int], graph_calls: int = 0
                 ) -> tuple[list[list[Task]], dict[str, int]]:
    """The four stages (module docstring) and the calls not replayed, by operation. Within a
    stage the owners' calls interleave (the first call of every tenant before anyone's second),
    as the tenants' own calls do."""
    skipped: Counter[str] = Counter()

    def tasks(owner: str, counts: Mapping[str, int]) -> list[Task]:
        out = []
        for op, count in sorted(counts.items()):
            if op in REPLAYABLE:
                out += [Task(owner, op, i) for i in range(count)]
            else:
                skipped[op] += count
        return out

    owned = [tasks(code, counts) for code, counts in sorted(tenants.items())]
    owned.append(tasks("services", services))
    owned.append([Task("graph", "graph", i) for i in range(graph_calls)])
    first = tasks("submitter", submitter)

    def interleave(keep) -> list[Task]:
        lists = [[t for t in ts if keep(t.op)] for ts in owned]
        out = []
        for i in range(max((len(x) for x in lists), default=0)):
            out += [x[i] for x in lists if i < len(x)]
        return out

    stages = [first, interleave(lambda op: op in RECEIVES),
              interleave(lambda op: op not in RECEIVES and op not in DELETES),
              interleave(lambda op: op in DELETES)]
    return stages, dict(sorted(skipped.items()))


def split_submitter_puts(submitter: Mapping[str, int], triggers: int) -> tuple[int, int]:
    """(archive writes, trigger writes) among the submitter's ``s3.PutObject`` calls: it wrote
    ``triggers`` triggers (the transitions' ``triggers_written``), the rest are the archive's."""
    puts = submitter.get("s3.PutObject", 0)
    return max(0, puts - triggers), min(puts, triggers)


def build_plan(*, endpoint: str, region: str, width: int, archive_bytes: int, trigger_bytes: int,
               submitter: Mapping[str, int], triggers: int, tenants: Mapping[str, Mapping[str, int]],
               services: Mapping[str, int], customers: Mapping[str, dict], emails: Mapping[str, list[dict]],
               graph: dict | None = None) -> dict:
    """The plan ``run_plan`` executes (JSON-able). ``customers[code]``: role_arn, external_id,
    sender, region, contact_list; ``emails[code]``: what that tenant sent (to, subject, html, raw);
    ``graph``: base_url, organizer, event (the meeting as created) and calls (method, path, query)."""
    archive_puts, trigger_puts = split_submitter_puts(submitter, triggers)
    return {"endpoint": endpoint, "region": region, "width": width, "archive_bytes": archive_bytes,
            "trigger_bytes": trigger_bytes, "submitter": dict(submitter), "submitter_archive_puts": archive_puts,
            "submitter_trigger_puts": trigger_puts, "tenants": {c: dict(v) for c, v in tenants.items()},
            "services": dict(services), "customers": dict(customers), "emails": dict(emails), "graph": graph}


def aws_calls_of(plan: Mapping) -> dict[str, int]:
    """Every AWS call of the plan, by operation (replayed or not)."""
    total: Counter[str] = Counter(plan["submitter"])
    total.update(plan["services"])
    for counts in plan["tenants"].values():
        total.update(counts)
    return dict(sorted(total.items()))


# -- the run (I/O: botocore and HTTP against the emulators) -------------------------------------
class _Replay:
    def __init__(self, plan: Mapping):
        import threading
        import uuid

        from runtime.adapters.aws import AwsClients, client_config

        self.plan = plan
        self.run_id = uuid.uuid4().hex[:8]
        self.bucket = f"ttr-replay-{self.run_id}"
        self.clients = AwsClients(plan["region"], plan["endpoint"],
                                  config=client_config(max_attempts=1))
        self.codes = sorted(plan["tenants"])
        self.queues: dict[str, str] = {}
        self.receipts: dict[str, list[str]] = {c: [] for c in self.codes}
        self.ses: dict[str, object] = {}
        self.lock = threading.Lock()
        self.archive_lock = threading.Lock()
        self.archive = b"{" + b" " * max(0, plan["archive_bytes"] - 2) + b"}"
        self.trigger = b"{" + b" " * max(0, plan["trigger_bytes"] - 2) + b"}"
        self.graph_event_id: str | None = None
        self.errors: Counter[str] = Counter()
        self.received = 0   # queue messages the receives got (the triggers' notifications)

    # set-up, before the clock starts --------------------------------------------------------
    def set_up(self) -> None:
        from runtime.adapters.aws import assume_customer_role

        s3, sqs = self.clients.client("s3"), self.clients.client("sqs")
        s3.create_bucket(Bucket=self.bucket)
        rules = []
        for code in self.codes:
            url = sqs.create_queue(QueueName=f"ttr-replay-{self.run_id}-{code}",
                                   Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
            self.queues[code] = url
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            rules.append({"Id": f"replay-{code}", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                          "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"customers/{code}/"},
                                                             {"Name": "suffix", "Value": ".json"}]}}})
        s3.put_bucket_notification_configuration(Bucket=self.bucket,
                                                 NotificationConfiguration={"QueueConfigurations": rules})
        for url in self.queues.values():   # S3 sends each queue a test event when notifications are set
            while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0).get("Messages", []):
                sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        s3.put_object(Bucket=self.bucket, Key="archive/replay.json", Body=self.archive)
        for code in self.codes:   # the runtime holds its credentials from start-up: AssumeRole is replayed apart
            c = self.plan["customers"][code]
            creds = assume_customer_role(self.clients, _Customer(c), f"ttr-replay-{code}")
            self.ses[code] = self.clients.client_with("sesv2", creds, c["region"])

    def triggers_left(self) -> int:
        """Trigger objects the replayed deletes did not remove (0 when the counts match)."""
        got = self.clients.client("s3").list_objects_v2(Bucket=self.bucket, Prefix="customers/")
        return int(got.get("KeyCount", 0))

    def tear_down(self) -> None:
        """After the clock: the replay's queues and bucket go (the bench's emulator keeps running)."""
        s3, sqs = self.clients.client("s3"), self.clients.client("sqs")
        for url in self.queues.values():
            sqs.delete_queue(QueueUrl=url)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket=self.bucket, Key=o["Key"])
        s3.delete_bucket(Bucket=self.bucket)

    # one call -------------------------------------------------------------------------------
    def call(self, task: Task) -> None:
        try:
            self._call(task)
        except Exception as exc:  # counted and reported: a replay that fails must not look fast
            with self.lock:
                self.errors[f"{task.op}: {type(exc).__name__}"] += 1

    def _call(self, task: Task) -> None:
        from runtime.adapters.aws import assume_customer_role

        op, owner, n = task.op, task.owner, task.n
        code = owner if owner in self.queues else self.codes[n % len(self.codes)]
        s3, sqs = self.clients.client("s3"), self.clients.client("sqs")
        if op == "graph":
            return self._graph(n)
        if op == "s3.GetObject":
            s3.get_object(Bucket=self.bucket, Key="archive/replay.json")["Body"].read()
        elif op == "s3.PutObject":
            if owner == "submitter" and n >= self.plan["submitter_archive_puts"]:
                k = n - self.plan["submitter_archive_puts"]   # the k-th trigger: tenant k % N, its (k // N)-th
                code = self.codes[k % len(self.codes)]
                key, body = f"customers/{code}/replay-{k // len(self.codes)}.json", self.trigger
            elif owner in ("submitter", "services"):
                # one writer at a time, as the ArchiveActor's compare-and-swap writes are (moto also
                # fails a put that races another on the same key: 500, "I/O operation on closed file")
                with self.archive_lock:
                    s3.put_object(Bucket=self.bucket, Key="archive/replay.json", Body=self.archive)
                return
            else:
                key, body = f"ledger/{owner}/replay-{n}.json", self.archive
            s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        elif op == "s3.HeadObject":
            s3.head_object(Bucket=self.bucket, Key="archive/replay.json")
        elif op == "s3.ListObjectsV2":
            s3.list_objects_v2(Bucket=self.bucket, Prefix=f"customers/{code}/")
        elif op == "s3.DeleteObject":   # the tenant's n-th trigger, as the runtime deletes a trigger it handled
            s3.delete_object(Bucket=self.bucket, Key=f"customers/{code}/replay-{n}.json")
        elif op == "sqs.ReceiveMessage":
            got = sqs.receive_message(QueueUrl=self.queues[code], MaxNumberOfMessages=10,
                                      WaitTimeSeconds=0).get("Messages", [])
            with self.lock:
                self.receipts[code] += [m["ReceiptHandle"] for m in got]
                self.received += len(got)
        elif op in ("sqs.DeleteMessageBatch", "sqs.ChangeMessageVisibilityBatch"):
            handles = self._receipts(code) or ["replay-none"]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[:10])]
            if op == "sqs.DeleteMessageBatch":
                sqs.delete_message_batch(QueueUrl=self.queues[code], Entries=entries)
            else:
                sqs.change_message_visibility_batch(QueueUrl=self.queues[code], Entries=[
                    {**e, "VisibilityTimeout": 60} for e in entries])
        elif op in ("sqs.DeleteMessage", "sqs.ChangeMessageVisibility"):
            handles = self._receipts(code)
            if not handles:
                raise LookupError("no message received to act on")
            if op == "sqs.DeleteMessage":
                sqs.delete_message(QueueUrl=self.queues[code], ReceiptHandle=handles[0])
            else:
                sqs.change_message_visibility(QueueUrl=self.queues[code], ReceiptHandle=handles[0],
                                              VisibilityTimeout=60)
        elif op == "sqs.SendMessage":
            sqs.send_message(QueueUrl=self.queues[code], MessageBody='{"replay": true}')
        elif op == "sqs.GetQueueAttributes":
            sqs.get_queue_attributes(QueueUrl=self.queues[code], AttributeNames=["All"])
        elif op == "sts.AssumeRole":
            assume_customer_role(self.clients, _Customer(self.plan["customers"][code]), f"ttr-replay-{code}")
        elif op.startswith("sesv2."):
            self._ses(op, code, n)

    def _receipts(self, code: str) -> list[str]:
        with self.lock:
            return list(self.receipts[code])

    def _ses(self, op: str, code: str, n: int) -> None:
        c, ses = self.plan["customers"][code], self.ses[code]
        if op == "sesv2.SendEmail":
            sent = self.plan["emails"].get(code) or [{"to": f"replay@{code}.example.com", "subject": "replay",
                                                      "html": "<p>replay</p>", "raw": ""}]
            m = sent[n % len(sent)]
            if m.get("raw"):
                content = {"Raw": {"Data": m["raw"].encode()}}
            else:
                content = {"Simple": {"Subject": {"Data": m["subject"], "Charset": "UTF-8"},
                                      "Body": {"Text": {"Data": m["html"], "Charset": "UTF-8"},
                                               "Html": {"Data": m["html"], "Charset": "UTF-8"}}}}
            ses.send_email(FromEmailAddress=c["sender"], Destination={"ToAddresses": [m["to"]]}, Content=content,
                           ListManagementOptions={"ContactListName": c["contact_list"], "TopicName": "aws-approval"})
        elif op == "sesv2.ListContacts":
            ses.list_contacts(ContactListName=c["contact_list"], PageSize=1000)
        elif op == "sesv2.GetContactList":
            ses.get_contact_list(ContactListName=c["contact_list"])
        elif op == "sesv2.GetContact":
            sent = self.plan["emails"].get(code) or []
            address = sent[n % len(sent)]["to"] if sent else f"user0@{code}.example.com"
            ses.get_contact(ContactListName=c["contact_list"], EmailAddress=address)

    def _graph(self, n: int) -> None:
        import urllib.request

        g = self.plan["graph"]
        method, path, query = g["calls"][n]["method"], g["calls"][n]["path"], g["calls"][n]["query"]
        root = g["base_url"].rsplit("/v1.0", 1)[0]
        event = g["event"]
        body = None
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts[-1].lower() == "events":
            body = {k: event[k] for k in ("subject", "body", "start", "end", "attendees", "location",
                                           "isOnlineMeeting", "hideAttendees") if k in event}
            body["subject"] = "[replay] " + body.get("subject", "")
        elif method in ("PATCH", "GET", "DELETE") and len(parts) >= 2 and parts[-2].lower() == "events":
            if self.graph_event_id is None:
                raise LookupError("no replayed event to address")
            path = "/".join([""] + parts[:-1] + [self.graph_event_id])
            if method == "PATCH":
                body = {k: event[k] for k in ("body", "attendees") if k in event}
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(root + path + (f"?{query}" if query else ""), data=data, method=method,
                                     headers={"Authorization": "Bearer replay", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = resp.read()
        if method == "POST" and body is not None and answer:
            self.graph_event_id = json.loads(answer).get("id")

    # the clock ----------------------------------------------------------------------------------
    def run(self) -> dict:
        from concurrent.futures import ThreadPoolExecutor

        graph_calls = len((self.plan.get("graph") or {}).get("calls", []))
        stages, skipped = build_stages(self.plan["submitter"], self.plan["tenants"], self.plan["services"],
                                       graph_calls)
        times = []
        t0 = time.monotonic()
        for task in stages[0]:
            self.call(task)
        times.append(time.monotonic() - t0)
        with ThreadPoolExecutor(self.plan["width"]) as pool:
            for stage in stages[1:]:
                t = time.monotonic()
                list(pool.map(self.call, stage))
                times.append(time.monotonic() - t)
        total = time.monotonic() - t0
        replayed: Counter[str] = Counter(t.op for s in stages for t in s)
        graph = replayed.pop("graph", 0)
        return {"bare_s": total, "stage_s": times, "width": self.plan["width"], "aws_calls": sum(replayed.values()),
                "graph_calls": graph, "by_operation": dict(sorted(replayed.items())), "not_replayed": skipped,
                "messages_received": self.received, "errors": dict(self.errors)}


class _Customer:
    """What ``assume_customer_role`` reads of a customer."""

    def __init__(self, data: Mapping):
        self.ses_role_arn: str = data["role_arn"]
        self.external_id: str | None = data.get("external_id")


def run_plan(plan: Mapping) -> dict:
    replay = _Replay(plan)
    replay.set_up()
    try:
        result = replay.run()
        result["triggers_left"] = replay.triggers_left()
        return result
    finally:
        replay.tear_down()


def main() -> int:
    plan = json.load(sys.stdin)
    for url in (plan["endpoint"], (plan.get("graph") or {}).get("base_url")):
        if url and not is_loopback_url(url):   # the replay talks to this machine's emulators only
            print(f"replay: {url} is not a loopback address", file=sys.stderr)
            return 2
    print(json.dumps(run_plan(plan)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
