"""Order use cases: each call loads, decides, and saves in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import RecordConflictError
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.store import ServiceApplication

from order.domain import (
    Fingerprint,
    IdempotencyConflict,
    Order,
    OrderNotFound,
    OrderRules,
    Placement,
    PlacementResult,
    order_id_for_key,
    price,
)

T = TypeVar("T")


@dataclass(frozen=True)
class HistoryEntry:
    event_type: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]


class OrderApplication(ServiceApplication):
    name = "order"

    def __init__(
        self,
        rules: OrderRules,
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
        describe: Callable[[Any], tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(env)
        self.rules, self.clock = rules, clock or SystemClock()
        self._describe = describe or (lambda e: (type(e).__name__, {}))

    # -- commands -------------------------------------------------------------------

    def place_order(self, placement: Placement, idempotency_key: str | None) -> PlacementResult:
        pricing = price(placement, self.rules)
        return _retry(lambda: self._place(placement, pricing, idempotency_key))

    def _place(self, placement: Placement, pricing: Any, key: str | None) -> PlacementResult:
        now = self.clock.now()
        if key is not None:
            existing = self._find(order_id_for_key(key))
            if existing is not None:
                if existing.request_hash != placement.request_hash():
                    raise IdempotencyConflict(
                        f"Idempotency-Key {key!r} was already used for order {existing.id} "
                        "with a different request"
                    )
                return PlacementResult(
                    existing, duplicate=True, notes=["same Idempotency-Key: the first order"]
                )
        fingerprint = self._find(placement.fingerprint())
        if key is None and fingerprint and fingerprint.within(now, self.rules.duplicate_window):
            first = self.get_order(fingerprint.order_id)
            return PlacementResult(
                first,
                duplicate=True,
                notes=[
                    "same customer, lines and address within "
                    f"{self.rules.duplicate_window.total_seconds():.0f}s: the first order"
                ],
            )
        order_id = order_id_for_key(key) if key else uuid4()
        order = Order.place(placement, pricing, self.rules, now, order_id)
        if fingerprint is None:
            fingerprint = Fingerprint(placement.fingerprint(), order.id, now)
        else:
            fingerprint.record(order.id, now)
        self.save(order, fingerprint)
        return PlacementResult(order)

    def pay_order(self, order_id: UUID, amount: Decimal, method: str, reference: str) -> Order:
        def pay() -> Order:
            order = self.get_order(order_id)
            refusal = order.pay(
                amount, method, reference, self.clock.now(), self.rules.payment_methods
            )
            self.save(order)
            if refusal:
                raise refusal
            return order

        return _retry(pay)

    def cancel_order(self, order_id: UUID, reason: str, detail: str) -> Order:
        return self._change(order_id, lambda o: o.cancel(reason, detail, self.clock.now()))

    def refund_order(
        self, order_id: UUID, amount: Decimal, reason: str, reference: str | None
    ) -> Order:
        refund_id = reference or str(uuid4())
        return self._change(order_id, lambda o: o.refund(refund_id, amount, reason))

    def ship_order(self, order_id: UUID, carrier: str, tracking_number: str) -> Order:
        return self._change(order_id, lambda o: o.ship(carrier, tracking_number, self.clock.now()))

    def fire_deadlines(self, due: list[UUID]) -> int:
        """Send reminders and cancel unpaid orders whose deadline has passed.

        Each order decides for itself (it knows if it was paid, reminded or cancelled),
        so a deadline fires once however often this runs, in however many processes."""
        fired = 0
        for order_id in due:

            def fire(order: Order) -> bool:
                now = self.clock.now()
                return order.expire_payment(now) or order.send_payment_reminder(now)

            try:
                fired += bool(self._change(order_id, fire, returns_order=False))
            except OrderNotFound:
                continue
        return fired

    def _change(
        self, order_id: UUID, action: Callable[[Order], Any], returns_order: bool = True
    ) -> Any:
        def attempt() -> Any:
            order = self.get_order(order_id)
            result = action(order)
            self.save(order)
            return order if returns_order else result

        return _retry(attempt)

    # -- queries ----------------------------------------------------------------------

    def get_order(self, order_id: UUID) -> Order:
        order = self._find(order_id)
        if not isinstance(order, Order):
            raise OrderNotFound(order_id)
        return order

    def _find(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def order_history(self, order_id: UUID) -> list[HistoryEntry]:
        self.get_order(order_id)
        entries = []
        for domain_event in self.events.get(order_id):
            name, payload = self._describe(domain_event)
            entries.append(
                HistoryEntry(name, domain_event.originator_version, domain_event.timestamp, payload)
            )
        return entries


def _retry(attempt: Callable[[], T], attempts: int = 8) -> T:
    """Optimistic concurrency: on a version conflict, load again and decide again."""
    for _ in range(attempts - 1):
        try:
            return attempt()
        except RecordConflictError:
            continue
    return attempt()
