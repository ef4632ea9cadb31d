"""actors.proxies keeps actor handles (no GCS lookup per call) and still reaches an actor that was
replaced under the same name, and answers a gone one as a retryable error."""

from __future__ import annotations

import pytest

from actors import proxies
from runtime.domain.errors import RetryableError
from tests.conftest import wait_for


@pytest.fixture()
def echo_cls(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0, max_restarts=0)
    class Echo:
        def __init__(self, tag: str):
            self.tag = tag

        def who(self, request):
            return (self.tag, request)

        async def awho(self, request):
            return (self.tag, request)

    return Echo


def _start(echo_cls, name: str, tag: str):
    import ray

    handle = echo_cls.options(name=name, namespace="ttr-handles").remote(tag)
    ray.get(handle.who.remote(None))
    return handle


def test_a_handle_is_looked_up_once(echo_cls):
    first = _start(echo_cls, "echo-once", "a")
    try:
        assert proxies.call("echo-once", "ttr-handles", "who", 1) == ("a", 1)
        cached = proxies._handles[("echo-once", "ttr-handles")]
        assert proxies.call("echo-once", "ttr-handles", "who", 2) == ("a", 2)
        assert proxies._handles[("echo-once", "ttr-handles")] is cached
    finally:
        import ray

        ray.kill(first, no_restart=True)


def test_a_replaced_actor_is_reached_at_once(echo_cls):
    import ray

    old = _start(echo_cls, "echo-replaced", "old")
    assert proxies.call("echo-replaced", "ttr-handles", "who", 1) == ("old", 1)
    ray.kill(old, no_restart=True)
    def gone():
        try:
            ray.get_actor("echo-replaced", namespace="ttr-handles")
            return False
        except ValueError:
            return True

    wait_for(gone, timeout=30, what="the killed actor's name to be free")
    new = _start(echo_cls, "echo-replaced", "new")
    try:
        # the cached handle points at the dead actor: the call still lands on its successor
        assert proxies.call("echo-replaced", "ttr-handles", "who", 2) == ("new", 2)
    finally:
        ray.kill(new, no_restart=True)


def test_a_gone_actor_is_a_retryable_error(echo_cls):
    import asyncio

    import ray

    old = _start(echo_cls, "echo-gone", "old")
    assert asyncio.run(proxies.acall("echo-gone", "ttr-handles", "awho", 1)) == ("old", 1)
    ray.kill(old, no_restart=True)
    with pytest.raises(RetryableError):
        asyncio.run(proxies.acall("echo-gone", "ttr-handles", "awho", 2))
    assert ("echo-gone", "ttr-handles") not in proxies._handles
    with pytest.raises(RetryableError, match="not running"):
        proxies.call("echo-gone", "ttr-handles", "who", 3)
