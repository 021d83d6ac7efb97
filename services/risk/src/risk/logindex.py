"""Which blacklist entries are active, and which customers risk knows, without a query
per assessment: every assessment asks about the order's customer, address and device,
and an aggregate that does not exist is not in the aggregate cache, so asking the store
cost three queries per order for the blacklist (measured: over half of the consumer's
time) and one per order of a new customer. The index tails the store's own notification
log for blacklist events and customers' first events instead, once per unit of work (one
poll, one command): two queries, and it sees what any process of the service wrote."""

from __future__ import annotations

import threading
import weakref
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.store import ServiceApplication

from risk.domain import BlacklistEntry, Customer

# by name: mypy cannot see the event classes eventsourcing's @event makes
EVENTS = {name: getattr(BlacklistEntry, name) for name in ("Added", "Readded", "Removed")}
REGISTERED = Customer.Registered  # type: ignore[attr-defined]
TOPICS = [get_topic(kind) for kind in (*EVENTS.values(), REGISTERED)]
PAGE = 1000


class LogIndex:
    """(kind, value) -> reason of every active entry, and the ids of the customers in
    the store, as of the log's end when the current unit of work first asked. The log
    keeps commit order (the recorder locks the table per write), so nothing below the end
    read is ever added later."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        self._active: dict[tuple[str, str], str] = {}
        self._customers: set[UUID] = set()
        self._read_to = 0  # notification id
        self._lock = threading.Lock()
        self._fresh_for: weakref.ref[UnitOfWork] | None = None

    def reason(self, uow: UnitOfWork, kind: str, value: str) -> str | None:
        with self._lock:
            self._fresh(uow)
            return self._active.get((kind, value))

    def customer_known(self, uow: UnitOfWork, customer: UUID) -> bool:
        """Whether the customer's aggregate was in the store when this unit of work
        first asked. One saved since by another process is not known: its save then
        fails on its version and the careful retry loads it (`UnitOfWork.get_new`)."""
        with self._lock:
            self._fresh(uow)
            return customer in self._customers

    def _fresh(self, uow: UnitOfWork) -> None:
        if self._fresh_for is None or self._fresh_for() is not uow:
            self._catch_up()
            self._fresh_for = weakref.ref(uow)

    def _catch_up(self) -> None:
        recorder: Any = self.app.recorder
        end = recorder.max_notification_id() or 0
        while self._read_to < end:
            found = recorder.select_notifications(
                start=self._read_to, limit=PAGE, stop=end, topics=TOPICS, inclusive_of_start=False
            )
            for notification in found:
                self._apply(self.app.domain_event(notification))
            if len(found) < PAGE:
                break
            self._read_to = found[-1].id
        self._read_to = end

    def _apply(self, e: Any) -> None:
        if isinstance(e, REGISTERED):
            self._customers.add(e.originator_id)
        elif isinstance(e, EVENTS["Removed"]):
            self._active.pop((e.kind, e.value), None)
        else:
            self._active[(e.kind, e.value)] = e.reason
