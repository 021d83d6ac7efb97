"""What `shopfloor run` reports while it runs: what the simulator did, and what the services
themselves say (events their relays published, orders by status, stock), read from their
HTTP APIs and /metrics. Anything that cannot be read this time shows as `?`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shopfloor_runtime.simulator import SimCounts

T = TypeVar("T")
ORDER_STATUSES = ("awaiting_payment", "paid", "confirmed", "shipped", "cancelled", "refunded")
INDENT = " " * 8  # the width of "[mm:ss] ", so a wrapped line reads as one


@dataclass(frozen=True)
class StockSummary:
    skus: int
    available: int
    below_safety: int


@dataclass(frozen=True)
class Progress:
    """One tick: two lines, the simulator's side and the services' side."""

    elapsed_s: float
    sim: SimCounts | None  # None: the simulator is off
    published: dict[str, int | None]  # per service, in the stack's order
    statuses: dict[str, int] | None = None
    stock: StockSummary | None = None

    @property
    def has_inventory(self) -> bool:
        return "inventory" in self.published

    def lines(self) -> list[str]:
        minutes, seconds = divmod(int(self.elapsed_s), 60)
        services = [f"events: {self._events()}", f"orders: {self._statuses()}"]
        if self.has_inventory:
            services.append(f"stock: {self._stock()}")
        return [f"[{minutes:02d}:{seconds:02d}] {self._simulator()}", INDENT + " | ".join(services)]

    def _simulator(self) -> str:
        s = self.sim
        if s is None:
            return "simulator off"
        if not self.has_inventory:
            done = f"{s.cancelled} cancelled"
        else:
            done = (
                f"{s.confirmed} confirmed, {s.shipped} shipped, {s.cancelled} cancelled, "
                f"{s.rejected} short of stock, {s.restocks} restocks"
            )
        return f"simulator: {s.placed} placed, {s.paid} paid, {done}, {s.errors} errors"

    def _events(self) -> str:
        return ", ".join(f"{name} {_known(n)}" for name, n in self.published.items())

    def _statuses(self) -> str:
        if self.statuses is None:
            return "?"
        shown = [f"{n} {status.replace('_', ' ')}" for status, n in self.statuses.items() if n]
        return ", ".join(shown) or "none yet"

    def _stock(self) -> str:
        s = self.stock
        if s is None:
            return "?"
        return f"{s.available} available, {s.below_safety}/{s.skus} SKUs below safety"


def summary(sim: SimCounts, has_inventory: bool) -> str:
    """The simulator's totals, for the line printed once everything has stopped."""
    if not has_inventory:
        return (
            f"simulator placed {sim.placed}, paid {sim.paid}, cancelled {sim.cancelled} "
            f"orders ({sim.errors} errors)"
        )
    return (
        f"simulator placed {sim.placed} orders, paid {sim.paid}, confirmed {sim.confirmed}, "
        f"shipped {sim.shipped}, cancelled {sim.cancelled}, {sim.rejected} short of stock; "
        f"{sim.restocks} restocks, {sim.errors} errors"
    )


async def take(
    client: httpx.AsyncClient, urls: Mapping[str, str], elapsed_s: float, sim: SimCounts | None
) -> Progress:
    """Ask every service at once; `urls` maps service names to their base URLs."""
    order, inventory = urls.get("order"), urls.get("inventory")
    published, statuses, stock = await asyncio.gather(
        asyncio.gather(*(_or_none(events_published(client, url)) for url in urls.values())),
        _or_none(order_statuses(client, order)) if order else _nothing(),
        _or_none(stock_summary(client, inventory)) if inventory else _nothing(),
    )
    return Progress(elapsed_s, sim, dict(zip(urls, published, strict=True)), statuses, stock)


async def events_published(client: httpx.AsyncClient, url: str) -> int:
    """The service's shopfloor_events_published_total, summed over topics."""
    text = (await _get(client, f"{url}/metrics")).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "shopfloor_events_published"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


async def order_statuses(client: httpx.AsyncClient, url: str) -> dict[str, int]:
    counts = (await _get(client, f"{url}/orders/counts")).json()
    return {status: int(counts.get(status, 0)) for status in ORDER_STATUSES}


async def stock_summary(client: httpx.AsyncClient, url: str) -> StockSummary:
    # One page is every SKU of the simulated catalogue (and of most small shops).
    rows, below = await asyncio.gather(
        _get(client, f"{url}/stock", limit=1000), _get(client, f"{url}/stock", below_safety=True)
    )
    stock: list[dict[str, Any]] = rows.json()
    return StockSummary(len(stock), sum(int(r["available"]) for r in stock), len(below.json()))


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> httpx.Response:
    response = await client.get(url, params=params)
    response.raise_for_status()
    return response


async def _or_none(work: Awaitable[T]) -> T | None:
    """A service that is busy or restarting costs one `?`, not the progress line."""
    try:
        return await work
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


async def _nothing() -> None:
    return None


def _known(n: int | None) -> str:
    return "?" if n is None else str(n)
