"""The chaos runner: N changes x M tenants through the real runtime while things break.

Faults: AWS errors and conflicts injected through botocore hooks inside the actor processes, SES
sends whose answer is lost after they went out, Graph 429/503 from the emulator's fault
endpoint, ``ray.kill`` of CustomerActors, the ArchiveActor and the MeetingCoordinator mid-work,
and hard kills of the whole runtime followed by a restart. Then the faults stop, operators do
what the runbook says (re-drive DLQs; the orphan reconciler runs on its own), and invariants are
checked. The schedule of faults is seeded; thread timing is not, so two runs of one seed differ
in detail but not in kind.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import ray

from actors.archive import ARCHIVE_ACTOR_OPTIONS, ArchiveWorker
from actors.customer import CUSTOMER_ACTOR_OPTIONS, CustomerWorker, customer_actor_name
from actors.supervisor import Runtime
from runtime.adapters.aws import AwsClients
from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.sqs import SqsQueue
from runtime.domain.config import Config, parse_config
from runtime.domain.model import lifecycle_entries
from runtime.domain.processing import plan
from runtime.domain.recipients import Contact, select_recipients, topic_for
from runtime.domain.rules import window_from_today
from runtime.emails import KIND_FOR_TRANSITION, subject_line
from runtime.local.aws_emulator import AwsEmulator
from runtime.provisioning.bootstrap import ensure_management, seed_customer_ses
from runtime.services.archive import ArchiveStore
from runtime.services.ledger import FLUSH_EVERY
from runtime.services.lifecycle import Lifecycle
from runtime.services.redrive import redrive
from runtime.testing.faults import Injector


@dataclass(frozen=True)
class Profile:
    name: str
    seed: int
    changes: int
    tenants: int
    actor_kills: int
    runtime_restarts: int
    graph_faults: int
    chaos_interval: float = 2.0
    chaos_max_seconds: float = 45.0     # faults go on after the workload until spent, at most this long
    recovery_deadline: float = 240.0


FAST = Profile("fast", seed=7, changes=8, tenants=3, actor_kills=4, runtime_restarts=1, graph_faults=3)
LONG = Profile("long", seed=11, changes=120, tenants=5, actor_kills=40, runtime_restarts=3, graph_faults=30,
               chaos_interval=3.0, chaos_max_seconds=600.0, recovery_deadline=900.0)


class _FaultSeam:
    """What both chaos actors add to the real ones: a seeded injector on their AWS clients."""

    injector: Injector
    incarnation: str

    def _install_faults(self, seed: int, role: str, rates: dict | None = None) -> None:
        rng_seed = random.Random(f"{seed}:{role}:{self.incarnation}").randrange(2**31)
        self.injector = Injector(rng_seed, **({"rates": rates} if rates else {}))
        self.injector.install(self.clients)

    async def faults(self) -> dict:
        return {"incarnation": self.incarnation, **self.injector.counts}

    async def set_faults(self, enabled: bool) -> bool:
        self.injector.enabled = enabled
        return True


ARCHIVE_FAULT_RATES = {"s3.GetObject": 0.03, "s3.PutObject": 0.03, "s3.PutObject.conflict": 0.1}


def chaos_actor_classes(seed: int):
    """Subclasses of the real actors with a seeded fault injector on their AWS clients."""

    class ChaosCustomer(_FaultSeam, CustomerWorker):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self._install_faults(seed, self.code)

    class ChaosArchive(_FaultSeam, ArchiveWorker):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.incarnation = uuid.uuid4().hex[:8]
            self._install_faults(seed, "archive", ARCHIVE_FAULT_RATES)

    return (ray.remote(**CUSTOMER_ACTOR_OPTIONS)(ChaosCustomer), ray.remote(**ARCHIVE_ACTOR_OPTIONS)(ChaosArchive))


def chaos_config(tenants: int, endpoint: str, graph_url: str) -> Config:
    tag = uuid.uuid4().hex[:8]
    customers, contacts = [], {}
    for i in range(tenants):
        code = f"c{i}"
        customers.append({"code": code, "name": f"Chaos tenant {i}", "max_send_rate": 500,
                          "ses_role_arn": f"arn:aws:iam::{400000000000 + i:012d}:role/ttr-ses-sender",
                          "queue": f"ttr-chaos-{tag}-{code}", "contact_list": f"chaos-{tag}",
                          "sender": f"notifications@{code}.example.com"})
        contacts[code] = [
            {"email": f"ops{j}@{code}.example.com", "topics": {"aws-approval": "OPT_IN", "aws-calendar": "OPT_IN"}}
            for j in range(3)] + [
            {"email": f"news@{code}.example.com"},                      # defaults only
            {"email": f"gone@{code}.example.com", "unsubscribe_all": True}]
    return parse_config({
        "bucket": f"ttr-chaos-{tag}", "region": "us-east-1", "aws_endpoint_url": endpoint,
        "email": {"sender": "notifications@example.com", "portal_base_url": "http://127.0.0.1:8080"},
        "graph": {"base_url": graph_url, "organizer": "change-calendar@ccoe.example.com"},
        "customers": customers, "local": {"contacts": contacts}}, "<chaos>")


@dataclass
class Report:
    profile: str
    seed: int
    changes: int
    tenants: int
    transitions: int = 0
    units: int = 0                      # (change, customer, transition) to process
    faults: Counter = field(default_factory=Counter)
    kills: Counter = field(default_factory=Counter)
    runtime_restarts: int = 0
    graph_faults: int = 0
    redriven: int = 0
    orphan_actions: Counter = field(default_factory=Counter)
    emails_expected: int = 0
    emails_delivered: int = 0
    duplicates: int = 0
    duplicate_bound: int = 0
    lost: int = 0
    processed_missing: int = 0
    processed_extra: int = 0
    meetings_expected: int = 0
    meeting_violations: list[str] = field(default_factory=list)
    triggers_left: int = 0
    queue_left: int = 0
    dlq_left: int = 0
    fields_lost: int = 0
    seconds: float = 0.0
    recovered_in: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.processed_missing == 0 and self.processed_extra == 0
                and not self.meeting_violations and self.triggers_left == 0 and self.queue_left == 0
                and self.dlq_left == 0 and self.fields_lost == 0 and self.duplicates <= self.duplicate_bound)

    def lines(self) -> list[str]:
        return [
            f"profile {self.profile} (seed {self.seed}): {self.changes} changes x {self.tenants} tenants, "
            f"{self.transitions} transitions, {self.units} (change, customer, transition) units, "
            f"{self.seconds:.0f}s (recovery {self.recovered_in:.0f}s)",
            f"faults injected: {sum(self.faults.values())} AWS ({dict(sorted(self.faults.items()))}), "
            f"{self.graph_faults} Graph",
            f"crashes: {dict(self.kills)} actor kills, {self.runtime_restarts} whole-runtime hard restarts",
            f"operators: {self.redriven} DLQ messages re-driven; orphan reconciler {dict(self.orphan_actions)}",
            f"emails: {self.emails_delivered} delivered of {self.emails_expected} expected; lost {self.lost}; "
            f"duplicates {self.duplicates} (bound {self.duplicate_bound})",
            f"processed records: missing {self.processed_missing}, extra {self.processed_extra}; meetings "
            f"expected {self.meetings_expected}, violations {len(self.meeting_violations)} {self.meeting_violations[:3]}",
            f"left behind: {self.triggers_left} triggers, {self.queue_left} queue messages, {self.dlq_left} in DLQs;"
            f" archive fields lost {self.fields_lost}",
            "INVARIANTS HOLD" if self.ok else "INVARIANTS VIOLATED",
        ]


class ChaosRun:
    def __init__(self, profile: Profile, *, aws_endpoint: str, graph, log: Callable[[str], None] = print):
        self.p = profile
        self.rng = random.Random(profile.seed)              # the workload's choices
        self.chaos_rng = random.Random(profile.seed + 1)    # the faults' schedule (its own thread)
        self.graph = graph
        self.log = log
        self.cfg = chaos_config(profile.tenants, aws_endpoint, graph.base_url)
        self.clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)
        ensure_management(self.cfg, self.clients)
        seed_customer_ses(self.cfg, self.clients)
        self.store = S3ObjectStore(self.clients, self.cfg.bucket)
        self.lc = Lifecycle(self.store, self.cfg.customer_codes)
        self.namespace = f"ttr-chaos-{uuid.uuid4().hex[:6]}"
        self.customer_cls, self.archive_cls = chaos_actor_classes(profile.seed)
        self.report = Report(profile.name, profile.seed, profile.changes, profile.tenants)
        self.titles: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self.fault_counts: dict[str, dict] = {}
        self.done = threading.Event()

    # -- runtime ---------------------------------------------------------------------------------
    def _runtime(self) -> Runtime:
        return Runtime(self.cfg, namespace=self.namespace, poll_wait=1, base_backoff=1.0, concurrency=4,
                       orphan_threshold_s=15.0, orphan_interval_s=5.0, max_wakeups=5,
                       customer_cls=self.customer_cls, archive_cls=self.archive_cls).start()

    def _actors(self) -> list:
        return [*self.rt.customers.values(), self.rt.archive]

    def _collect_faults(self) -> None:
        for a in self._actors():
            try:
                f = ray.get(a.faults.remote(), timeout=5)
                self.fault_counts[f.pop("incarnation")] = f
            except Exception:  # an actor being killed or restarted; counted at the next pass
                pass

    # -- workload ------------------------------------------------------------------------------
    def _workload(self) -> None:
        codes = list(self.cfg.customer_codes)
        archive = ArchiveStore(self.store)
        for i in range(self.p.changes):
            custs = self.rng.sample(codes, self.rng.randint(1, len(codes)))
            title = f"Chaos {self.p.seed}-{i} {uuid.uuid4().hex[:6]}"
            content = {"title": title, "customers": custs, "reason": "<b>chaos</b> & friends",
                       "meeting": {"required": self.rng.random() < 0.6},
                       "schedule": window_from_today(8, hours=1, tz="Europe/Paris")}
            cid = self.lc.submit(content, actor="chaos").change_id
            self.titles[cid] = title
            note = f"note-{i}"
            archive.update(cid, lambda c, note=note: {**c, "foreignWriter": note})  # another writer's field
            self.notes[cid] = note
            steps = []
            if self.rng.random() < 0.3:
                extra = [c for c in codes if c not in custs]
                if extra:
                    steps.append(("update", {"customers": custs + [self.rng.choice(extra)]}))
            if self.rng.random() < 0.85:
                steps.append(("approve", {}))
                if self.rng.random() < 0.4:
                    moved = window_from_today(9, tz="Europe/Paris")
                    steps.append(("reschedule", {"start": moved["implementationStart"],
                                                 "end": moved["implementationEnd"]}))
                steps.append(self.rng.choice([("complete", {"before_start": True}), ("cancel", {}), ("none", {})]))
            else:
                steps.append(("cancel", {}))
            for action, params in steps:
                time.sleep(self.rng.uniform(0.0, 0.8))
                if action != "none":
                    self.lc.transition(cid, action, actor="chaos", params=params)
        self.done.set()

    # -- chaos ---------------------------------------------------------------------------------
    def _chaos(self) -> None:
        kills_left, restarts_left, graph_left = self.p.actor_kills, self.p.runtime_restarts, self.p.graph_faults
        restart_at = {int(self.p.changes * (k + 1) / (restarts_left + 1)) for k in range(restarts_left)}
        stop_at = None   # chaos_max_seconds counts from the end of the workload (see Profile)
        while True:
            if self.done.is_set():
                stop_at = stop_at or time.monotonic() + self.p.chaos_max_seconds
                if not (kills_left or graph_left) or time.monotonic() >= stop_at:
                    break
            time.sleep(self.chaos_rng.uniform(0.5, self.p.chaos_interval * 2))
            if self.done.is_set() and not self.titles_pending():
                self._poke()      # keep the runtime busy while the remaining faults land
            self._collect_faults()
            if restart_at and len(self.titles) >= min(restart_at):
                restart_at.discard(min(restart_at))
                self._hard_restart()
                continue
            roll = self.chaos_rng.random()
            if roll < 0.5 and kills_left:
                kills_left -= 1
                self._kill_one()
            elif roll < 0.8 and graph_left:
                graph_left -= 1
                self.graph.add_fault(status=self.chaos_rng.choice([429, 503]), count=self.chaos_rng.randint(1, 2),
                                     retry_after=1)
                self.report.graph_faults += 1

    def titles_pending(self) -> bool:
        return any(True for _ in self.store.list("customers/"))

    def _poke(self) -> None:
        """After the workload: re-trigger a random change, so crashes still meet work in flight."""
        cid = self.chaos_rng.choice(list(self.titles))
        try:
            self.lc.retrigger(cid)
        except Exception:  # retriggering is best effort here
            pass

    def _kill_one(self) -> None:
        target = self.chaos_rng.choice(["customer", "customer", "archive", "meetings", "renderer"])
        try:
            if target == "customer":
                code = self.chaos_rng.choice(list(self.cfg.customer_codes))
                ray.kill(ray.get_actor(customer_actor_name(code), namespace=self.namespace), no_restart=False)
            else:
                ray.kill(ray.get_actor(target, namespace=self.namespace), no_restart=False)
            self.report.kills[target] += 1
        except ValueError:
            pass  # being restarted already

    def _hard_restart(self) -> None:
        """Kill every actor without draining (as a node loss would), then start a new runtime."""
        self.log("chaos: hard-killing the whole runtime")
        self.rt._stop.set()
        for a in [*self.rt.customers.values(), self.rt.archive, self.rt.meetings, self.rt.reconciler, self.rt.renderer]:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # already dead
                pass
        time.sleep(1.0)
        self.rt = self._runtime()
        self.rt.supervise_in_background()
        self.report.runtime_restarts += 1

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> Report:
        t0 = time.monotonic()
        self.graph.reset()
        self.rt = self._runtime()
        self.rt.supervise_in_background()
        work = threading.Thread(target=self._workload, name="chaos-workload")
        chaos = threading.Thread(target=self._chaos, name="chaos-faults")
        work.start()
        chaos.start()
        work.join()
        chaos.join()
        self.log("chaos: workload done; faults off; recovering")
        self._collect_faults()
        for a in self._actors():
            try:
                ray.get(a.set_faults.remote(False), timeout=10)
            except Exception:
                pass
        t_rec = time.monotonic()
        try:
            self._recover(time.monotonic() + self.p.recovery_deadline)
        finally:
            self.report.recovered_in = time.monotonic() - t_rec
            try:
                self.report.orphan_actions.update(ray.get(self.rt.reconciler.health.remote(), timeout=10).totals)
            except Exception:
                pass
            self.rt.shutdown(timeout=10)
        for counts in self.fault_counts.values():
            self.report.faults.update(counts)
        self._check()
        self.report.seconds = time.monotonic() - t0
        return self.report

    def _queues(self):
        return {c.code: (SqsQueue(self.clients, c.queue_name), SqsQueue(self.clients, c.dlq_name))
                for c in self.cfg.customers}

    def _quiet(self) -> bool:
        for cid in self.titles:
            ch, _ = ArchiveStore(self.store).load(cid)
            if any(plan(ch, c).steps for c in ch["customers"]):
                return False
        if any(True for _ in self.store.list("customers/")):
            return False
        for q, dlq in self._queues().values():
            d = q.depth()
            if d["visible"] or d["in_flight"] or dlq.depth()["visible"]:
                return False
        return True

    def _recover(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            for q, dlq in self._queues().values():
                self.report.redriven += redrive(dlq, q)   # the runbook: fix the cause, then re-drive
            if self._quiet():
                return
            time.sleep(3.0)
        self.log("chaos: recovery deadline passed")

    # -- invariants ----------------------------------------------------------------------------
    def _check(self) -> None:
        r = self.report
        contacts = {code: [Contact.from_ses({"EmailAddress": c.email, "UnsubscribeAll": c.unsubscribe_all,
                                             "TopicPreferences": [{"TopicName": t, "SubscriptionStatus": s}
                                                                  for t, s in c.topics.items()]})
                           for c in self.cfg.local.contacts.get(code, ())] for code in self.cfg.customer_codes}
        sent = Counter()
        for m in AwsEmulator.sent_emails():
            for to in m.to:
                sent[(_undated(m.subject), to)] += 1
        archive = ArchiveStore(self.store)
        events = self.graph.events()
        for cid, title in self.titles.items():
            ch, _ = archive.load(cid)
            if ch.get("foreignWriter") != self.notes[cid] or ch.get("title") != title:
                r.fields_lost += 1
            processed = Counter((m["customer"], m["transition"]) for m in ch["modifications"]
                                if m.get("type") == "processed")
            expected_units = set()
            approved_seq = None
            requested: set[str] = set()
            for e in lifecycle_entries(ch):
                r.transitions += 1
                approved_before = approved_seq is not None
                if e["type"] == "approved" and approved_seq is None:
                    approved_seq = e["seq"]
                topic = topic_for(e["type"], approved_before=approved_before)
                for code in e.get("customers", ch["customers"]):
                    if code not in ch["customers"]:
                        continue
                    expected_units.add((code, e["seq"]))
                    kind = e["type"]
                    if kind == "updated" and code not in requested:
                        kind = "submitted"   # an added customer's first request
                    if kind in ("submitted", "updated"):
                        requested.add(code)
                    subject = subject_line(KIND_FOR_TRANSITION[kind], title, first_request=kind != "updated")
                    customer = self.cfg.customer(code)
                    for to in select_recipients(contacts[code], topic, self.cfg.topic_defaults, customer.allows):
                        r.emails_expected += 1
                        got = sent.pop((subject, to), 0)
                        if got == 0:
                            r.lost += 1
                        else:
                            r.emails_delivered += 1
                            r.duplicates += got - 1
            r.units += len(expected_units)
            r.processed_missing += sum(1 for u in expected_units if processed.get(u, 0) == 0)
            r.processed_extra += sum(n - 1 for n in processed.values() if n > 1) + \
                sum(1 for u in processed if u not in expected_units)
            # meetings: at most one event per change; the recorded one exists; cancelled at most once
            mine = [e for e in events if e["subject"].endswith(title)]
            md = ch.get("meetingMetadata")
            if len(mine) > 1:
                r.meeting_violations.append(f"{cid}: {len(mine)} events")
            if md and not any(e["id"] == md["meetingId"] for e in mine):
                r.meeting_violations.append(f"{cid}: recorded meeting not in Graph")
            if any(e.get("cancelCount", 0) > 1 for e in mine):
                r.meeting_violations.append(f"{cid}: cancelled twice")
            needs = (ch.get("meeting") or {}).get("required") and ch["status"] in ("approved", "completed")
            if needs:
                r.meetings_expected += 1
                if not md:
                    r.meeting_violations.append(f"{cid}: approved without its meeting")
            if ch["status"] == "cancelled" and md and not any(e.get("cancelled") for e in mine) and \
                    any(m.get("type") == "cancelled" and m.get("wasApproved") for m in ch["modifications"]):
                r.meeting_violations.append(f"{cid}: cancelled change kept its meeting")
        r.triggers_left = sum(1 for _ in self.store.list("customers/"))
        for q, dlq in self._queues().values():
            d = q.depth()
            r.queue_left += d["visible"] + d["in_flight"]
            r.dlq_left += dlq.depth()["visible"]
        # A crash may repeat the unflushed ledger batch of each message in flight, and a send whose
        # answer was lost is repeated once.
        crashes = r.kills["customer"] + r.runtime_restarts * self.p.tenants
        r.duplicate_bound = crashes * 4 * FLUSH_EVERY + r.faults.get("sesv2.SendEmail.timeout", 0)


def _undated(subject: str) -> str:
    """A subject without the window's date that ends it (``... (Tue 8 Dec 2026)``)."""
    return re.sub(r" \([A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2} \d{4}\)$", "", subject)
