"""Order use cases: each call loads, decides, and saves in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from shopfloor_runtime.clock import Clock
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.store import ServiceApplication

from order.domain import (
    OPEN,
    RETURN_REFUND,
    RISK,
    Fingerprint,
    IdempotencyConflict,
    IllegalTransition,
    InvalidOrder,
    Order,
    OrderNotFound,
    OrderRules,
    PaymentRefused,
    Placement,
    PlacementResult,
    Pricing,
    order_id_for_key,
    price,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryEntry:
    event_type: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class Dispatch:
    """What fulfilment says left the warehouse, as the order use cases need it."""

    shipment_id: str
    carrier: str
    tracking_number: str
    dispatched_at: datetime
    #: (order id, sku, qty) for every line of the shipment, whichever order it is for
    lines: tuple[tuple[str, str, int], ...]

    def lines_of(self, order_id: str) -> list[dict[str, Any]]:
        """One order's part of the shipment, a line per SKU."""
        qty: dict[str, int] = {}
        for owner, sku, n in self.lines:
            if owner == order_id:
                qty[sku] = qty.get(sku, 0) + n
        return [{"sku": sku, "qty": n} for sku, n in qty.items()]


@dataclass(frozen=True)
class PlacementRequest:
    placement: Placement
    pricing: Pricing
    idempotency_key: str | None

    @property
    def ids(self) -> list[UUID]:
        """The aggregates placing it may touch: the fingerprint, the keyed order."""
        keyed = [order_id_for_key(self.idempotency_key)] if self.idempotency_key else []
        return [self.placement.fingerprint(), *keyed]


class OrderApplication(ServiceApplication):
    name = "order"
    cache_size = 20_000  # orders and fingerprints

    def __init__(
        self,
        rules: OrderRules,
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
        describe: Callable[[Any], tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(env, clock)
        self.rules = rules
        self._describe = describe or (lambda e: (type(e).__name__, {}))

    # -- commands -------------------------------------------------------------------

    def place_order(self, placement: Placement, idempotency_key: str | None) -> PlacementResult:
        request = PlacementRequest(placement, price(placement, self.rules), idempotency_key)
        return self._place_one(request)

    def _place_one(self, request: PlacementRequest) -> PlacementResult:
        return self.retry(
            request.ids,
            lambda: self._place(request.placement, request.pricing, request.idempotency_key),
        )

    def place_orders(
        self, requests: Sequence[PlacementRequest]
    ) -> list[PlacementResult | Exception]:
        """Place many orders in one transaction (group commit for the API).

        The common case, a new order with a fingerprint and key this process has not
        seen, needs no read: the order and its fingerprint are saved as new, and if
        either exists after all (placed by another process, or before a restart) the
        save fails on its version and every request of the group is placed again on
        its own, carefully. Requests that may be repeats are placed on their own too."""
        now = self.clock.now()
        results: list[PlacementResult | Exception | None] = [None] * len(requests)
        batch: dict[UUID, Aggregate] = {}
        alone: list[int] = []
        for i, request in enumerate(requests):
            ids = request.ids
            if any(aggregate_id in batch or self._cached(aggregate_id) for aggregate_id in ids):
                alone.append(i)  # a repeat, or the same fingerprint twice in this group
                continue
            key = request.idempotency_key
            order_id = order_id_for_key(key) if key else uuid4()
            order = Order.place(request.placement, request.pricing, self.rules, now, order_id)
            batch[order.id] = order
            batch[ids[0]] = Fingerprint(ids[0], order.id, now)
            results[i] = PlacementResult(order)
        try:
            self.record(batch.values())
        except RecordConflictError:
            self.forget(batch)
            alone = list(range(len(requests)))
        for i in alone:
            try:
                results[i] = self._place_one(requests[i])
            except Exception as error:  # noqa: BLE001 - handed to that request's caller
                results[i] = error
        assert all(r is not None for r in results), "a request of the group was not placed"
        return cast(list[PlacementResult | Exception], results)

    def _cached(self, aggregate_id: UUID) -> bool:
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(aggregate_id)
        except KeyError:
            return False
        return True

    def _place(self, placement: Placement, pricing: Any, key: str | None) -> PlacementResult:
        now = self.clock.now()
        if key is not None:
            existing = self.find(order_id_for_key(key))
            if existing is not None:
                if existing.request_hash != placement.request_hash():
                    raise IdempotencyConflict(
                        f"Idempotency-Key {key!r} was already used for order {existing.id} "
                        "with a different request"
                    )
                return PlacementResult(  # as it is now, not as this process cached it
                    self.get_order(existing.id),
                    duplicate=True,
                    notes=["same Idempotency-Key: the first order"],
                )
        fingerprint = self.find(placement.fingerprint())
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
        def pay(order: Order) -> tuple[Order, PaymentRefused | None]:
            now, methods = self.clock.now(), self.rules.payment_methods
            return order, order.pay(amount, method, reference, now, methods)

        order, refusal = self._decide(order_id, pay)
        if refusal:
            raise refusal  # after the save: a refused payment is still recorded
        return order

    def cancel_order(self, order_id: UUID, reason: str, detail: str) -> Order:
        return self._change(order_id, lambda o: o.cancel(reason, detail, self.clock.now()))

    def refund_order(
        self, order_id: UUID, amount: Decimal, reason: str, reference: str | None
    ) -> Order:
        if reference and reference.startswith(RETURN_REFUND):
            raise InvalidOrder(
                "reference",
                f"references starting with {RETURN_REFUND!r} are the refunds of received returns",
            )
        refund_id = reference or str(uuid4())
        return self._change(order_id, lambda o: o.refund(refund_id, amount, reason))

    def fire_deadlines(self, due: list[UUID]) -> int:
        """Send reminders, cancel unpaid orders and complete delivered ones whose
        deadline has passed.

        Each order decides for itself (it knows if it was paid, reminded, cancelled or
        completed), so a deadline fires once however often this runs, in however many
        processes."""
        fired = 0
        for order_id in due:

            def fire(order: Order) -> bool:
                now = self.clock.now()
                return (
                    order.expire_payment(now)
                    or order.send_payment_reminder(now)
                    or order.complete(now)
                )

            try:
                fired += self._decide(order_id, fire)
            except OrderNotFound:
                continue
        return fired

    def _change(self, order_id: UUID, act: Callable[[Order], object]) -> Order:
        return self.change(order_id, act, kind=Order, missing=lambda: OrderNotFound(order_id))

    def _decide(self, order_id: UUID, act: Callable[[Order], T]) -> T:
        return self.decide(order_id, act, kind=Order, missing=lambda: OrderNotFound(order_id))

    # -- reactions to other services (policies.py calls these) ------------------------

    def pass_check(
        self, uow: UnitOfWork, order_id: str, check: str, caused_by: str, detail: dict[str, Any]
    ) -> None:
        """A checking service said yes; a paid order with every check passed confirms."""
        _in(uow, order_id).pass_check(check, caused_by, self.clock.now(), detail)

    def reject_reservation(
        self, uow: UnitOfWork, order_id: str, short_lines: list[dict[str, Any]], caused_by: str
    ) -> None:
        """Inventory could not hold every line: the order is cancelled (refunded if paid)."""
        _in(uow, order_id).reject_reservation(short_lines, caused_by, self.clock.now())

    def risk_assessed(
        self,
        uow: UnitOfWork,
        order_id: str,
        hold: bool,
        exception_id: str | None,
        reason: str,
        caused_by: str,
    ) -> None:
        """Risk's latest word on the order. A hold stops it (a confirmed one is pulled
        from fulfilment by `OrderHeld`); no hold passes the risk check, and ends a hold
        risk itself lifted on a new look (its serious reasons went away)."""
        order, now = _in(uow, order_id), self.clock.now()
        if hold and exception_id:
            order.hold(exception_id, reason, now, caused_by)
        elif order.held:
            order.release(order.held["exception_id"], "risk (assessed again)", now, caused_by)
        else:
            order.pass_check(RISK, caused_by, now, {"exception_id": exception_id})

    def release_hold(
        self, uow: UnitOfWork, order_id: str, exception_id: str, operator: str, caused_by: str
    ) -> None:
        """A risk operator released the order: it goes on (confirms once paid)."""
        _in(uow, order_id).release(exception_id, operator, self.clock.now(), caused_by)

    def risk_cancel(self, uow: UnitOfWork, order_id: str, detail: str, caused_by: str) -> None:
        """A risk operator cancelled the order: cancelled (refunded if paid), its stock
        freed by inventory. One already cancelled, or gone, stays as it is."""
        order = _in(uow, order_id)
        if order.status not in OPEN:
            log.warning("risk cancelled order %s, which is %s; it stays so", order_id, order.status)
            return
        order.cancel("operator", detail, self.clock.now(), caused_by=caused_by)

    def ship_order(
        self,
        uow: UnitOfWork,
        order_id: str,
        dispatch: Dispatch,
        caused_by: str,
    ) -> None:
        """Fulfilment dispatched the order. Shipped once: a repeat changes nothing; an
        order that cannot ship (cancelled, refunded, never confirmed) keeps its state and
        the dispatch is logged, since the parcel left anyway and someone must look."""
        order = _in(uow, order_id)
        lines = dispatch.lines_of(order_id)
        try:
            order.ship(
                dispatch.shipment_id,
                dispatch.carrier,
                dispatch.tracking_number,
                lines,
                dispatch.dispatched_at,
                caused_by,
            )
        except IllegalTransition as refused:
            log.warning("shipment %s: %s; the order stays as it is", dispatch.shipment_id, refused)

    def deliver_order(
        self, uow: UnitOfWork, order_id: str, shipment_id: str, at: datetime, caused_by: str
    ) -> None:
        """The carrier delivered the order: its return window starts (`Order.complete` ends it).

        A delivery for an order that never shipped is ignored with a warning, not kept
        for later: fulfilment keys every event of a shipment by its first order id, so
        its dispatch comes before its tracking on one partition, and the tracked consumer
        applies one producer's partition in order (a gap rewinds, never skips). So an
        order that is not shipped when its delivery arrives is one whose dispatch was
        refused (cancelled, refunded), and shipping it now would need the carrier and
        tracking number the delivery does not carry."""
        order = _in(uow, order_id)
        try:
            order.deliver(at, self.rules.return_window, caused_by)
        except IllegalTransition as refused:
            log.warning("shipment %s delivered: %s; the order stays as it is", shipment_id, refused)

    def refund_return(
        self, uow: UnitOfWork, order_id: str, return_id: str, amount: Decimal, caused_by: str
    ) -> None:
        """The service desk received a return and asks for `amount` back. This service is
        the authority on money: refunded once (`return:<return id>`) if it is no more than
        is left to refund, otherwise refused once and published (RefundRefused). The same
        return again, however it arrives, changes nothing (Order.refund_return)."""
        order = _in(uow, order_id)
        if order.refund_return(return_id, amount, caused_by) == "refused":
            log.warning(
                "return %s of order %s: a refund of %s is more than the %s left; refused",
                return_id,
                order_id,
                amount,
                order.paid_amount - order.refunded_total,
            )

    # -- queries ----------------------------------------------------------------------

    def get_order(self, order_id: UUID) -> Order:
        """The order as stored now, not as this process last cached it."""
        order = self.find(order_id, Order, fresh=True)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def order_history(self, order_id: UUID) -> list[HistoryEntry]:
        self.get_order(order_id)
        entries = []
        for domain_event in self.events.get(order_id):
            name, payload = self._describe(domain_event)
            entries.append(
                HistoryEntry(name, domain_event.originator_version, domain_event.timestamp, payload)
            )
        return entries


def _in(uow: UnitOfWork, order_id: str) -> Order:
    order = uow.get(UUID(order_id), Order)
    if order is None:
        raise OrderNotFound(order_id)
    return order
