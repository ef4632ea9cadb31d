"""The renderer: the one process that renders the tenants' emails and calendar files.

A tenant asks it (``actors.proxies.ActorRenderer``) for what one transition sends to its
customer, and sends the result with its own SES session. So jinja2, the templates and the
formatting code live here once, not in each of a hundred tenant processes: 2.75 MB of USS per
tenant, measured with the rendering of a broadcast to 30 customers moved out of 10 tenants
(docs/BENCHMARKS.md). It holds no credentials, queue or sender: its input is the change and the
customer's name and zones, its output text.

Rendering is CPU-bound and quick (a few ms per zone). Calls run on a few threads
(``max_concurrency``), so a slow one does not hold a health probe. Ray restarts the actor if it
dies; a call it does not answer is a retryable error for the tenant, whose message then comes
back, and its ledger keeps the emails already sent from repeating.
"""

from __future__ import annotations

import asyncio
import logging
import os

import ray

from actors.messages import RenderCall, RendererHealth, encode_error
from runtime.domain.errors import PermanentError, TtrError

__all__ = ["RendererActor", "RendererWorker"]

RENDERER_ACTOR_OPTIONS = {"num_cpus": 0.05, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 4}

log = logging.getLogger("ttr.renderer")


class RendererWorker:
    def __init__(self):
        from runtime.emails import _env
        from runtime.telemetry import setup_telemetry

        setup_telemetry("renderer")
        env = _env()  # jinja2 and every template (compiled by the driver) at start, not at the first email
        for name in env.list_templates():
            env.get_template(name)
        self.calls = self.errors = 0

    def render(self, call: RenderCall):
        """``RenderedDelivery``, or ``ErrorData``: our own errors as they are, anything else (a
        template or formatting bug) as a PermanentError naming it."""
        from runtime.emails import render_delivery
        from runtime.telemetry import span

        self.calls += 1
        request = call.request
        with span("renderer.render", {"ttr.tenant": request.customer_code, "ttr.kind": request.kind,
                                      "ttr.zones": len(request.zones)}, carrier=call.trace) as sp:
            try:
                return render_delivery(request)
            except TtrError as exc:
                error: TtrError = exc
            except Exception as exc:  # noqa: BLE001 - a bug: logged here, the tenant retries the message
                log.exception("rendering %s for %s failed", request.kind, request.customer_code)
                error = PermanentError(f"rendering the {request.kind} email failed: {type(exc).__name__}: {exc}",
                                       operation="renderer.render", code="RenderFailed")
            self.errors += 1
            sp.set_attribute("ttr.outcome", "error")
            return encode_error(error)

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    def health(self) -> RendererHealth:
        return RendererHealth(calls=self.calls, errors=self.errors, pid=os.getpid())


RendererActor = ray.remote(**RENDERER_ACTOR_OPTIONS)(RendererWorker)
