"""Recorded traffic for tests and benchmarks: a realistic event mix for N orders, as the
services' relays would publish it (contract-valid envelopes, each topic's positions
chained per partition, every key on its murmur2 partition), in event-time order.

Per order, about 11 events: OrderPlaced, StockReserved (which analytics skips),
OrderAssessed (some flagged), OrderPaid, OrderConfirmed, an ItemPicked per line (in waves
of ten orders; some scans refused first, some scans filling two pick-list lines),
ShipmentPacked (some flagged at the pack check first), ShipmentDispatched, OrderShipped,
OrderDelivered; some orders are cancelled instead, some refunded after a return, some
open a ticket; every SKU has a stock receipt with a unit cost."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel
from shopfloor_contracts.fulfilment import (
    ItemPicked,
    ScanRefused,
    ShipmentDispatched,
    ShipmentFlagged,
    ShipmentLine,
    ShipmentPacked,
)
from shopfloor_contracts.inventory import ReservedLine, StockReceived, StockReserved
from shopfloor_contracts.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    RefundIssued,
    ShippedLine,
)
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.risk import OrderAssessed, Reason
from shopfloor_contracts.service_desk import (
    TicketAnswered,
    TicketOpened,
    TicketRated,
    TicketResolved,
)
from shopfloor_contracts.topics import ORDERS, TOPICS
from shopfloor_runtime.chain import partition_for

from analytics.alerts import AlertBook
from analytics.api import View
from analytics.entities import State
from analytics.figures import Figures
from analytics.processing import Processor
from analytics.rules import AnalyticsRules

NAMESPACE = UUID("6f1c3a52-8d0e-4f4b-9a57-0d6c1b2e7a10")
Message = tuple[str, bytes, bytes]  # topic, key, value

CHANNELS = ("shop", "shop", "shop", "marketplace")
CARRIERS = ("DHL", "DPD")
WAREHOUSES = ("WH-BER", "WH-MUC")


@dataclass
class Recorder:
    """Envelopes as the producing services' relays write them: positions are given in
    event-time order, so each partition's positions ascend with its offsets."""

    events: list[tuple[datetime, int, str, BaseModel, str]] = field(default_factory=list)

    def emit(self, key: str, payload: BaseModel, at: datetime, producer: str) -> None:
        self.events.append((at, len(self.events), key, payload, producer))

    def messages(self) -> list[Message]:
        positions: dict[str, int] = {}  # producer -> last position
        chains: dict[tuple[str, int], int] = {}
        out: list[Message] = []
        for at, _, key, payload, producer in sorted(self.events, key=lambda e: (e[0], e[1])):
            spec = EVENTS[type(payload).__name__]
            topic = spec.topic
            partition = partition_for(key.encode(), TOPICS[topic].partitions)
            positions[producer] = position = positions.get(producer, 0) + 1
            previous = chains.get((topic, partition), 0)
            chains[(topic, partition)] = position
            message = spec.message_model()(
                event_id=uuid5(NAMESPACE, f"{producer}:{position}"),
                event_type=spec.event_type,
                schema_version=spec.version,
                occurred_at=at,
                producer=producer,
                aggregate_id=key,
                aggregate_version=1,
                correlation_id=key,
                position=position,
                previous_position=previous,
                payload=payload,
            )
            out.append((topic, key.encode(), message.model_dump_json().encode()))
        return out


def traffic(
    orders: int, start: datetime, seed: int = 7, skus: int = 40, spacing_s: float = 2.0
) -> list[Message]:
    """`orders` orders placed one per `spacing_s` of event time from `start`, and what
    follows."""
    rnd = random.Random(seed)
    rec = Recorder()
    catalogue = [f"SKU-{i:03d}" for i in range(skus)]
    prices = {sku: Decimal(rnd.randrange(500, 9000)) / 100 for sku in catalogue}
    for i, sku in enumerate(catalogue):
        at = start - timedelta(hours=1, seconds=i)
        cost = (prices[sku] * Decimal("0.55")).quantize(Decimal("0.01"))
        rec.emit(
            sku,
            StockReceived(
                sku=sku,
                warehouse=WAREHOUSES[i % 2],
                qty=10_000,
                on_hand=10_000,
                received_at=at,
                unit_cost=cost,
            ),
            at,
            "inventory",
        )
    customers = [f"cust-{n:05d}" for n in range(max(1, orders // 3))]
    for n in range(orders):
        placed = start + timedelta(seconds=spacing_s * n)
        _order(rec, rnd, n, placed, customers, catalogue, prices)
    return rec.messages()


def _order(
    rec: Recorder,
    rnd: random.Random,
    n: int,
    placed_at: datetime,
    customers: list[str],
    catalogue: list[str],
    prices: dict[str, Decimal],
) -> None:
    order_id = f"order-{n:07d}"
    customer = rnd.choice(customers)
    lines = [
        OrderLine(sku=sku, qty=rnd.randint(1, 3), unit_price=prices[sku])
        for sku in rnd.sample(catalogue, rnd.randint(1, 3))
    ]
    subtotal = sum((li.unit_price * li.qty for li in lines), Decimal(0))
    discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01")) if n % 5 == 0 else Decimal(0)
    total = subtotal - discount
    rec.emit(
        order_id,
        OrderPlaced(
            order_id=order_id,
            customer_id=customer,
            channel=rnd.choice(CHANNELS),
            lines=lines,
            currency="EUR",
            subtotal=subtotal,
            discount=discount,
            total=total,
            payment_method="card",
            placed_at=placed_at,
            payment_reminder_at=placed_at + timedelta(minutes=15),
            payment_due_at=placed_at + timedelta(minutes=30),
            required_checks=["inventory", "risk"],
        ),
        placed_at,
        "order",
    )
    t = placed_at + timedelta(milliseconds=rnd.randint(20, 200))
    rec.emit(
        order_id,
        StockReserved(
            order_id=order_id,
            reservation_id=f"res-{order_id}",
            lines=[ReservedLine(sku=li.sku, qty=li.qty, warehouse="WH-BER") for li in lines],
        ),
        t,
        "inventory",
    )
    flagged = n % 17 == 0
    t += timedelta(milliseconds=rnd.randint(20, 300))
    rec.emit(
        order_id,
        OrderAssessed(
            order_id=order_id,
            customer_id=customer,
            assessment=1,
            outcome="flagged" if flagged else "cleared",
            level="ordinary" if flagged else None,
            hold=False,
            queue="front_line" if flagged else None,
            # every other flagged order trips two rules: it still counts as one exception
            reasons=[
                Reason(rule=rule, level="ordinary", detail=rule, inputs={})
                for rule in ("order.large", "address.postcode")[: 2 if n % 34 == 0 else 1]
            ]
            if flagged
            else [],
            assessed_at=t,
        ),
        t,
        "risk",
    )
    if n % 11 == 3:  # never paid
        cancelled_at = placed_at + timedelta(minutes=30)
        rec.emit(
            order_id,
            OrderCancelled(
                order_id=order_id,
                reason="payment_timeout",
                detail="not paid in 30 min",
                paid_amount=Decimal(0),
            ),
            cancelled_at,
            "order",
        )
        return
    paid_at = placed_at + timedelta(seconds=rnd.randint(5, 600))
    rec.emit(
        order_id,
        OrderPaid(
            order_id=order_id,
            amount=total,
            method="card",
            reference=f"pay-{order_id}",
            paid_at=paid_at,
        ),
        paid_at,
        "order",
    )
    rec.emit(
        order_id,
        OrderConfirmed(order_id=order_id, checks=["inventory", "risk"], confirmed_at=paid_at),
        paid_at + timedelta(milliseconds=50),
        "order",
    )
    shipped_at = paid_at + timedelta(hours=rnd.uniform(2, 30))
    promised = paid_at + timedelta(hours=24)
    carrier = rnd.choice(CARRIERS)
    shipment_id = f"ship-{order_id}"
    warehouse = rnd.choice(WAREHOUSES)
    _pick(rec, n, order_id, shipment_id, warehouse, lines, shipped_at - timedelta(hours=1))
    _pack(rec, n, order_id, shipment_id, lines, shipped_at - timedelta(minutes=10))
    rec.emit(
        order_id,
        ShipmentDispatched(
            shipment_id=shipment_id,
            order_ids=[order_id],
            warehouse=warehouse,
            carrier=carrier,
            service="standard",
            tracking_number=f"TRK{n:08d}",
            lines=[ShipmentLine(order_id=order_id, sku=li.sku, qty=li.qty) for li in lines],
            promised_by=promised,
            dispatched_at=shipped_at,
        ),
        shipped_at,
        "fulfilment",
    )
    rec.emit(
        order_id,
        OrderShipped(
            order_id=order_id,
            carrier=carrier,
            tracking_number=f"TRK{n:08d}",
            lines=[ShippedLine(sku=li.sku, qty=li.qty) for li in lines],
            shipped_at=shipped_at,
        ),
        shipped_at + timedelta(milliseconds=80),
        "order",
    )
    delivered_at = shipped_at + timedelta(hours=rnd.uniform(12, 72))
    rec.emit(
        order_id,
        OrderDelivered(
            order_id=order_id,
            delivered_at=delivered_at,
            completes_at=delivered_at + timedelta(days=7),
        ),
        delivered_at,
        "order",
    )
    if n % 13 == 5:
        ticket = f"ticket-{order_id}"
        opened = delivered_at + timedelta(hours=3)
        rec.emit(ticket, _ticket(ticket, customer, order_id, opened), opened, "service-desk")
        answered = opened + timedelta(minutes=rnd.uniform(5, 300))
        rec.emit(
            ticket,
            TicketAnswered(
                ticket_id=ticket,
                agent="agent-1",
                first_response_s=(answered - opened).total_seconds(),
                breached=answered - opened > timedelta(hours=4),
                answered_at=answered,
            ),
            answered,
            "service-desk",
        )
        resolved = answered + timedelta(hours=rnd.uniform(1, 20))
        rec.emit(
            ticket,
            TicketResolved(
                ticket_id=ticket,
                resolved_by="agent-1",
                resolution_s=(resolved - opened).total_seconds(),
                breached=False,
                resolved_at=resolved,
            ),
            resolved,
            "service-desk",
        )
        if n % 2:  # every other customer rates the ticket
            rated = resolved + timedelta(hours=1)
            score = 1 + n % 5
            rec.emit(
                ticket,
                TicketRated(ticket_id=ticket, score=score, rated_at=rated),
                rated,
                "service-desk",
            )
        refunded = lines[0].unit_price
        rec.emit(
            order_id,
            RefundIssued(
                order_id=order_id,
                refund_id=f"return:{ticket}",
                amount=refunded,
                reason="return",
                refunded_total=refunded,
                fully_refunded=refunded == total,
            ),
            resolved + timedelta(minutes=1),
            "order",
        )


def _pick(
    rec: Recorder,
    n: int,
    order_id: str,
    shipment_id: str,
    warehouse: str,
    lines: list[OrderLine],
    at: datetime,
) -> None:
    """One scan per line, 20 s apart, in the order's wave (ten orders a wave, keyed by
    wave id as fulfilment publishes picks). About one scan in 31 names the wrong bin
    first and is refused (the dev stack's pickers: 3 %); every 9th order's last line (of
    2 or more units) is one scan that fulfilment publishes as two ItemPicked, as it does
    for a scan that fills two pick-list lines: the same picker, bin, SKU and time, one
    after the other."""
    wave = f"wave-{warehouse}-{n // 10:05d}"
    picker = f"picker-{n // 10 % 4 + 1:02d}"
    for i, li in enumerate(lines):
        at += timedelta(seconds=20)
        number = int(li.sku.removeprefix("SKU-"))
        bin_code = f"B-{number % 5 + 1:02d}-{number % 7 + 1}"
        if (3 * n + i) % 31 == 2:
            refused = ScanRefused(
                wave_id=wave,
                warehouse=warehouse,
                picker=picker,
                bin="B-09-9",
                sku=li.sku,
                qty=li.qty,
                reason=f"bin B-09-9 does not hold {li.sku} for this wave (its bin: {bin_code})",
                refused_at=at,
            )
            rec.emit(wave, refused, at, "fulfilment")
            at += timedelta(seconds=5)
        split = i == len(lines) - 1 and n % 9 == 4 and li.qty > 1
        for qty in (1, li.qty - 1) if split else (li.qty,):
            picked = ItemPicked(
                wave_id=wave,
                shipment_id=shipment_id,
                order_id=order_id,
                picker=picker,
                bin=bin_code,
                sku=li.sku,
                qty=qty,
                picked_at=at,
            )
            rec.emit(wave, picked, at, "fulfilment")


def _pack(
    rec: Recorder, n: int, order_id: str, shipment_id: str, lines: list[OrderLine], at: datetime
) -> None:
    """The pack check, then packed; every 47th shipment fails it first (flagged: a wrong
    weight, or every other time a missing item) and passes 3 minutes later."""
    expected = 500 * sum(li.qty for li in lines)
    if n % 47 == 7:
        missing = n % 94 == 7
        flagged = ShipmentFlagged(
            shipment_id=shipment_id,
            order_ids=[order_id],
            reason=f"rescan does not match: missing 1x {lines[0].sku}"
            if missing
            else f"weight {expected * 13 // 10} g is outside 5% of the expected {expected} g",
            expected_grams=expected,
            measured_grams=expected - 500 if missing else expected * 13 // 10,
            missing=[ShipmentLine(order_id=order_id, sku=lines[0].sku, qty=1)] if missing else [],
            at=at,
        )
        rec.emit(order_id, flagged, at, "fulfilment")
        at += timedelta(minutes=3)
    packed = ShipmentPacked(
        shipment_id=shipment_id, order_ids=[order_id], weight_grams=expected, packed_at=at
    )
    rec.emit(order_id, packed, at, "fulfilment")


def _ticket(ticket: str, customer: str, order_id: str, opened: datetime) -> TicketOpened:
    return TicketOpened(
        ticket_id=ticket,
        channel="email",
        type="return",
        customer_id=customer,
        order_id=order_id,
        tier="returning",
        level="ordinary",
        queue="returns",
        first_response_due=opened + timedelta(hours=4),
        resolution_due=opened + timedelta(days=2),
        opened_at=opened,
    )


def by_topic(messages: list[Message]) -> Iterator[tuple[str, list[Message]]]:
    topics: dict[str, list[Message]] = {}
    for m in messages:
        topics.setdefault(m[0], []).append(m)
    yield from topics.items()


def expected_orders(messages: list[Message]) -> int:
    return sum(1 for _, _, v in messages if b'"event_type":"OrderPlaced"' in v)


def recorded_view(messages: list[Message], alerts: Sequence[dict[str, Any]] = ()) -> View:
    """What the API reads, built from recorded traffic without a worker or a broker
    (the API tests, the browser test, the dev stack's probe test): the figures of
    `messages` applied in one go, and an alert book holding `alerts` (AlertRaised
    payloads)."""
    table: dict[str, State] = {}
    processor = Processor(table, Figures())
    processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(messages))
    book = AlertBook()
    for alert in alerts:
        book.apply("AlertRaised", alert)

    async def ready() -> bool:
        return True

    return View(
        figures=processor.figures,
        progress=lambda: processor.progress,
        rules=AnalyticsRules,
        status=lambda: {
            "partitions": list(range(ORDERS.partitions)),
            "entities": len(table),
        },
        ready=ready,
        alerts=lambda: book,
    )
