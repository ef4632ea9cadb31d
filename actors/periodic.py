"""What the in-runtime periodic workers share: a loop that runs ``_tick`` every ``interval_s``
(the orphan reconciler, the alert evaluator), started once, and the telemetry flush."""

from __future__ import annotations

import asyncio


class PeriodicWorker:
    interval_s: float
    task: asyncio.Task | None = None

    async def start(self) -> bool:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())
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
