"""What `shopfloor run` reports while it runs: what the simulator did, and what the services
themselves say: the events their relays published (every service's /metrics) and whatever
each service's dev-stack probe reads from its API (orders by status, stock, ...). Anything
that cannot be read this time shows as `?`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shopfloor_devstack.parts import Probe

T = TypeVar("T")
INDENT = " " * 8  # the width of "[mm:ss] ", so a wrapped line reads as one


@dataclass(frozen=True)
class Progress:
    """One tick: two lines, the simulator's side and the services' side."""

    elapsed_s: float
    simulator: str | None  # the simulator's counts; None: it is off
    published: dict[str, int | None]  # per service, in the stack's order
    probed: dict[str, str | None] = field(default_factory=dict)  # probe label -> reading

    def lines(self) -> list[str]:
        minutes, seconds = divmod(int(self.elapsed_s), 60)
        events = ", ".join(f"{name} {_known(n)}" for name, n in self.published.items())
        services = [f"events: {events}"]
        services += [f"{label}: {_known(reading)}" for label, reading in self.probed.items()]
        return [
            f"[{minutes:02d}:{seconds:02d}] {self.simulator or 'simulator off'}",
            INDENT + " | ".join(services),
        ]


async def take(
    client: httpx.AsyncClient,
    urls: Mapping[str, str],
    probes: Mapping[str, Probe],
    elapsed_s: float,
    simulator: str | None,
    publishing: Collection[str] | None = None,
) -> Progress:
    """Ask every service at once; `urls` maps service names to their base URLs, `probes`
    service names to what their progress probe reads, `publishing` names the ones whose
    published events are counted (default: all; a worker without a relay has none)."""
    counted = [name for name in urls if publishing is None or name in publishing]
    published, readings = await asyncio.gather(
        asyncio.gather(*(_or_none(events_published(client, urls[name])) for name in counted)),
        asyncio.gather(*(_or_none(p.read(client, urls[name])) for name, p in probes.items())),
    )
    probed = dict(zip((p.label for p in probes.values()), readings, strict=True))
    return Progress(elapsed_s, simulator, dict(zip(counted, published, strict=True)), probed)


async def events_published(client: httpx.AsyncClient, url: str) -> int:
    """The service's shopfloor_events_published_total, summed over topics."""
    response = await client.get(f"{url}/metrics")
    response.raise_for_status()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            if family.name == "shopfloor_events_published"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


async def _or_none(work: Awaitable[T]) -> T | None:
    """A service that is busy or restarting costs one `?`, not the progress line."""
    try:
        return await work
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _known(value: object | None) -> str:
    return "?" if value is None else str(value)
