"""The risk service's part in the dev stack (`shopfloor run`): the orders that should
worry risk, placed through the order API, and the operator who works the exception
queues through this service's API; the exception counts for the progress line; and the
velocity worker (`python -m risk.windows`) beside the service. Only the dev stack imports
this module (entry point `shopfloor.devstack`), so no service image needs httpx for it.

- A brushing burst now and then (`Trouble.burst_every_s`): one new customer places
  `burst_size` orders from one device to one address within seconds. The velocity rules
  (more than 4 in 10 min by default) flag the ones past the limit as serious: held.
- Now and then an order with an address that cannot be right (a German postcode of four
  digits: ordinary, to the front line, not held), or one far larger than the shop's
  usual (`oversized_qty` hoodies, over the 1,000 limit: serious, held).
- Every order this part places is paid, so a released one goes on to be confirmed.
- The operator looks at the open exceptions every `Desk.look_every_s`; a case open for
  `Desk.think_s` is decided: a held one released (`Desk.release`, "known wholesaler") or
  cancelled (as fraud when velocity held it), an ordinary one closed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from shopfloor_devstack.parts import Companion, Http, Part, Probe, World

OVERSIZED_SKU = "HOODIE-M"


@dataclass(frozen=True)
class Trouble:
    """How often the worrying orders come."""

    burst_every_s: float = 45.0
    burst_size: int = 6
    burst_gap_s: float = 0.3
    odd_every_s: float = 20.0  # a bad address or an oversized order, in turn
    oversized_qty: int = 25
    first_after_s: float = 5.0


@dataclass(frozen=True)
class Desk:
    """How the simulated risk operator works."""

    look_every_s: float = 5.0
    think_s: float = 10.0  # a case stays visible (and its order on hold) at least this long
    release: float = 0.6  # held cases released; the rest are cancelled


@dataclass
class Counts:
    bursts: int = 0
    odd: int = 0
    released: int = 0
    cancelled: int = 0
    closed: int = 0


class RiskTraffic:
    """Worrying orders into the order API, and the operator at this service's queues."""

    preparing = ""

    def __init__(
        self, world: World, http: Http, trouble: Trouble | None = None, desk: Desk | None = None
    ) -> None:
        self.world, self.http = world, http
        self.trouble, self.desk = trouble or Trouble(), desk or Desk()
        self.orders = (
            Http(http.client, world.urls["order"], http.failures) if "order" in world.urls else None
        )
        self.counts = Counts()
        self._rng = random.Random(world.seed)  # noqa: S311 - traffic, not secrets
        self._serial = itertools.count(1)

    @property
    def doing(self) -> str:
        if self.orders is None or self.world.rate <= 0:
            return "an operator working the exception queues"
        return (
            f"a brushing burst every {self.trouble.burst_every_s:g}s, an odd order every "
            f"{self.trouble.odd_every_s:g}s, an operator working the exception queues"
        )

    async def prepare(self) -> None:
        return None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._operator())
            if self.orders is not None and self.world.rate > 0:
                group.create_task(self._bursts())
                group.create_task(self._odd_orders())

    def progress(self) -> str:
        c = self.counts
        return (
            f"{c.bursts} bursts, {c.odd} odd orders; operator released {c.released}, "
            f"cancelled {c.cancelled}, closed {c.closed}"
        )

    def summary(self) -> str:
        c = self.counts
        return (
            f"risk: {c.bursts} brushing bursts and {c.odd} odd orders sent; the operator "
            f"released {c.released}, cancelled {c.cancelled} and closed {c.closed} exceptions"
        )

    # -- the orders -----------------------------------------------------------------------

    async def _bursts(self) -> None:
        await asyncio.sleep(self.trouble.first_after_s)
        while True:
            n = next(self._serial)
            who = f"brusher-{self.world.run_id}-{n}"
            shopper = {"customer_id": who, "device_id": f"device-{who}", "client_ip": "10.99.0.7"}
            address = {
                "name": "Max Mustermann",
                "line1": "Lagerweg 9",
                "city": "Hamburg",
                "postal_code": "20095",
                "country": "DE",
            }
            for _ in range(self.trouble.burst_size):
                await self._place(shopper, address, {"STICKERS-10": 1})
                await asyncio.sleep(self.trouble.burst_gap_s)
            self.counts.bursts += 1
            await asyncio.sleep(self.trouble.burst_every_s)

    async def _odd_orders(self) -> None:
        await asyncio.sleep(self.trouble.first_after_s)
        for turn in itertools.count():
            index = self._rng.randrange(len(self.world.customers))
            shopper = self.world.shopper(index)
            address = dict(self.world.addresses[index])
            lines = {"MUG-WHITE": 1}
            if turn % 2 == 0:
                address.update(country="DE", postal_code="1011", city="Berlin")  # 4 digits
            else:
                lines = {OVERSIZED_SKU: self.trouble.oversized_qty}
            await self._place(shopper, address, lines)
            self.counts.odd += 1
            await asyncio.sleep(self.trouble.odd_every_s)

    async def _place(
        self, shopper: dict[str, str], address: dict[str, str], lines: dict[str, int]
    ) -> None:
        assert self.orders is not None
        body = {
            **shopper,
            "channel": "shop",
            "lines": [
                {"sku": sku, "qty": qty, "unit_price": str(self.world.catalogue[sku])}
                for sku, qty in lines.items()
            ],
            "shipping_address": address,
            "payment_method": "card",
        }
        key = f"sim-risk-{self.world.run_id}-{next(self._serial)}"
        order = await self.orders.call(
            "place", "POST", "/orders", json=body, headers={"Idempotency-Key": key}
        )
        if order is None:
            return
        payment = {
            "amount": order["total"],
            "method": "card",
            "reference": f"sim-pay-{order['id']}",
        }
        await self.orders.call("pay", "POST", f"/orders/{order['id']}/payments", json=payment)

    # -- the operator ---------------------------------------------------------------------

    async def _operator(self) -> None:
        while True:
            await asyncio.sleep(self.desk.look_every_s)
            found = await self.http.call(
                "list exceptions", "GET", "/exceptions", params={"status": "open", "limit": 200}
            )
            for case in found or []:
                if self._old_enough(case):
                    await self._decide(case)

    def _old_enough(self, case: dict[str, Any]) -> bool:
        opened = case.get("opened_at")
        if not opened:
            return False
        age = datetime.now(UTC) - datetime.fromisoformat(opened)
        return age.total_seconds() >= self.desk.think_s

    async def _decide(self, case: dict[str, Any]) -> None:
        path = f"/exceptions/{case['exception_id']}"
        rules = sorted({r["rule"] for r in case["reasons"]})
        body: dict[str, Any]
        if not case["hold"]:
            body = {"operator": "sim-frontline", "comment": f"checked {', '.join(rules)}"}
            await self._step("close", f"{path}/close", body, "closed")
        elif self._rng.random() < self.desk.release:
            body = {"operator": "sim-specialist", "comment": "known wholesaler (simulated)"}
            await self._step("release", f"{path}/release", body, "released")
        else:
            fraud = any(r.startswith("velocity") for r in rules)
            body = {"operator": "sim-specialist", "comment": "brushing (simulated)", "fraud": fraud}
            await self._step("cancel", f"{path}/cancel", body, "cancelled")

    async def _step(self, what: str, path: str, body: dict[str, Any], counted: str) -> None:
        response = await self.http.send("POST", path, json=body)
        if response is not None and response.status_code == 409:
            return  # decided meanwhile (its order shipped or was cancelled): not a failure
        if self.http.json(what, response) is not None:
            setattr(self.counts, counted, getattr(self.counts, counted) + 1)


async def exception_counts(client: httpx.AsyncClient, url: str) -> str:
    """ "3 open (2 held), 5 released, 2 cancelled", from GET /exceptions/counts."""
    response = await client.get(f"{url}/exceptions/counts")
    response.raise_for_status()
    counts = response.json()
    shown = []
    if counts.get("open"):
        shown.append(f"{counts['open']} open ({counts.get('held', 0)} held)")
    shown += [f"{counts[s]} {s}" for s in ("released", "cancelled", "closed") if counts.get(s)]
    return ", ".join(shown) or "no exceptions yet"


PART = Part(
    traffic=RiskTraffic,
    probe=Probe("exceptions", exception_counts),
    companions=(
        Companion(
            name="risk-windows",
            module="risk.windows",
            env_prefix="RISK_WINDOWS_",
            data_dir_variable="RISK_WINDOWS_DATADIR",
            what="velocity windows (faust; counts orders per customer, address, device)",
        ),
    ),
)
