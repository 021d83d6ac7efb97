"""The order service's part in the dev stack (`shopfloor run`): shop front-ends and
marketplaces placing, paying and cancelling orders through this service's API, and the
order counts by status for the progress line. Only the dev stack imports this module
(entry point `shopfloor.devstack`), so no service image needs httpx for it.

Each placed order lives out its own short story as a task: most are paid (with the exact
total the service priced), a few are cancelled, the rest stay unpaid so the payment timeout
has something to do. When every check a paid order needs runs in the stack (the rules'
`required_checks`: inventory and risk), a paid order is watched until it is confirmed,
cancelled for short stock or held by risk; otherwise the story ends at paying, since no
order could ever be confirmed. Shipping is not a shopper's doing: fulfilment ships
confirmed orders (its own dev-stack part plays the warehouse), and the order service
follows on `fulfilment.v1`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args

import httpx
from shopfloor_devstack.parts import Http, Part, Probe, World

from order.api import Status
from order.domain import CANCELLED, CONFIRMED, ON_HOLD, PAID, SHORT_OF_STOCK
from order.settings import RulesSettings

STATUSES: tuple[str, ...] = get_args(Status)  # as the API reports them, in story order


@dataclass
class Counts:
    placed: int = 0
    paid: int = 0
    confirmed: int = 0
    cancelled: int = 0  # by the simulator, as the customer
    rejected: int = 0  # cancelled by the service because inventory was short
    held: int = 0  # paid, then held by risk (its own part plays the operator who decides)


@dataclass(frozen=True)
class Mix:
    """What becomes of a placed order; whatever is neither paid nor cancelled stays unpaid."""

    pay: float = 0.80
    cancel: float = 0.05
    coupon: float = 0.12  # orders that try one of the coupons valid for them
    express: float = 0.15  # orders that ask for express delivery
    min_delay_s: float = 0.1
    max_delay_s: float = 1.5
    confirm_wait_s: float = 10.0
    poll_every_s: float = 0.25


class ShopFront:
    """Places orders at the world's rate until its run() task is cancelled."""

    preparing = ""

    def __init__(
        self,
        world: World,
        http: Http,
        mix: Mix | None = None,
        rules: RulesSettings | None = None,
        max_in_flight: int = 200,
    ) -> None:
        self.world, self.http, self.mix = world, http, mix or Mix()
        # The defaults the service runs with: the stack sets no ORDER_RULES__ variables.
        self.rules = rules or RulesSettings()
        # Confirmation needs every required check's service; without one, none is confirmed.
        self.confirms = all(check in world.urls for check in self.rules.required_checks)
        self.counts = Counts()
        self._rng = random.Random(world.seed)  # noqa: S311 - traffic, not secrets
        self._slots = asyncio.Semaphore(max_in_flight)
        self._stories: set[asyncio.Task[None]] = set()

    @property
    def doing(self) -> str:
        return f"placing about {self.world.rate:g} orders/s"

    async def prepare(self) -> None:
        return None

    async def run(self) -> None:
        try:
            await self._place_forever()
        finally:
            stories = list(self._stories)
            for story in stories:
                story.cancel()
            await asyncio.gather(*stories, return_exceptions=True)

    def progress(self) -> str:
        c = self.counts
        if not self.confirms:
            return f"{c.placed} placed, {c.paid} paid, {c.cancelled} cancelled"
        return (
            f"{c.placed} placed, {c.paid} paid, {c.confirmed} confirmed, {c.held} held, "
            f"{c.cancelled} cancelled, {c.rejected} short of stock"
        )

    def summary(self) -> str:
        c = self.counts
        if not self.confirms:
            return f"placed {c.placed} orders, paid {c.paid}, cancelled {c.cancelled}"
        return (
            f"placed {c.placed} orders, paid {c.paid}, confirmed {c.confirmed}, held {c.held}, "
            f"cancelled {c.cancelled}, {c.rejected} short of stock"
        )

    # -- one order's story --------------------------------------------------------------

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
            next_at = max(next_at + 1 / self.world.rate, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def _story_done(self, story: asyncio.Task[None]) -> None:
        self._stories.discard(story)
        self._slots.release()

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
        if paid is not None and self.confirms:
            await self._await_confirmation(paid)

    async def _await_confirmation(self, order: dict[str, Any]) -> None:
        decided = await self._decision(order)
        if decided is not None and decided["status"] == CONFIRMED:
            self.counts.confirmed += 1
        elif decided is not None and decided["status"] == ON_HOLD:
            self.counts.held += 1

    async def _decision(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """The order once the checks decided (confirmed, cancelled or held by risk), or
        None when it is still only paid after `confirm_wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.mix.confirm_wait_s
        while order["status"] == PAID:
            if loop.time() > deadline:
                return None
            await asyncio.sleep(self.mix.poll_every_s)
            found = await self.http.call("look up", "GET", _path(order))
            if found is None:
                return None
            order = found
        if _short_of_stock(order):
            self.counts.rejected += 1
        return order

    async def _place(self, n: int) -> dict[str, Any] | None:
        headers = {"Idempotency-Key": f"sim-{self.world.run_id}-{n}"}
        body = order_request(self._rng, self.world, self.rules, self.mix.coupon, self.mix.express)
        order = await self.http.call("place", "POST", "/orders", json=body, headers=headers)
        if order is not None:
            self.counts.placed += 1
        return order

    async def _pay(self, order: dict[str, Any]) -> dict[str, Any] | None:
        # The total comes back as a decimal string; passing it on untouched keeps it exact.
        body = {
            "amount": order["total"],
            "method": order.get("payment_method") or "card",
            "reference": f"sim-pay-{order['id']}",
        }
        response = await self.http.send("POST", f"{_path(order)}/payments", json=body)
        if await self._rejected_meanwhile(response, order):
            return None
        paid = self.http.json("pay", response)
        if paid is not None:
            self.counts.paid += 1
        return paid

    async def _cancel(self, order: dict[str, Any]) -> None:
        body = {"reason": "customer", "detail": "changed their mind (simulated)"}
        response = await self.http.send("POST", f"{_path(order)}/cancel", json=body)
        if await self._rejected_meanwhile(response, order):
            return
        if self.http.json("cancel", response) is not None:
            self.counts.cancelled += 1

    async def _rejected_meanwhile(
        self, response: httpx.Response | None, order: dict[str, Any]
    ) -> bool:
        """A 409 because inventory's rejection cancelled the order first is part of the
        story, not an error: counted as short of stock."""
        if response is None or response.status_code != 409:
            return False
        found = await self.http.call("look up", "GET", _path(order))
        if found is None or not _short_of_stock(found):
            return False
        self.counts.rejected += 1
        return True

    async def _pause(self) -> None:
        await asyncio.sleep(self._rng.uniform(self.mix.min_delay_s, self.mix.max_delay_s))


def order_request(
    rng: random.Random,
    world: World,
    rules: RulesSettings,
    coupon_share: float = 0.12,
    express_share: float = 0.15,
) -> dict[str, Any]:
    """One plausible POST /orders body: 1-3 distinct SKUs, sometimes a coupon, sometimes
    express delivery."""
    skus = rng.sample(sorted(world.catalogue), rng.randint(1, min(3, len(world.catalogue))))
    picked = [(sku, rng.randint(1, 3)) for sku in skus]
    channel = rng.choice(rules.channels)
    n = rng.randrange(len(world.customers))
    body: dict[str, Any] = {
        **world.shopper(n),
        "channel": channel,
        "lines": [{"sku": s, "qty": q, "unit_price": str(world.catalogue[s])} for s, q in picked],
        "shipping_address": dict(world.addresses[n]),
        "payment_method": "card" if "card" in rules.payment_methods else rules.payment_methods[0],
    }
    subtotal = sum((world.catalogue[sku] * qty for sku, qty in picked), Decimal(0))
    valid = valid_coupons(rules, channel, subtotal)
    if valid and rng.random() < coupon_share:
        body["coupon"] = rng.choice(valid)
    if rng.random() < express_share:
        body["service_level"] = "express"
    return body


def valid_coupons(rules: RulesSettings, channel: str, subtotal: Decimal) -> list[str]:
    """The coupons the rules accept for this order, so a discount never turns into a 422."""
    return sorted(
        code
        for code, c in rules.coupons.items()
        if (not c.channels or channel in c.channels) and subtotal >= c.min_subtotal
    )


def _short_of_stock(order: dict[str, Any]) -> bool:
    return order["status"] == CANCELLED and order.get("cancel_reason") == SHORT_OF_STOCK


def _path(order: dict[str, Any]) -> str:
    return f"/orders/{order['id']}"


async def order_statuses(client: httpx.AsyncClient, url: str) -> str:
    """ "3 awaiting payment, 12 confirmed", from GET /orders/counts."""
    response = await client.get(f"{url}/orders/counts")
    response.raise_for_status()
    counts = response.json()
    shown = [f"{int(counts[s])} {s.replace('_', ' ')}" for s in STATUSES if counts.get(s)]
    return ", ".join(shown) or "none yet"


PART = Part(
    traffic=ShopFront,
    probe=Probe("orders", order_statuses),
    # a 2-minute return window, not 7 days: a demo shows delivered orders completing
    pace={"ORDER_RULES__RETURN_WINDOW_S": "120"},
)
