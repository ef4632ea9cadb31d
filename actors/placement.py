"""Where the actors run on a Ray cluster, and a fail-fast check that they fit.

- Tenants spread: each ``CustomerActor`` is created with Ray's ``SPREAD`` scheduling strategy,
  so N tenants land on as many worker nodes as there are (best effort; Ray still places an
  actor on a busy node rather than not at all). A node that dies takes its tenants with it;
  Ray restarts them (``max_restarts=-1``) on the nodes that remain, and their messages come back
  to the queue after the visibility timeout, so no work is lost.
- The head can be kept free of tenants by starting it with ``--num-cpus 0`` (Ray's own advice
  for production clusters): every ttr actor asks for a fraction of a CPU, so none fits there.
- ``check_cluster`` runs before any actor is created: a cluster that is too small fails
  within ``$TTR_CLUSTER_WAIT`` seconds (default 30: time for worker nodes that start with the
  head to join) with a message that says what is missing, instead of actors waiting forever in
  ``PENDING_CREATION`` while the supervisor times out.

This module takes ``ray`` as an argument (it imports nothing from it), so its logic is tested
with a stand-in as well as against a real cluster.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from runtime.errors import PermanentError

# What the actors ask for: keep in step with @ray.remote(num_cpus=...) in customer.py,
# archive.py and meetings.py. ``RUNTIME_CPUS_PER_ACTOR`` is the largest, used as a bound.
CUSTOMER_CPUS = 0.1
RUNTIME_CPUS_PER_ACTOR = CUSTOMER_CPUS
_EPS = 1e-9
DEFAULT_WAIT = 30.0   # seconds; $TTR_CLUSTER_WAIT overrides it


class ClusterTooSmall(PermanentError):
    """The Ray cluster cannot host the runtime's actors (CLI exit 1)."""

    def __init__(self, message: str):
        super().__init__(message, operation="ray.cluster", code="ClusterTooSmall")


@dataclass(frozen=True)
class ClusterFit:
    nodes: int              # alive nodes with CPUs
    cpus_total: float
    cpus_available: float
    cpus_needed: float
    slots: int              # actors of the asked size the nodes could hold, node by node

    def describe(self) -> str:
        return (f"{self.nodes} node(s) with CPUs, {self.cpus_available:g} of {self.cpus_total:g} CPU free, "
                f"{self.cpus_needed:g} needed")


def tenant_options() -> dict:
    """Ray actor options for a tenant's ``CustomerActor``: spread tenants across the nodes."""
    return {"scheduling_strategy": "SPREAD"}


def _cpu_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive") and float(n.get("Resources", {}).get("CPU", 0)) > 0]


def check_cluster(ray, n_actors: int, cpus_per_actor: float, *, wait: float | None = None,
                  poll: float = 0.5) -> ClusterFit:
    """Raise ``ClusterTooSmall`` unless ``n_actors`` actors of ``cpus_per_actor`` CPU fit.

    Two conditions, both given ``wait`` seconds (default ``$TTR_CLUSTER_WAIT``, else 30): the
    alive nodes have room for the actors node by node (worker nodes may still be joining when
    the head starts the supervisor), and enough CPUs are free (the actors of a supervisor that
    has just stopped take a moment to release theirs). ``wait=0`` decides on the first look."""
    if wait is None:
        wait = float(os.environ.get("TTR_CLUSTER_WAIT", DEFAULT_WAIT))
    needed = n_actors * cpus_per_actor
    deadline = time.monotonic() + wait
    while True:
        nodes = _cpu_nodes(ray)
        total = sum(float(n["Resources"]["CPU"]) for n in nodes)
        slots = sum(math.floor(float(n["Resources"]["CPU"]) / cpus_per_actor + _EPS) for n in nodes) \
            if cpus_per_actor > 0 else n_actors
        available = float(ray.available_resources().get("CPU", 0)) if slots >= n_actors else 0.0
        fit = ClusterFit(len(nodes), total, available, needed, slots)
        if slots >= n_actors and available + _EPS >= needed:
            return fit
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    advice = (f"add worker nodes (`ray start --address <head>:6379 --num-cpus N`) until the cluster has at "
              f"least {needed:g} CPU, or run fewer customers per cluster")
    if fit.slots < n_actors:
        raise ClusterTooSmall(
            f"the Ray cluster is too small for ttr: {fit.nodes} alive node(s) with {fit.cpus_total:g} CPU in all "
            f"hold {fit.slots} actor(s) of {cpus_per_actor:g} CPU, and ttr needs {n_actors} ({needed:g} CPU) "
            f"(waited {wait:g}s for nodes to join); {advice}")
    raise ClusterTooSmall(
        f"the Ray cluster has {fit.cpus_total:g} CPU but only {fit.cpus_available:g} free after {wait:g}s, and ttr "
        f"needs {needed:g} ({n_actors} actor(s) of {cpus_per_actor:g} CPU): other work holds the rest "
        f"(`ray status` shows it; is another `ttr run` in the same namespace still up?); free it, or {advice}")
