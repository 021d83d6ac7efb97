"""Fixtures for the inventory service's tests: an order feed that delivers `orders.v1`,
`fulfilment.v1` and `service-desk.v1` events to inventory's handlers the way the tracked
consumer does,
the application on the in-memory store, and the service. Clock, ids, stores and the
client come from shopfloor_runtime.testing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from inventory.application import InventoryApplication
from inventory.bootstrap import InventoryService
from inventory.policies import handlers
from pydantic import BaseModel
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import (
    ShipmentAllocated,
    ShipmentDispatched,
    ShipmentLine,
    WarehouseCandidate,
)
from shopfloor_contracts.orders import Destination, OrderCancelled, OrderLine, OrderPlaced
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.service_desk import ReceivedLine, ReturnReceived
from shopfloor_contracts.topics import TOPICS
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.testing import MakeService, apply_inbound, fresh, inbound

Fresh = Callable[[str], str]
Lines = dict[str, int]


class OrderFeed:
    """Builds `orders.v1` and `fulfilment.v1` payloads and applies them to inventory's
    handlers: one unit of work per message, then one `record`, as the tracked consumer
    does (each producer's messages numbered in a chain of their own)."""

    def __init__(self, app: InventoryApplication) -> None:
        self.app = app
        self.handlers = by_event_type(handlers(app))
        self._positions: Counter[str] = Counter()
        self.customers: dict[str, str] = {}  # order id -> customer id

    # -- payloads ---------------------------------------------------------------------

    def placed(
        self, lines: Lines | list[tuple[str, int]], customer_id: str | None = None
    ) -> OrderPlaced:
        pairs = list(lines.items()) if isinstance(lines, dict) else list(lines)
        now = self.app.clock.now()
        order_id = fresh("order")
        customer_id = customer_id or fresh("customer")
        self.customers[order_id] = customer_id
        total = Decimal("10.00") * sum(qty for _, qty in pairs)
        return OrderPlaced(
            order_id=order_id,
            customer_id=customer_id,
            channel="shop",
            lines=[OrderLine(sku=sku, qty=qty, unit_price=Decimal("10.00")) for sku, qty in pairs],
            currency="EUR",
            subtotal=total,
            discount=Decimal("0.00"),
            total=total,
            payment_method="card",
            destination=Destination(
                country="DE", postal_prefix="10", region="DE-1", address_fingerprint="f" * 64
            ),
            placed_at=now,
            payment_reminder_at=now + timedelta(minutes=15),
            payment_due_at=now + timedelta(minutes=30),
            required_checks=["inventory"],
        )

    @staticmethod
    def cancelled(order_id: str, reason: str = "customer") -> OrderCancelled:
        return OrderCancelled(
            order_id=order_id,
            reason=reason,  # type: ignore[arg-type]
            detail="changed my mind",
            paid_amount=Decimal("0.00"),
        )

    def dispatched(
        self, order_lines: dict[str, Lines], warehouse: str = "berlin"
    ) -> ShipmentDispatched:
        """One shipment leaving `warehouse` with each order's lines (order id -> lines)."""
        now = self.app.clock.now()
        return ShipmentDispatched(
            shipment_id=fresh("shipment"),
            order_ids=list(order_lines),
            warehouse=warehouse,
            carrier="dhl",
            service="parcel",
            tracking_number=fresh("T"),
            lines=[
                ShipmentLine(order_id=order_id, sku=sku, qty=qty)
                for order_id, lines in order_lines.items()
                for sku, qty in lines.items()
            ],
            promised_by=now + timedelta(days=3),
            dispatched_at=now,
        )

    def allocated(
        self, order_id: str, warehouse: str, shipment_id: str | None = None
    ) -> ShipmentAllocated:
        """Fulfilment's choice of `warehouse` for the order's shipment."""
        now = self.app.clock.now()
        return ShipmentAllocated(
            shipment_id=shipment_id or fresh("shipment"),
            order_id=order_id,
            order_ids=[order_id],
            customer_id=self.customers.get(order_id, "customer"),
            warehouse=warehouse,
            zone="A",
            carrier="dhl",
            service="parcel",
            service_level="standard",
            promised_by=now + timedelta(days=3),
            lines=[],
            weight_grams=500,
            declared_value=Decimal("10.00"),
            warehouses=[WarehouseCandidate(warehouse=warehouse, rank=1, chosen=True)],
            carriers=[],
            allocated_at=now,
        )

    def returned(self, order_id: str, *lines: ReceivedLine, refund: str = "0.00") -> ReturnReceived:
        """The service desk's word that the warehouse received a return of the order."""
        return ReturnReceived(
            return_id=fresh("return"),
            ticket_id=fresh("ticket"),
            order_id=order_id,
            lines=list(lines),
            refund_amount=Decimal(refund),
            received_at=self.app.clock.now(),
        )

    # -- delivering ---------------------------------------------------------------------

    def envelope(self, payload: BaseModel) -> InboundEnvelope:
        producer = TOPICS[EVENTS[type(payload).__name__].topic].producer
        self._positions[producer] += 1
        return inbound(payload, producer, self._positions[producer], self.app.clock.now())

    def apply(self, payload: BaseModel, uow: UnitOfWork) -> InboundEnvelope:
        """Run the handler into `uow` without saving it."""
        envelope = self.envelope(payload)
        self.handlers[envelope.event_type](envelope, payload, uow)
        return envelope

    def deliver(self, payload: BaseModel) -> InboundEnvelope:
        """As the tracked consumer does: a first try, and on a write conflict a careful
        retry on fresh state (which looks for aggregates a first try assumes are new)."""
        envelope = self.envelope(payload)
        apply_inbound(self.app, self.handlers, envelope, payload)
        return envelope

    # -- shortcuts ----------------------------------------------------------------------

    def place(self, lines: Lines | list[tuple[str, int]], customer_id: str | None = None) -> str:
        payload = self.placed(lines, customer_id)
        self.deliver(payload)
        return payload.order_id

    def cancel(self, order_id: str) -> None:
        self.deliver(self.cancelled(order_id))

    def ship(self, order_id: str, lines: Lines, warehouse: str = "berlin") -> None:
        """Fulfilment dispatches the order on its own shipment."""
        self.deliver(self.dispatched({order_id: lines}, warehouse))

    def allocate(self, order_id: str, warehouse: str) -> InboundEnvelope:
        return self.deliver(self.allocated(order_id, warehouse))


@pytest.fixture
def new_id() -> Fresh:
    return fresh


@pytest.fixture
def feed_for() -> Callable[[InventoryApplication], OrderFeed]:
    return OrderFeed


@pytest.fixture
def memory_app(clock: ManualClock) -> Iterator[InventoryApplication]:
    """The application on eventsourcing's in-memory store."""
    app = InventoryApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock)
    yield app
    app.close()


@pytest.fixture
def service(make_service: MakeService) -> InventoryService:
    return make_service(InventoryService)  # type: ignore[no-any-return]


@pytest.fixture
def feed(service: InventoryService) -> OrderFeed:
    return OrderFeed(service.app)
