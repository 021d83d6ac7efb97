"""Traffic for the embedded stack: a few shop front-ends and marketplaces placing, paying
and cancelling orders through the order API at a steady rate.

Each placed order lives out its own short story as a task: most are paid (with the exact
total the service priced), a few are cancelled, the rest stay unpaid so the service's
payment timeout has something to do. Failures are counted, never raised: the simulator
keeps going while the service is slow or restarting.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

CHANNELS = ("shop", "marketplace-a", "marketplace-b")
CATALOGUE: dict[str, Decimal] = {
    "MUG-WHITE": Decimal("8.50"),
    "MUG-BLACK": Decimal("8.90"),
    "TEE-S": Decimal("19.00"),
    "TEE-M": Decimal("19.00"),
    "TEE-L": Decimal("21.00"),
    "HOODIE-M": Decimal("49.90"),
    "CAP-RED": Decimal("14.95"),
    "SOCKS-3P": Decimal("9.99"),
    "BOTTLE-750": Decimal("24.50"),
    "TOTE-BAG": Decimal("12.00"),
    "POSTER-A2": Decimal("15.00"),
    "STICKERS-10": Decimal("4.99"),
}
CUSTOMERS = tuple(f"cust-{n:04d}" for n in range(1, 201))
ADDRESSES: tuple[dict[str, str], ...] = (
    {
        "name": "Ada Lovelace",
        "line1": "Hauptstr. 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    {
        "name": "Blaise Pascal",
        "line1": "12 Rue de Rivoli",
        "city": "Paris",
        "postal_code": "75004",
        "country": "FR",
    },
    {
        "name": "Edsger Dijkstra",
        "line1": "Prinsengracht 263",
        "city": "Amsterdam",
        "postal_code": "1016 GV",
        "country": "NL",
    },
    {
        "name": "Grace Hopper",
        "line1": "10 Downing Lane",
        "city": "London",
        "postal_code": "SW1A 2AA",
        "country": "GB",
    },
    {
        "name": "Kurt Goedel",
        "line1": "Ringstr. 7",
        "city": "Wien",
        "postal_code": "1010",
        "country": "AT",
    },
)
WELCOME_MIN_SUBTOTAL = Decimal(20)


@dataclass
class SimCounts:
    placed: int = 0
    paid: int = 0
    cancelled: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Mix:
    """What becomes of a placed order; whatever is neither paid nor cancelled stays unpaid."""

    pay: float = 0.80
    cancel: float = 0.05
    min_delay_s: float = 0.1
    max_delay_s: float = 1.5


def order_request(rng: random.Random) -> dict[str, Any]:
    """One plausible POST /orders body: 1-3 distinct SKUs, sometimes a coupon."""
    picked = [(sku, rng.randint(1, 3)) for sku in rng.sample(sorted(CATALOGUE), rng.randint(1, 3))]
    lines = [{"sku": s, "qty": q, "unit_price": str(CATALOGUE[s])} for s, q in picked]
    channel = rng.choice(CHANNELS)
    body: dict[str, Any] = {
        "customer_id": rng.choice(CUSTOMERS),
        "channel": channel,
        "lines": lines,
        "shipping_address": rng.choice(ADDRESSES),
        "payment_method": "card",
    }
    subtotal = sum((CATALOGUE[sku] * qty for sku, qty in picked), Decimal(0))
    coupon = _coupon(rng, channel, subtotal)
    if coupon:
        body["coupon"] = coupon
    return body


def _coupon(rng: random.Random, channel: str, subtotal: Decimal) -> str | None:
    # Only coupons the default rules accept, so a discount never turns into a 422.
    roll = rng.random()
    if roll < 0.08 and subtotal >= WELCOME_MIN_SUBTOTAL:
        return "WELCOME10"
    if roll < 0.12 and channel == "shop":
        return "SHOP5"
    return None


class Simulator:
    """Places orders at `rate` per second until its `run()` task is cancelled."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        *,
        mix: Mix | None = None,
        seed: int | None = None,
        max_in_flight: int = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self.rate, self.mix = base_url, rate, mix or Mix()
        self.counts = SimCounts()
        self._rng = random.Random(seed)  # noqa: S311 - traffic, not secrets
        # Keys unique per run: a second `shopfloor run` must not replay the first run's keys.
        self._run_id = uuid.uuid4().hex[:12]
        self._slots = asyncio.Semaphore(max_in_flight)
        self._stories: set[asyncio.Task[None]] = set()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        """Place orders until cancelled; a rate of 0 places none."""
        if self.rate <= 0:
            return
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=10.0, transport=self._transport
        ) as client:
            self._client = client
            try:
                await self._place_forever()
            finally:
                await self._drop_stories()

    async def _place_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for n in itertools.count(1):
            # Back-pressure: a slow service slows the simulator instead of piling up tasks.
            await self._slots.acquire()
            story = asyncio.create_task(self._story(n))
            self._stories.add(story)
            story.add_done_callback(self._story_done)
            # No catching up after a stall: the rate is a ceiling, never a burst.
            next_at = max(next_at + 1 / self.rate, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def _story_done(self, story: asyncio.Task[None]) -> None:
        self._stories.discard(story)
        self._slots.release()

    async def _drop_stories(self) -> None:
        stories = list(self._stories)
        for story in stories:
            story.cancel()
        await asyncio.gather(*stories, return_exceptions=True)

    async def _story(self, n: int) -> None:
        order = await self._place(n)
        if order is None:
            return
        fate = self._rng.random()
        if fate >= self.mix.pay + self.mix.cancel:
            return  # left unpaid: the service's payment timeout cancels it
        await asyncio.sleep(self._rng.uniform(self.mix.min_delay_s, self.mix.max_delay_s))
        if fate < self.mix.pay:
            await self._pay(order)
        else:
            await self._cancel(order)

    async def _place(self, n: int) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": f"sim-{self._run_id}-{n}"}
        order = await self._call("place", "/orders", order_request(self._rng), headers)
        if order is not None:
            self.counts.placed += 1
        return order

    async def _pay(self, order: dict[str, Any]) -> None:
        # The total comes back as a decimal string; passing it on untouched keeps it exact.
        body = {"amount": order["total"], "method": "card", "reference": f"sim-pay-{order['id']}"}
        if await self._call("pay", f"/orders/{order['id']}/payments", body) is not None:
            self.counts.paid += 1

    async def _cancel(self, order: dict[str, Any]) -> None:
        body = {"reason": "customer", "detail": "changed their mind (simulated)"}
        if await self._call("cancel", f"/orders/{order['id']}/cancel", body) is not None:
            self.counts.cancelled += 1

    async def _call(
        self, what: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        assert self._client is not None
        try:
            response = await self._client.post(path, json=body, headers=headers)
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            self._failed(f"{what} -> HTTP {status}: {error.response.text[:200]}")
        except (httpx.HTTPError, ValueError) as error:
            self._failed(f"{what} -> {type(error).__name__}: {error}")
        return None

    def _failed(self, message: str) -> None:
        self.counts.errors += 1
        self.counts.last_error = message
