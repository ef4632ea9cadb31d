"""actors/placement.py with a stand-in for Ray: the spread option and the fail-fast check.

The same check runs against a real `ray start --head` node in tests/integration/test_cluster_join.py.
"""

from __future__ import annotations

import pytest

from actors.placement import ClusterTooSmall, check_cluster, tenant_options
from runtime.domain.errors import ExternalError


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
    assert (fit.nodes, fit.cpus_total, fit.slots) == (2, 8.0, 12)   # the CPU-less head does not count
    assert "2 node(s) with CPUs" in fit.describe() and "1.2 needed" in fit.describe()


def test_too_little_capacity_fails_with_the_fix():
    ray = FakeRay([1.0], dead=3)   # dead nodes' CPUs do not count
    with pytest.raises(ClusterTooSmall) as err:
        check_cluster(ray, 12, 0.1, wait=0)
    msg = str(err.value)
    assert "1 alive node(s) with 1 CPU" in msg and "it needs 12 tenant actor(s) of 0.1 CPU = 1.2 CPU" in msg
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
    with pytest.raises(ClusterTooSmall, match=r"only 0.1 CPU free after 0.05s"):
        check_cluster(FakeRay([2.0], available=0.1), 4, 0.1, wait=0.05, poll=0.01)


class MemoryRay(FakeRay):
    """Nodes that report memory too (bytes, as Ray does)."""

    def __init__(self, nodes: list[tuple[float, float]]):
        super().__init__([c for c, _ in nodes])
        for n, (_, mb) in zip(self._nodes, nodes):
            n["Resources"]["memory"] = mb * 2**20
        self._mem = sum(mb for _, mb in nodes) * 2**20

    def available_resources(self):
        return {**super().available_resources(), "memory": self._mem}


def _cfg(**runtime):
    import yaml

    from runtime.domain.config import parse_config
    from tests.conftest import BASE_CONFIG

    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    data["runtime"] = runtime
    return parse_config(data, "<test>")


def test_the_reservation_comes_from_the_runtime_section():
    from actors.placement import Demand, service_options

    cfg = _cfg(tenant_cpus=0.02, tenant_memory_mb=80, service_cpus=0.1, service_memory_mb=300)
    d = Demand.of(cfg)
    # the services: archive, meetings, reconciler, alerts, feedback, renderer
    assert (d.tenants, d.services, d.actors) == (len(cfg.customers), 6, len(cfg.customers) + 6)
    assert d.cpus == pytest.approx(len(cfg.customers) * 0.02 + 0.6)
    assert d.memory_mb == len(cfg.customers) * 80 + 1800
    assert tenant_options(cfg) == {"scheduling_strategy": "SPREAD", "num_cpus": 0.02, "memory": 80 * 2**20}
    assert service_options(cfg) == {"num_cpus": 0.1, "memory": 300 * 2**20}


def test_the_runtime_section_refuses_bad_values():
    from runtime.domain.errors import ConfigError

    with pytest.raises(ConfigError, match=r"runtime.tenant_cpus: Input should be greater than or equal to 0"):
        _cfg(tenant_cpus=-1)
    with pytest.raises(ConfigError, match=r"runtime.poll_wait_s: Input should be less than or equal to 20"):
        _cfg(poll_wait_s=30)
    with pytest.raises(ConfigError, match=r"runtime.tenant_ram: Extra inputs are not permitted"):
        _cfg(tenant_ram=3)


def test_memory_is_checked_node_by_node_and_named_in_the_refusal():
    from actors.placement import Demand, check_fit

    demand = Demand(100, 0.01, 100, 3, 0.05, 200)   # 1.15 CPU, 10,600 MB
    fit = check_fit(MemoryRay([(2.0, 16000)]), demand, wait=0)
    assert fit.slots == 103 and "10,600 MB needed" in fit.describe()
    with pytest.raises(ClusterTooSmall) as err:
        check_fit(MemoryRay([(2.0, 4000), (2.0, 4000)]), demand, wait=0)   # CPU plenty, memory short
    msg = str(err.value)
    assert "it needs 100 tenant actor(s) of 0.01 CPU + 100 MB and 3 service actor(s) of 0.05 CPU + 200 MB" in msg
    assert "= 1.15 CPU and 10,600 MB" in msg and "2 alive node(s) with 4 CPU and 8,000 MB" in msg
    assert "hold 77 actor(s) of the 103" in msg   # 3 services + 34 tenants on one node, 40 on the other
