"""Where the actors run on Ray, what they reserve, and a fail-fast check that they fit.

- What an actor reserves comes from the config's ``runtime:`` section (``Demand``): tenants are
  I/O-bound, so a tenant reserves a small CPU share and the memory it really uses; the three
  service actors (archive, meetings, orphans) a little more. Ray places actors by these.
- Tenants spread: each ``CustomerActor`` is created with Ray's ``SPREAD`` scheduling strategy,
  so N tenants land on as many worker nodes as there are (best effort). A node that dies takes
  its tenants with it; Ray restarts them (``max_restarts=-1``) on the nodes that remain, and
  their messages come back to the queue after the visibility timeout, so no work is lost.
- The head can be kept free of tenants by starting it with ``--num-cpus 0`` (Ray's own advice
  for production clusters): every ttr actor asks for a share of a CPU, so none fits there.
- ``check_fit`` runs before any actor is created, on a local Ray and on a joined cluster alike:
  when the actors cannot fit it raises ``ClusterTooSmall`` with one message that says what is
  needed and what is there, instead of actors waiting forever in ``PENDING_CREATION``.
  On a cluster it first waits up to ``$TTR_CLUSTER_WAIT`` seconds (default 30) for worker nodes
  that start with the head to join.

This module takes ``ray`` as an argument (it imports nothing from it), so its logic is tested
with a stand-in as well as against a real cluster.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from runtime.domain.errors import PermanentError

_EPS = 1e-9
MB = 2 ** 20
DEFAULT_WAIT = 30.0   # seconds; $TTR_CLUSTER_WAIT overrides it
SERVICE_ACTORS = 6    # archive, meetings, reconciler, alerts, feedback, renderer


class ClusterTooSmall(PermanentError):
    """The Ray cluster cannot host the runtime's actors (CLI exit 1)."""

    def __init__(self, message: str):
        super().__init__(message, operation="ray.cluster", code="ClusterTooSmall")


@dataclass(frozen=True)
class Demand:
    """What the runtime asks Ray for: ``tenants`` actors of one size, ``services`` of another."""

    tenants: int
    tenant_cpus: float
    tenant_memory_mb: float = 0.0
    services: int = 0
    service_cpus: float = 0.0
    service_memory_mb: float = 0.0

    @classmethod
    def of(cls, cfg) -> "Demand":
        r = cfg.runtime
        return cls(len(cfg.customers), r.tenant_cpus, r.tenant_memory_mb, SERVICE_ACTORS, r.service_cpus,
                   r.service_memory_mb)

    @property
    def actors(self) -> int:
        return self.tenants + self.services

    @property
    def cpus(self) -> float:
        return self.tenants * self.tenant_cpus + self.services * self.service_cpus

    @property
    def memory_mb(self) -> float:
        return self.tenants * self.tenant_memory_mb + self.services * self.service_memory_mb

    def describe(self) -> str:
        def size(c, m):
            return f"{c:g} CPU" + (f" + {m:g} MB" if m else "")
        text = f"{self.tenants} tenant actor(s) of {size(self.tenant_cpus, self.tenant_memory_mb)}"
        if self.services:
            text += f" and {self.services} service actor(s) of {size(self.service_cpus, self.service_memory_mb)}"
        return text + f" = {_amount(self.cpus, self.memory_mb)}"


def _amount(cpus: float, memory_mb: float) -> str:
    return f"{cpus:g} CPU" + (f" and {memory_mb:,.0f} MB" if memory_mb else "")


@dataclass(frozen=True)
class ClusterFit:
    nodes: int              # alive nodes with CPUs
    cpus_total: float
    cpus_available: float
    cpus_needed: float
    slots: int              # how many of the demanded actors the nodes hold, node by node
    memory_total_mb: float = 0.0
    memory_available_mb: float = 0.0
    memory_needed_mb: float = 0.0

    def describe(self) -> str:
        mem = (f", {self.memory_available_mb:,.0f} of {self.memory_total_mb:,.0f} MB free, "
               f"{self.memory_needed_mb:,.0f} MB needed") if self.memory_needed_mb else ""
        return (f"{self.nodes} node(s) with CPUs, {self.cpus_available:g} of {self.cpus_total:g} CPU free, "
                f"{self.cpus_needed:g} needed{mem}")


def tenant_options(cfg=None) -> dict:
    """Ray actor options for a tenant's ``CustomerActor``: its reservation, spread across nodes."""
    opts: dict = {"scheduling_strategy": "SPREAD"}
    if cfg is not None:
        opts.update(num_cpus=cfg.runtime.tenant_cpus, memory=int(cfg.runtime.tenant_memory_mb * MB))
    return opts


def service_options(cfg) -> dict:
    """Ray actor options for the archive, meetings and orphan actors."""
    return {"num_cpus": cfg.runtime.service_cpus, "memory": int(cfg.runtime.service_memory_mb * MB)}


def _cpu_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive") and float(n.get("Resources", {}).get("CPU", 0)) > 0]


def _slots(nodes: list[dict], demand: Demand) -> int:
    """How many of the demanded actors the nodes hold, placing them node by node (largest first)."""
    free = [[float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("memory", 0)) / MB] for n in nodes]
    sizes = sorted([(demand.service_cpus, demand.service_memory_mb)] * demand.services
                   + [(demand.tenant_cpus, demand.tenant_memory_mb)] * demand.tenants, reverse=True)
    placed = 0
    for cpus, mem in sizes:
        for node in free:
            if node[0] + _EPS >= cpus and node[1] + _EPS >= mem:
                node[0] -= cpus
                node[1] -= mem
                placed += 1
                break
        else:
            break   # sorted largest first: if this one fits nowhere, count what did
    return placed


def check_fit(ray, demand: Demand, *, wait: float | None = None, poll: float = 0.5) -> ClusterFit:
    """Raise ``ClusterTooSmall`` unless the demanded actors fit.

    Two conditions, both given ``wait`` seconds (default ``$TTR_CLUSTER_WAIT``, else 30): the
    alive nodes have room for the actors node by node (worker nodes may still be joining when
    the head starts the supervisor), and enough CPU and memory are free (the actors of a
    supervisor that has just stopped take a moment to release theirs). ``wait=0`` decides on the
    first look (a local Ray: nothing will join it)."""
    if wait is None:
        wait = float(os.environ.get("TTR_CLUSTER_WAIT", DEFAULT_WAIT))
    deadline = time.monotonic() + wait
    while True:
        nodes = _cpu_nodes(ray)
        total = sum(float(n["Resources"]["CPU"]) for n in nodes)
        mem_total = sum(float(n["Resources"].get("memory", 0)) for n in nodes) / MB
        slots = _slots(nodes, demand)
        avail = ray.available_resources() if slots >= demand.actors else {}
        fit = ClusterFit(len(nodes), total, float(avail.get("CPU", 0)), demand.cpus, slots, mem_total,
                         float(avail.get("memory", 0)) / MB, demand.memory_mb)
        if slots >= demand.actors and fit.cpus_available + _EPS >= demand.cpus \
                and fit.memory_available_mb + _EPS >= demand.memory_mb:
            return fit
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    raise ClusterTooSmall(_refusal(demand, fit, wait))


def _refusal(demand: Demand, fit: ClusterFit, wait: float) -> str:
    there = f"{fit.nodes} alive node(s) with {_amount(fit.cpus_total, fit.memory_total_mb if demand.memory_mb else 0)}"
    advice = ("lower runtime.tenant_cpus / runtime.tenant_memory_mb in the config if tenants use less, add "
              "worker nodes (`ray start --address <head>:6379 --num-cpus N`), or run fewer customers per cluster")
    waited = f" (waited {wait:g}s for nodes to join)" if wait else ""
    if fit.slots < demand.actors:
        return (f"the Ray cluster is too small for ttr: it needs {demand.describe()}, and {there} hold "
                f"{fit.slots} actor(s) of the {demand.actors}{waited}; {advice}")
    return (f"the Ray cluster has room for ttr's {demand.actors} actor(s) ({_amount(demand.cpus, demand.memory_mb)}) "
            f"but only {_amount(fit.cpus_available, fit.memory_available_mb if demand.memory_mb else 0)} free "
            f"after {wait:g}s: other work holds the rest (`ray status` shows it; is another `ttr run` in the "
            f"same namespace still up?); free it, or {advice}")


def check_cluster(ray, n_actors: int, cpus_per_actor: float, *, wait: float | None = None,
                  poll: float = 0.5) -> ClusterFit:
    """``n_actors`` actors of ``cpus_per_actor`` CPU each (no memory reservation)."""
    return check_fit(ray, Demand(n_actors, cpus_per_actor), wait=wait, poll=poll)
