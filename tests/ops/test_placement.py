"""actors/placement.py with a stand-in for Ray: the spread option and the fail-fast check.

The same check runs against a real `ray start --head` node in tests/integration/test_cluster_join.py.
"""

from __future__ import annotations

import pytest

from actors.placement import ClusterTooSmall, check_cluster, tenant_options
from runtime.errors import ExternalError


class FakeRay:
    """The two calls check_cluster makes: ray.nodes() and ray.available_resources()."""

    def __init__(self, node_cpus: list[float], available: list[float] | float | None = None, dead: int = 0):
        self._nodes = [{"NodeID": f"n{i}", "Alive": True, "Resources": {"CPU": c}} for i, c in enumerate(node_cpus)]
        self._nodes += [{"NodeID": f"dead{i}", "Alive": False, "Resources": {"CPU": 64.0}} for i in range(dead)]
        # successive answers of available_resources(); the last one repeats
        self._available = available if isinstance(available, list) else [sum(node_cpus) if available is None
                                                                           else available]
        self.available_calls = 0

    def nodes(self):
        return self._nodes

    def available_resources(self):
        value = self._available[min(self.available_calls, len(self._available) - 1)]
        self.available_calls += 1
        return {"CPU": value}


def test_tenants_are_spread_across_nodes():
    assert tenant_options() == {"scheduling_strategy": "SPREAD"}


def test_a_cluster_with_room_passes_and_says_what_it_found():
    fit = check_cluster(FakeRay([0.0, 4.0, 4.0]), 12, 0.1, wait=0)
    assert (fit.nodes, fit.cpus_total, fit.slots) == (2, 8.0, 80)   # the CPU-less head does not count
    assert "2 node(s) with CPUs" in fit.describe() and "1.2 needed" in fit.describe()


def test_too_little_capacity_fails_with_the_fix():
    ray = FakeRay([1.0], dead=3)   # dead nodes' CPUs do not count
    with pytest.raises(ClusterTooSmall) as err:
        check_cluster(ray, 12, 0.1, wait=0)
    msg = str(err.value)
    assert "1 alive node(s) with 1 CPU" in msg and "ttr needs 12 (1.2 CPU)" in msg
    assert "ray start --address" in msg
    assert isinstance(err.value, ExternalError) and err.value.exit_code == 1 and not err.value.retryable


class JoiningRay(FakeRay):
    """A worker node joins after the head's first look."""

    def __init__(self):
        super().__init__([0.0])
        self.looks = 0

    def nodes(self):
        self.looks += 1
        if self.looks == 3:
            self._nodes.append({"NodeID": "worker", "Alive": True, "Resources": {"CPU": 2.0}})
            self._available = [2.0]
        return self._nodes


def test_nodes_that_join_within_the_wait_are_counted(monkeypatch):
    ray = JoiningRay()
    assert check_cluster(ray, 4, 0.1, wait=5, poll=0.01).nodes == 1
    assert ray.looks == 3
    monkeypatch.setenv("TTR_CLUSTER_WAIT", "0.05")   # the default wait comes from the environment
    with pytest.raises(ClusterTooSmall, match=r"waited 0.05s for nodes to join"):
        check_cluster(FakeRay([0.0]), 4, 0.1, poll=0.01)


def test_capacity_counts_node_by_node():
    # 3 nodes of 0.25 CPU: 0.75 CPU in all, but each holds only 2 actors of 0.1
    with pytest.raises(ClusterTooSmall, match="hold 6 actor"):
        check_cluster(FakeRay([0.25, 0.25, 0.25]), 7, 0.1, wait=0)


def test_busy_cpus_are_waited_for_then_fail():
    ray = FakeRay([2.0], available=[0.1, 0.1, 2.0])
    check_cluster(ray, 4, 0.1, wait=5, poll=0.01)      # freed on the third look
    assert ray.available_calls == 3
    with pytest.raises(ClusterTooSmall, match=r"only 0.1 free after 0.05s"):
        check_cluster(FakeRay([2.0], available=0.1), 4, 0.1, wait=0.05, poll=0.01)
