"""The only reader of settings: builds the application, the relay, the consumer, the
read model, the deadline loop and the FastAPI app, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.groupcommit import GroupCommit, Stopped
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.service import background, messaging, service_http
from shopfloor_runtime.store import SqlStore, eventsourcing_env, schema_lock

from order import api, policies, translation
from order.application import OrderApplication, PlacementRequest
from order.domain import (
    Coupon,
    IdempotencyConflict,
    IllegalTransition,
    InvalidOrder,
    OrderNotFound,
    OrderRules,
    PaymentConflict,
    PaymentRefused,
    PlacementResult,
)
from order.privacy import AddressFingerprints, address_key
from order.projection import OrderQueries, projector
from order.settings import Settings

SERVICE = "order"
DESCRIPTION = (
    "Places, pays, confirms, cancels and refunds orders. "
    "Publishes orders.v1; consumes inventory.v1."
)
log = logging.getLogger(__name__)


def rules_from(settings: Settings) -> OrderRules:
    r = settings.rules
    return OrderRules(
        channels=frozenset(r.channels),
        payment_methods=frozenset(r.payment_methods),
        coupons={
            code.upper(): Coupon(c.percent_off, c.amount_off, c.min_subtotal, frozenset(c.channels))
            for code, c in r.coupons.items()
        },
        required_checks=tuple(r.required_checks),
        payment_reminder_after=timedelta(seconds=r.payment_reminder_after_s),
        payment_timeout=timedelta(seconds=r.payment_timeout_s),
        duplicate_window=timedelta(seconds=r.duplicate_window_s),
    )


ERRORS: dict[type[Exception], int] = {
    InvalidOrder: 422,
    PaymentRefused: 422,
    PaymentConflict: 409,
    OrderNotFound: 404,
    IllegalTransition: 409,
    IdempotencyConflict: 409,
    Stopped: 503,
}


@dataclass
class OrderService:
    settings: Settings
    clock: Clock
    app: OrderApplication
    sql: SqlStore
    projector: Projector
    queries: OrderQueries
    relay: OutboxRelay
    consumer: TrackedConsumer
    placer: GroupCommit[PlacementRequest, PlacementResult]
    http: FastAPI = field(init=False)

    def tick_deadlines(self) -> int:
        """Fire every payment reminder and timeout that is due now."""
        return self.app.fire_deadlines(self.queries.due_deadlines(self.clock.now()))

    async def _deadlines(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.to_thread(self.tick_deadlines)
            except Exception as error:  # noqa: BLE001 - tried again next tick
                log.warning("deadline tick failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.deadline_tick_s)

    def running(self) -> AbstractAsyncContextManager[None]:
        """Background work beside the API: read model, deadlines, relay, consumer."""
        settings = self.settings
        return background(
            [
                self.projector.run,
                self._deadlines,
                *([self.relay.run] if settings.relay.enabled else []),
                *([self.consumer.run] if settings.consumer.enabled else []),
            ]
        )

    @property
    def projectors(self) -> list[Projector]:
        return [self.projector]

    def close(self) -> None:
        self.placer.stop()
        self.app.close()
        self.sql.close()


def build(settings: Settings | None = None, clock: Clock | None = None) -> OrderService:
    settings = settings or Settings()
    with schema_lock(settings.store):
        return _assemble(settings, clock)


def _assemble(settings: Settings, clock: Clock | None) -> OrderService:
    clock = clock or SystemClock()
    env = eventsourcing_env(settings.store, SERVICE)
    sql = SqlStore(settings.store, SERVICE)
    translate = translation.Translation(AddressFingerprints(address_key(settings.privacy, sql)))
    app = OrderApplication(rules_from(settings), clock, env, translate.describe)
    relay, consumer = messaging(
        SERVICE,
        app,
        sql,
        settings,
        translate.to_outbound,
        [INVENTORY.name],
        policies.handlers(app),
    )
    placer = GroupCommit(SERVICE, "place_orders", app.place_orders)
    service = OrderService(
        settings, clock, app, sql, projector(app, sql), OrderQueries(sql), relay, consumer, placer
    )
    service.http = _http(service)
    return service


def _http(service: OrderService) -> FastAPI:
    return service_http(
        name=SERVICE,
        app=service.app,
        broker=service.settings.broker,
        router=api.router(service.app.rules),
        errors=ERRORS,
        running=service.running,
        state={"orders": service.app, "queries": service.queries, "placer": service.placer},
        description=DESCRIPTION,
    )


SPEC = ServiceSpec(
    name=SERVICE,
    package="order",
    settings=Settings,
    build=build,
    description=DESCRIPTION,
)
