"""What the in-runtime periodic workers share: a loop that runs ``_tick`` every ``interval_s``
(the orphan reconciler, the alert evaluator), started once and stopped before the actor is, and
the telemetry flush."""

from __future__ import annotations

import asyncio


async def cancel_tasks(tasks: list[asyncio.Task]) -> None:
    """Cancel ``tasks`` and wait until they have ended."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class PeriodicWorker:
    interval_s: float
    task: asyncio.Task | None = None

    async def start(self) -> bool:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())
        return True

    async def stop(self) -> bool:
        """End the loop (the supervisor calls this before stopping the actor, so the process does
        not exit with the task pending: asyncio logs that as an error)."""
        task, self.task = self.task, None
        await cancel_tasks([task] if task else [])
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._tick()

    async def _tick(self) -> None:
        raise NotImplementedError

    async def flush(self) -> bool:
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True
