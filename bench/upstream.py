"""Plays the order and inventory services for a benchmark of their consumers: confirmed
orders, each with its stock already reserved, at a rate that changes by phase.

One long-lived producer per upstream service, messages shaped as that service's outbox
relay writes them: the contract's schema version, a position per message in the
producer's own log (one counter per service, as its notification log), chained per topic
partition (`previous_position`), the key's partition by Kafka's default partitioner.
Sends are not awaited one by one: every order due is handed to the producer at once and
the acknowledgements are collected in the background, so the player is not limited by
one round trip per message. Modelled on tests/support.py's ContractProducer and the
Stream of tests/test_fulfilment_scaling.py, not imported from them.

Per order: OrderPlaced, OrderRecipientRecorded and OrderConfirmed from the order
service, StockReserved (every unit held in the warehouse nearest the destination, so
fulfilment has no reservation to move) from inventory.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel
from shopfloor_contracts import inventory as inv
from shopfloor_contracts.orders import Destination, OrderConfirmed, OrderLine, OrderPlaced
from shopfloor_contracts.orders_private import OrderRecipientRecorded, RecipientAddress
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import PartitionChains, partition_for
from shopfloor_runtime.settings import BrokerSettings

#: (country, postal code, region, the warehouse nearest it by fulfilment's default distances)
PLACES = (("DE", "10115", "DE-1", "WH-BER"), ("NL", "1016", "NL-1", "WH-AMS"))
WAREHOUSES = tuple(sorted({place[3] for place in PLACES}))
SKUS = ("TEE-S", "TEE-M", "MUG-WHITE", "CAP-RED", "SOCKS-3P", "BAG-TOTE")
Send = tuple[str, int, bytes, bytes]  # topic, partition, key, value


@dataclass(frozen=True)
class ConfirmedOrder:
    """What the order and inventory services publish for one order confirmed with all its
    units held in the warehouse nearest its destination."""

    order_id: str
    order_side: tuple[BaseModel, ...]  # OrderPlaced, OrderRecipientRecorded, OrderConfirmed
    reserved: inv.StockReserved


def confirmed_order(
    rng: random.Random,
    customer: str,
    skus: tuple[str, ...] = SKUS,
    serials: Callable[[str, int], list[str]] = lambda sku, qty: [],
) -> ConfirmedOrder:
    """A random order of 1-3 of `skus` (1-2 units each) to DE-1 or NL-1; `serials(sku,
    qty)` gives the reserved serial numbers of a line (none by default)."""
    order_id, now = str(uuid.uuid4()), datetime.now(UTC)
    country, postal, region, warehouse = rng.choice(PLACES)
    lines = [
        OrderLine(sku=s, qty=rng.randint(1, 2), unit_price=Decimal("9.00"))
        for s in rng.sample(skus, rng.randint(1, 3))
    ]
    total = sum((ln.unit_price * ln.qty for ln in lines), Decimal(0))
    fingerprint = f"addr-{customer}"
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        channel="shop",
        lines=lines,
        currency="EUR",
        subtotal=total,
        discount=Decimal(0),
        total=total,
        destination=Destination(
            country=country,
            postal_prefix=postal[:2],
            region=region,
            address_fingerprint=fingerprint,
        ),
        placed_at=now,
        payment_reminder_at=now + timedelta(minutes=15),
        payment_due_at=now + timedelta(minutes=30),
        required_checks=["inventory"],
    )
    recipient = OrderRecipientRecorded(
        order_id=order_id,
        customer_id=customer,
        address_fingerprint=fingerprint,
        placed_at=now,
        shipping_address=RecipientAddress(
            name="Test Person", line1="1 Road", city="Town", postal_code=postal, country=country
        ),
    )
    reserved = inv.StockReserved(
        order_id=order_id,
        reservation_id=str(uuid.uuid4()),
        lines=[
            inv.ReservedLine(
                sku=ln.sku, qty=ln.qty, warehouse=warehouse, serials=serials(ln.sku, ln.qty)
            )
            for ln in lines
        ],
    )
    confirmed = OrderConfirmed(order_id=order_id, checks=["inventory"], confirmed_at=now)
    return ConfirmedOrder(order_id, (placed, recipient, confirmed), reserved)


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float  # from the start of the stream
    seconds: float
    rate: float  # orders per second

    @property
    def end_s(self) -> float:
        return self.start_s + self.seconds


def due_times(phases: list[Phase]) -> Iterator[tuple[float, Phase]]:
    """Seconds from the stream's start at which each order is due: evenly spaced at each
    phase's rate (an open loop: the schedule does not wait for anyone). A phase may be
    open-ended (`seconds` infinite): `Upstream.play` then stops when told."""
    for phase in phases:
        n = 0
        while n / phase.rate < phase.seconds - 1e-9:
            yield phase.start_s + n / phase.rate, phase
            n += 1


class ServiceProducer:
    """One upstream service's producer, kept open for the whole run."""

    def __init__(self, broker: BrokerSettings, service: str) -> None:
        self.service = service
        # linger: the orders due in one round go out as one batch per partition
        self.producer: AIOKafkaProducer = brokerlib.producer(broker, linger_ms=5)
        self.position = 0  # the service's own log: one position per message
        self.chains = PartitionChains()
        self.acked: Counter[tuple[str, int]] = Counter()  # (topic, partition) -> records
        self.failed = 0

    def message(self, payload: BaseModel, key: str) -> Send:
        name = type(payload).__name__
        spec = EVENTS[name]
        self.position += 1
        partition = partition_for(key.encode(), TOPICS[spec.topic].partitions)
        previous = self.chains.link(spec.topic, partition, self.position)
        envelope = spec.message_model()(
            event_id=uuid.uuid4(),
            event_type=name,
            schema_version=spec.version,
            occurred_at=datetime.now(UTC),
            producer=self.service,
            aggregate_id=key,
            aggregate_version=1,
            correlation_id=key,
            position=self.position,
            previous_position=previous,
            payload=payload,
        )
        return spec.topic, partition, key.encode(), envelope.model_dump_json().encode()

    async def send(self, message: Send) -> asyncio.Future[Any]:
        topic, partition, key, value = message
        future: asyncio.Future[Any] = await self.producer.send(
            topic, value, key=key, partition=partition
        )

        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                self.failed += 1
            else:
                self.acked[(topic, partition)] += 1

        future.add_done_callback(done)
        return future


@dataclass
class Sent:
    """One order as the player published it; times are `time.perf_counter()`."""

    due: float
    sent: float  # its OrderConfirmed handed to the producer
    phase: str
    acked: float = math.nan  # all four messages acknowledged
    ok: bool = False


@dataclass
class Upstream:
    """The order and inventory services, played: `await play(phases, t0)`."""

    broker: BrokerSettings
    seed: int = 8
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    orders: dict[str, Sent] = field(default_factory=dict)
    build_cpu_s: float = 0.0  # process CPU spent building and handing over messages
    rounds: int = 0
    max_pending: int = 0

    def __post_init__(self) -> None:
        self.order = ServiceProducer(self.broker, "order")
        self.inventory = ServiceProducer(self.broker, "inventory")
        self.rng = random.Random(self.seed)  # noqa: S311 - test data
        self._n = 0
        self._pending: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        await brokerlib.ensure_topics(self.broker, TOPICS)
        await self.order.producer.start()
        await self.inventory.producer.start()

    async def stop(self) -> None:
        for producer in (self.order, self.inventory):
            await producer.producer.stop()

    @property
    def failed(self) -> int:
        return self.order.failed + self.inventory.failed

    def acked_offsets(self) -> dict[tuple[str, int], int]:
        """Records acknowledged per (topic, partition): the end offsets of a fresh broker,
        where these producers are the only writers."""
        return dict(self.order.acked + self.inventory.acked)

    def one(self) -> tuple[str, list[Send], list[Send]]:
        """One confirmed order: its id, the order service's three messages, inventory's one."""
        self._n += 1
        customer = f"peak-{self.tag}-{self._n}"  # each order its own customer: no merges
        order = confirmed_order(self.rng, customer)
        order_side = [self.order.message(m, order.order_id) for m in order.order_side]
        return order.order_id, order_side, [self.inventory.message(order.reserved, order.order_id)]

    async def _publish(self, due: list[tuple[float, Phase]]) -> None:
        began = time.process_time()
        built = [(at, phase, *self.one()) for at, phase in due]
        for at, phase, order_id, order_side, inventory_side in built:
            futures = [await self.order.send(m) for m in order_side]
            sent = time.perf_counter()  # OrderConfirmed (the last of the three) handed over
            futures += [await self.inventory.send(m) for m in inventory_side]
            record = Sent(due=at, sent=sent, phase=phase.name)
            self.orders[order_id] = record
            waiter = asyncio.ensure_future(_acked(futures, record))
            self._pending.add(waiter)
            waiter.add_done_callback(self._pending.discard)
        self.build_cpu_s += time.process_time() - began
        self.max_pending = max(self.max_pending, len(self._pending))

    async def play(
        self,
        phases: list[Phase],
        t0: float,
        stop_at: Callable[[], float] = lambda: math.inf,
        min_round_s: float = 0.01,
    ) -> None:
        """Publish every order when it is due (`t0` + its time), all those due at once
        together, until the schedule ends or an order would be due at or after `stop_at()`
        (a `perf_counter` time); then wait for the last acknowledgements."""
        schedule = due_times(phases)
        upcoming = next(schedule, None)
        while upcoming is not None and t0 + upcoming[0] < stop_at():
            now = time.perf_counter()
            batch: list[tuple[float, Phase]] = []
            while upcoming is not None and t0 + upcoming[0] <= min(now, stop_at() - 1e-9):
                batch.append((t0 + upcoming[0], upcoming[1]))
                upcoming = next(schedule, None)
            if batch:
                await self._publish(batch)
                self.rounds += 1
            if upcoming is not None:
                wait = min(t0 + upcoming[0], stop_at()) - time.perf_counter()
                await asyncio.sleep(max(wait, min_round_s))
        await self.order.producer.flush()
        await self.inventory.producer.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def _acked(futures: list[asyncio.Future[Any]], record: Sent) -> None:
    results = await asyncio.gather(*futures, return_exceptions=True)
    record.acked = time.perf_counter()
    record.ok = not any(isinstance(r, BaseException) for r in results)
