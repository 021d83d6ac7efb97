"""The inventory service's part in the dev stack (`shopfloor run`): a purchasing team that
keeps every SKU of the simulated catalogue stocked through this service's API, and the
stock summary for the progress line. Only the dev stack imports this module (entry point
`shopfloor.devstack`), so no service image needs httpx for it.

Before the first order the catalogue gets its stock policy and, unless a previous run left
enough, its opening stock, split over the world's warehouses. Then, every few seconds,
purchasing acts on the reorder suggestions the way a real team would: any SKU short of
`reorder_below` gets a delivery of the suggested quantity, within the lot limits.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from shopfloor_devstack.parts import Http, Part, Probe, World


@dataclass(frozen=True)
class Purchasing:
    """How the simulated purchasing team keeps every catalogue SKU in stock."""

    safety_stock: int = 40
    lead_time_days: int = 5
    opening_stock: int = 300  # units per SKU at the start, split over the warehouses
    reorder_below: int = 60  # available units that make purchasing act
    lot: int = 200  # the least a reorder brings in
    max_lot: int = 1000  # the most, whatever the suggestion says
    every_s: float = 3.0


class PurchasingTeam:
    preparing = "stocking the warehouses"
    doing = ""  # restocking goes without saying

    def __init__(self, world: World, http: Http, purchasing: Purchasing | None = None) -> None:
        self.world, self.http, self.purchasing = world, http, purchasing or Purchasing()
        self.restocks = 0  # deliveries booked after the opening stock
        self._rng = random.Random(world.seed)  # noqa: S311 - traffic, not secrets

    async def prepare(self) -> None:
        """Every catalogue SKU gets its policy and, unless a previous run left enough, its
        opening stock; done before the first order, so the first orders find stock."""
        for sku in sorted(self.world.catalogue):
            response = await self.http.send("GET", f"/stock/{sku}")
            stock: dict[str, Any] | None = {}  # 404: never received, default policy
            if response is None or response.status_code != 404:
                stock = self.http.json("read stock", response)
            if stock is None:
                continue
            available = stock.get("available", 0)
            if available < self.purchasing.reorder_below:
                await self._receive(sku, self.purchasing.opening_stock - available)
            await self._set_policy(sku, stock)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.purchasing.every_s)
            try:
                await self._restock()
            except (KeyError, TypeError) as error:  # an answer of another shape: keep going
                self.http.failures.add(f"restock -> {type(error).__name__}: {error}")

    def progress(self) -> str:
        return f"{self.restocks} restocks"

    def summary(self) -> str:
        return f"{self.restocks} restocks"

    async def _set_policy(self, sku: str, stock: dict[str, Any]) -> None:
        p = self.purchasing
        wanted = {"safety_stock": p.safety_stock, "lead_time_days": p.lead_time_days}
        if all(stock.get(key) == value for key, value in wanted.items()):
            return  # a resumed run: already set, so no new event
        # The rest of the policy stays as it is: an operator may have set it through the API.
        rest = {k: stock[k] for k in ("purchase_limit", "presale_allowance") if k in stock}
        await self.http.call("set policy", "PUT", f"/stock/{sku}/policy", json={**wanted, **rest})

    async def _restock(self) -> None:
        stock = await self.http.call("list stock", "GET", "/stock?limit=1000")
        advice = await self.http.call("reorder advice", "GET", "/reorder-suggestions")
        if stock is None or advice is None:
            return
        available = {row["sku"]: row["available"] for row in stock}
        suggested = {row["sku"]: row["quantity"] for row in advice}
        p = self.purchasing
        for sku in sorted(self.world.catalogue):
            if available.get(sku, 0) < p.reorder_below:
                qty = min(max(suggested.get(sku, 0), p.lot), p.max_lot)
                if await self._receive(sku, qty):
                    self.restocks += 1

    async def _receive(self, sku: str, qty: int) -> bool:
        """One delivery, split over the warehouses; True if all of it was booked."""
        shares = self._split(qty, len(self.world.warehouses))
        # what the supplier charged: about 55 % of the shelf price, a little different
        # each delivery (analytics keeps a weighted average per SKU for the margin)
        cost = self.world.catalogue[sku] * Decimal(str(round(self._rng.uniform(0.5, 0.6), 3)))
        unit_cost = str(cost.quantize(Decimal("0.01")))
        booked = True
        for warehouse, part in zip(self.world.warehouses, shares, strict=True):
            if part > 0:
                body = {"sku": sku, "warehouse": warehouse, "qty": part, "unit_cost": unit_cost}
                receipt = await self.http.call(
                    "receive stock", "POST", "/stock/receipts", json=body
                )
                booked = receipt is not None and booked
        return booked

    def _split(self, qty: int, ways: int) -> list[int]:
        """`qty` in `ways` roughly even, randomly uneven shares (never a negative one)."""
        weights = [self._rng.uniform(0.8, 1.2) for _ in range(ways)]
        shares = [int(qty * w / sum(weights)) for w in weights]
        shares[0] += qty - sum(shares)
        return shares


async def stock_summary(client: httpx.AsyncClient, url: str) -> str:
    """ "3580 available, 1/12 SKUs below safety", from GET /stock."""
    # One page is every SKU of the simulated catalogue (and of most small shops).
    rows, below = await asyncio.gather(
        client.get(f"{url}/stock", params={"limit": 1000}),
        client.get(f"{url}/stock", params={"below_safety": True}),
    )
    rows.raise_for_status()
    below.raise_for_status()
    stock: list[dict[str, Any]] = rows.json()
    available = sum(int(r["available"]) for r in stock)
    return f"{available} available, {len(below.json())}/{len(stock)} SKUs below safety"


PART = Part(traffic=PurchasingTeam, probe=Probe("stock", stock_summary))
