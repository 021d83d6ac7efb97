"""Traffic for the embedded stack: every service's part plays its users (a shop front that
places, pays and cancels orders; a purchasing team that keeps the warehouses stocked; a
warehouse that ships them, once fulfilment brings its part) in one shared `World`.

Every part prepares first (so the first orders find stock), then all run side by side
until cancelled. Their failed calls are counted together, never raised. A rate of 0 turns
the simulator off altogether.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from shopfloor_devstack.parts import Failures, Http, Part, Traffic, World


class Simulator:
    def __init__(
        self,
        world: World,
        parts: Mapping[str, Part],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.world, self.failures = world, Failures()
        # Made here, not in run(), so the counts outlive the run for the final summary.
        self._client = httpx.AsyncClient(timeout=10.0, transport=transport)
        self.traffic: list[Traffic] = [
            part.traffic(world, Http(self._client, world.urls[name], self.failures))
            for name, part in parts.items()
            if part.traffic is not None and name in world.urls
        ]

    @property
    def on(self) -> bool:
        return self.world.rate > 0

    async def run(self) -> None:
        """Prepare every part, then run them all until cancelled; off: nothing at all."""
        if not self.on:
            return
        async with self._client:
            async with asyncio.TaskGroup() as preparing:
                for part in self.traffic:
                    preparing.create_task(part.prepare())
            # A TaskGroup, so one part failing stops the others instead of running headless.
            async with asyncio.TaskGroup() as running:
                for part in self.traffic:
                    running.create_task(part.run())

    def intro(self) -> str:
        """The start line's middle: "stocking the warehouses, then placing about 5 orders/s"."""
        first = " and ".join(p.preparing for p in self.traffic if p.preparing)
        then = " and ".join(p.doing for p in self.traffic if p.doing) or "running"
        return f"{first}, then {then}" if first else then

    def progress(self) -> str:
        counts = [p.progress() for p in self.traffic]
        return "simulator: " + ", ".join([*counts, f"{self.failures.count} errors"])

    def summary(self) -> str:
        totals = "; ".join(p.summary() for p in self.traffic) or "sent nothing"
        return f"simulator {totals}, {self.failures.count} errors"
