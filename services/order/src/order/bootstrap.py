"""The only reader of settings: builds the application, the relay, the consumer, the
read model, the deadline loop and the FastAPI app, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.store import SqlStore, eventsourcing_env, schema_lock
from shopfloor_runtime.web import install_error_handlers, ops_router

from order import api, policies, translation
from order.application import OrderApplication
from order.domain import (
    Coupon,
    IdempotencyConflict,
    IllegalTransition,
    InvalidOrder,
    OrderNotFound,
    OrderRules,
    PaymentConflict,
    PaymentRefused,
)
from order.projection import OrderQueries, projector
from order.settings import Settings

SERVICE = "order"
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

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work beside the API: read model, deadlines, relay, consumer."""
        stopping = asyncio.Event()
        # relay, projector, consumer and deadlines each use worker threads; the default
        # pool (cores + 4) is too small for them on a 2-core machine
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        tasks = [
            asyncio.create_task(self.projector.run(stopping)),
            asyncio.create_task(self._deadlines(stopping)),
        ]
        if self.settings.relay.enabled:
            tasks.append(asyncio.create_task(self.relay.run(stopping)))
        if self.settings.consumer.enabled:
            tasks.append(asyncio.create_task(self.consumer.run(stopping)))
        try:
            yield
        finally:
            stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def projectors(self) -> list[Projector]:
        return [self.projector]

    def close(self) -> None:
        self.app.close()
        self.sql.close()


def build(settings: Settings | None = None, clock: Clock | None = None) -> OrderService:
    settings = settings or Settings()
    with schema_lock(settings.store):
        return _assemble(settings, clock)


def _assemble(settings: Settings, clock: Clock | None) -> OrderService:
    clock = clock or SystemClock()
    env = eventsourcing_env(settings.store, SERVICE)
    app = OrderApplication(rules_from(settings), clock, env, translation.describe)
    sql = SqlStore(settings.store, SERVICE)
    relay = OutboxRelay(
        service=SERVICE,
        app=app,
        translate=translation.to_outbound,
        sql=sql,
        broker=settings.broker,
        settings=settings.relay,
    )
    consumer = TrackedConsumer(
        service=SERVICE,
        app=app,
        topics=[INVENTORY.name],
        handlers=policies.handlers(app),
        broker=settings.broker,
        settings=settings.consumer,
    )
    service = OrderService(
        settings, clock, app, sql, projector(app, sql), OrderQueries(sql), relay, consumer
    )
    service.http = _http(service)
    return service


def _http(service: OrderService) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service.running():
            yield

    http = FastAPI(
        title="shopfloor order service",
        version="0.1.0",
        lifespan=lifespan,
        description="Places, pays, confirms, cancels and refunds orders. "
        "Publishes orders.v1; consumes inventory.v1.",
    )
    http.state.orders, http.state.queries = service.app, service.queries

    async def store_ok() -> bool:
        await asyncio.to_thread(service.app.recorder.max_notification_id)
        return True

    async def broker_ok() -> bool:
        return await brokerlib.ping(service.settings.broker)

    http.include_router(api.router())
    http.include_router(ops_router(SERVICE, {"store": store_ok, "broker": broker_ok}))
    install_error_handlers(http, ERRORS)
    return http
