"""A periodic actor's loop ends when the supervisor stops it (before the actor is killed), instead
of being destroyed pending at the process's exit (asyncio logs that as an error)."""

from __future__ import annotations

from actors.periodic import PeriodicWorker
from tests.conftest import wait_for


def test_stop_ends_the_loop(ray_session):
    ray = ray_session

    class Ticker(PeriodicWorker):   # defined here: Ray ships it by value to the worker
        interval_s = 0.05

        def __init__(self):
            self.ticks = 0
            self.started = None

        async def _tick(self) -> None:
            self.ticks += 1

        async def start(self) -> bool:
            ok = await super().start()
            self.started = self.task
            return ok

        async def state(self) -> dict:
            return {"ticks": self.ticks, "done": self.started.done(), "cancelled": self.started.cancelled(),
                    "task": self.task is not None}

    actor = ray.remote(num_cpus=0)(Ticker).remote()
    try:
        assert ray.get(actor.start.remote())
        wait_for(lambda: ray.get(actor.state.remote())["ticks"] >= 2, 30, "the loop to tick")
        assert ray.get(actor.stop.remote())
        state = ray.get(actor.state.remote())
        assert state["done"] and state["cancelled"] and not state["task"]
        assert ray.get(actor.stop.remote())   # a second stop is harmless
        assert ray.get(actor.start.remote())  # and the loop can start again
        assert ray.get(actor.state.remote())["task"]
    finally:
        ray.kill(actor, no_restart=True)
