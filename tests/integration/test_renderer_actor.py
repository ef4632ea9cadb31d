"""The renderer actor (actors/renderer.py) renders exactly what the tenant would render in its own
process, answers a rendering bug as our error (the tenant retries the message), and a renderer
that is gone is a retryable error, after which Ray's restart serves again."""

from __future__ import annotations

import pytest

from actors.proxies import ActorRenderer
from actors.renderer import RendererActor
from runtime.domain.errors import PermanentError, RetryableError
from runtime.emails import DeliveryRequest, LocalRenderer
from tests.conftest import wait_for
from tests.unit.test_emails import change, transition

pytestmark = pytest.mark.ray

NAMESPACE = "ttr-renderer-test"


@pytest.fixture()
def renderer(ray_session):
    import ray

    handle = RendererActor.options(name="renderer", namespace=NAMESPACE, num_cpus=0).remote()
    ray.get(handle.health.remote())
    yield handle
    ray.kill(handle, no_restart=True)


def request(kind: str, **over) -> DeliveryRequest:
    chg = change(title="Patch <the> fleet & more")
    args = dict(customer_code="hts", customer_name="HTS <Production>", portal_base_url="http://127.0.0.1:8080",
                transition=transition("submitted" if kind == "approval_request" else kind),
                zones=("Asia/Tokyo", None, "Europe/Berlin"), meeting={"joinUrl": "https://teams.example.com/j?a=1&b=2"})
    return DeliveryRequest(kind, chg, **{**args, **over})


def test_the_renderer_renders_what_the_tenant_would(renderer):
    import ray

    remote = ActorRenderer(NAMESPACE)
    for kind in ("approval_request", "approved", "cancelled"):
        got, local = remote.render(request(kind)), LocalRenderer().render(request(kind))
        assert got == local, kind
        assert set(got.emails) == {"Asia/Tokyo", None, "Europe/Berlin"}
        assert "&lt;the&gt;" in got.emails[None].html  # escaped there as here
        assert (got.calendar is not None) == (kind != "approval_request")  # the calendar file with approved
    health = ray.get(renderer.health.remote())
    assert (health.calls, health.errors) == (3, 0)


def test_a_rendering_bug_is_our_error_and_counted(renderer):
    import ray

    with pytest.raises(PermanentError, match="rendering the no-such-kind email failed: ValueError") as err:
        ActorRenderer(NAMESPACE).render(request("no-such-kind"))
    assert err.value.code == "RenderFailed" and not err.value.retryable
    assert ray.get(renderer.health.remote()).errors == 1


def test_a_renderer_that_is_gone_is_retryable_and_the_restarted_one_serves(ray_session):
    import ray

    handle = RendererActor.options(name="renderer-restart", namespace=NAMESPACE, num_cpus=0).remote()
    ray.get(handle.health.remote())
    remote = ActorRenderer(NAMESPACE, name="renderer-restart")
    assert remote.render(request("approved")).calendar
    ray.kill(handle, no_restart=False)   # Ray restarts it (max_restarts=-1)

    def served():
        try:
            return remote.render(request("approved")).calendar is not None
        except RetryableError:
            return False

    wait_for(served, timeout=60, what="the restarted renderer")
    ray.kill(handle, no_restart=True)
    with pytest.raises(RetryableError, match="renderer-restart"):
        remote.render(request("approved"))
