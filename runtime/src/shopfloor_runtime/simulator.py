"""Traffic for the embedded stack: a few shop front-ends and marketplaces placing, paying,
cancelling and shipping orders through the order API, and a purchasing team keeping the
warehouses stocked through the inventory API.

Each placed order lives out its own short story as a task: most are paid (with the exact
total the service priced), a few are cancelled, the rest stay unpaid so the service's
payment timeout has something to do. A paid order is watched until inventory's check
confirms it (or its stock was short and it was cancelled), and most confirmed orders are
shipped, so inventory commits their stock. Without an inventory URL the simulator only
places, pays and cancels. Failures are counted, never raised: the simulator keeps going
while a service is slow or restarting.
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
ADDRESSES: tuple[dict[str, str], ...] = tuple(
    dict(zip(("name", "line1", "city", "postal_code", "country"), fields, strict=True))
    for fields in (
        ("Ada Lovelace", "Hauptstr. 1", "Berlin", "10115", "DE"),
        ("Blaise Pascal", "12 Rue de Rivoli", "Paris", "75004", "FR"),
        ("Edsger Dijkstra", "Prinsengracht 263", "Amsterdam", "1016 GV", "NL"),
        ("Grace Hopper", "10 Downing Lane", "London", "SW1A 2AA", "GB"),
        ("Kurt Goedel", "Ringstr. 7", "Wien", "1010", "AT"),
    )
)
WELCOME_MIN_SUBTOTAL = Decimal(20)
CARRIERS = ("DHL", "DPD", "GLS", "UPS", "PostNL")
WAREHOUSES = ("WH-BER", "WH-AMS")
STOCK_SHORT = "reservation_rejected"  # the order service's cancel reason for short stock


@dataclass
class SimCounts:
    placed: int = 0
    paid: int = 0
    confirmed: int = 0
    shipped: int = 0
    cancelled: int = 0  # by the simulator, as the customer
    rejected: int = 0  # cancelled by the order service because inventory was short
    restocks: int = 0  # deliveries purchasing booked after the opening stock
    errors: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Mix:
    """What becomes of a placed order; whatever is neither paid nor cancelled stays unpaid.
    `ship` is the share of confirmed orders that are shipped."""

    pay: float = 0.80
    cancel: float = 0.05
    ship: float = 0.70
    min_delay_s: float = 0.1
    max_delay_s: float = 1.5
    confirm_wait_s: float = 5.0
    poll_every_s: float = 0.25


@dataclass(frozen=True)
class Purchasing:
    """How the simulated purchasing team keeps every catalogue SKU in stock."""

    safety_stock: int = 40
    lead_time_days: int = 5
    opening_stock: int = 300  # units per SKU at the start, split over WAREHOUSES
    reorder_below: int = 60  # available units that make purchasing act
    lot: int = 200  # the least a reorder brings in
    max_lot: int = 1000  # the most, whatever the suggestion says
    every_s: float = 3.0


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
    """Places orders at `rate` per second until its `run()` task is cancelled; with an
    `inventory_url` it first stocks the catalogue and keeps restocking it meanwhile."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        *,
        inventory_url: str | None = None,
        mix: Mix | None = None,
        purchasing: Purchasing | None = None,
        seed: int | None = None,
        max_in_flight: int = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self.rate, self.mix = base_url, rate, mix or Mix()
        self.inventory_url, self.purchasing = inventory_url, purchasing or Purchasing()
        self.counts = SimCounts()
        self._rng = random.Random(seed)  # noqa: S311 - traffic, not secrets
        # Keys unique per run: a second `shopfloor run` must not replay the first run's keys.
        self._run_id = uuid.uuid4().hex[:12]
        self._slots = asyncio.Semaphore(max_in_flight)
        self._stories: set[asyncio.Task[None]] = set()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        """Place orders until cancelled; a rate of 0 does nothing at all."""
        if self.rate <= 0:
            return
        async with httpx.AsyncClient(timeout=10.0, transport=self._transport) as client:
            self._client = client
            restocking: asyncio.Task[None] | None = None
            try:
                if self.inventory_url:
                    await self._stock_catalogue()
                    restocking = asyncio.create_task(self._restock_forever())
                await self._place_forever()
            finally:
                if restocking is not None:
                    restocking.cancel()
                    await asyncio.gather(restocking, return_exceptions=True)
                await self._drop_stories()

    # -- the shop front ---------------------------------------------------------------

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
        await self._pause()
        if fate >= self.mix.pay:
            await self._cancel(order)
            return
        paid = await self._pay(order)
        if paid is not None and self.inventory_url:
            await self._confirm_and_ship(paid)

    async def _confirm_and_ship(self, order: dict[str, Any]) -> None:
        decided = await self._decision(order)
        if decided is None or decided["status"] != "confirmed":
            return
        self.counts.confirmed += 1
        if self._rng.random() < self.mix.ship:
            await self._pause()
            await self._ship(order)

    async def _decision(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """The order once inventory's answer arrived (confirmed or cancelled), or None
        when it is still only paid after `confirm_wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.mix.confirm_wait_s
        while order["status"] == "paid":
            if loop.time() > deadline:
                return None
            await asyncio.sleep(self.mix.poll_every_s)
            found = self._json("look up", await self._send("GET", self._order_url(order)))
            if found is None:
                return None
            order = found
        if self._short_of_stock(order):
            self.counts.rejected += 1
        return order

    async def _place(self, n: int) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": f"sim-{self._run_id}-{n}"}
        body = order_request(self._rng)
        response = await self._send("POST", f"{self.base_url}/orders", json=body, headers=headers)
        order = self._json("place", response)
        if order is not None:
            self.counts.placed += 1
        return order

    async def _pay(self, order: dict[str, Any]) -> dict[str, Any] | None:
        # The total comes back as a decimal string; passing it on untouched keeps it exact.
        body = {"amount": order["total"], "method": "card", "reference": f"sim-pay-{order['id']}"}
        response = await self._send("POST", f"{self._order_url(order)}/payments", json=body)
        if await self._rejected_meanwhile(response, order):
            return None
        paid = self._json("pay", response)
        if paid is not None:
            self.counts.paid += 1
        return paid

    async def _cancel(self, order: dict[str, Any]) -> None:
        body = {"reason": "customer", "detail": "changed their mind (simulated)"}
        response = await self._send("POST", f"{self._order_url(order)}/cancel", json=body)
        if await self._rejected_meanwhile(response, order):
            return
        if self._json("cancel", response) is not None:
            self.counts.cancelled += 1

    async def _ship(self, order: dict[str, Any]) -> None:
        carrier = self._rng.choice(CARRIERS)
        body = {
            "carrier": carrier,
            "tracking_number": f"{carrier.upper()}{self._rng.getrandbits(40)}",
        }
        response = await self._send("POST", f"{self._order_url(order)}/shipments", json=body)
        if self._json("ship", response) is not None:
            self.counts.shipped += 1

    async def _rejected_meanwhile(
        self, response: httpx.Response | None, order: dict[str, Any]
    ) -> bool:
        """A 409 because inventory's rejection cancelled the order first is part of the
        story, not an error: counted as rejected for stock."""
        if response is None or response.status_code != 409:
            return False
        found = self._json("look up", await self._send("GET", self._order_url(order)))
        if found is None or not self._short_of_stock(found):
            return False
        self.counts.rejected += 1
        return True

    @staticmethod
    def _short_of_stock(order: dict[str, Any]) -> bool:
        return order["status"] == "cancelled" and order.get("cancel_reason") == STOCK_SHORT

    def _order_url(self, order: dict[str, Any]) -> str:
        return f"{self.base_url}/orders/{order['id']}"

    async def _pause(self) -> None:
        await asyncio.sleep(self._rng.uniform(self.mix.min_delay_s, self.mix.max_delay_s))

    # -- the warehouse ----------------------------------------------------------------

    async def _stock_catalogue(self) -> None:
        """Every catalogue SKU gets its policy and, unless a previous run left enough, its
        opening stock; done before the first order, so the first orders find stock."""
        for sku in sorted(CATALOGUE):
            response = await self._send("GET", f"{self.inventory_url}/stock/{sku}")
            stock: dict[str, Any] | None = {}  # 404: never received, default policy
            if response is None or response.status_code != 404:
                stock = self._json("read stock", response)
            if stock is None:
                continue
            available = stock.get("available", 0)
            if available < self.purchasing.reorder_below:
                await self._receive(sku, self.purchasing.opening_stock - available)
            await self._set_policy(sku, stock)

    async def _set_policy(self, sku: str, stock: dict[str, Any]) -> None:
        p = self.purchasing
        wanted = {"safety_stock": p.safety_stock, "lead_time_days": p.lead_time_days}
        if all(stock.get(key) == value for key, value in wanted.items()):
            return  # a resumed run: already set, so no new event
        # The rest of the policy stays as it is: an operator may have set it through the API.
        rest = {k: stock[k] for k in ("purchase_limit", "presale_allowance") if k in stock}
        response = await self._send(
            "PUT", f"{self.inventory_url}/stock/{sku}/policy", json={**wanted, **rest}
        )
        self._json("set policy", response)

    async def _restock_forever(self) -> None:
        while True:
            await asyncio.sleep(self.purchasing.every_s)
            try:
                await self._restock()
            except (KeyError, TypeError) as error:  # an answer of another shape: keep going
                self._failed(f"restock -> {type(error).__name__}: {error}")

    async def _restock(self) -> None:
        """Like purchasing acting on the reorder suggestions: any SKU short of
        `reorder_below` gets a delivery of the suggested quantity, within the lot limits."""
        base = self.inventory_url
        stock = self._json("list stock", await self._send("GET", f"{base}/stock?limit=1000"))
        advice = self._json(
            "reorder advice", await self._send("GET", f"{base}/reorder-suggestions")
        )
        if stock is None or advice is None:
            return
        available = {row["sku"]: row["available"] for row in stock}
        suggested = {row["sku"]: row["quantity"] for row in advice}
        p = self.purchasing
        for sku in sorted(CATALOGUE):
            if available.get(sku, 0) < p.reorder_below:
                qty = min(max(suggested.get(sku, 0), p.lot), p.max_lot)
                if await self._receive(sku, qty):
                    self.counts.restocks += 1

    async def _receive(self, sku: str, qty: int) -> bool:
        """One delivery, split over the warehouses; True if all of it was booked."""
        first = round(qty * self._rng.uniform(0.4, 0.6))
        booked = True
        for warehouse, part in zip(WAREHOUSES, (first, qty - first), strict=True):
            if part > 0:
                body = {"sku": sku, "warehouse": warehouse, "qty": part}
                response = await self._send(
                    "POST", f"{self.inventory_url}/stock/receipts", json=body
                )
                booked = self._json("receive stock", response) is not None and booked
        return booked

    # -- HTTP ---------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        assert self._client is not None
        try:
            return await self._client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self._failed(f"{method} {url} -> {type(error).__name__}: {error}")
            return None

    def _json(self, what: str, response: httpx.Response | None) -> Any | None:
        """The answer's JSON, or None after counting the failure (None: already counted)."""
        if response is None:
            return None
        if not response.is_success:
            self._failed(f"{what} -> HTTP {response.status_code}: {response.text[:200]}")
            return None
        try:
            return response.json()
        except ValueError as error:
            self._failed(f"{what} -> not JSON: {error}")
            return None

    def _failed(self, message: str) -> None:
        self.counts.errors += 1
        self.counts.last_error = message
