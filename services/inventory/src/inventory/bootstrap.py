"""The only reader of settings: builds the inventory application, relay, consumer, read
models and FastAPI app, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import FastAPI
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.store import SqlStore, eventsourcing_env, schema_lock
from shopfloor_runtime.web import install_error_handlers, ops_router

from inventory import api, policies, translation
from inventory.application import InventoryApplication
from inventory.domain import InvalidStock, UnknownSku, UnknownTransfer
from inventory.projection import InventoryQueries, projector
from inventory.settings import Settings

SERVICE = "inventory"

ERRORS: dict[type[Exception], int] = {
    InvalidStock: 422,
    UnknownSku: 404,
    UnknownTransfer: 404,
    api.SerialNotFound: 404,
    api.ReservationNotFound: 404,
}


@dataclass
class InventoryService:
    settings: Settings
    app: InventoryApplication
    sql: SqlStore
    projector: Projector
    queries: InventoryQueries
    relay: OutboxRelay
    consumer: TrackedConsumer
    http: FastAPI = field(init=False)

    @property
    def projectors(self) -> list[Projector]:
        return [self.projector]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work beside the API: read models, relay, consumer."""
        stopping = asyncio.Event()
        # relay, projector, consumer and deadlines each use worker threads; the default
        # pool (cores + 4) is too small for them on a 2-core machine
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        tasks = [asyncio.create_task(self.projector.run(stopping))]
        if self.settings.relay.enabled:
            tasks.append(asyncio.create_task(self.relay.run(stopping)))
        if self.settings.consumer.enabled:
            tasks.append(asyncio.create_task(self.consumer.run(stopping)))
        try:
            yield
        finally:
            stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.app.close()
        self.sql.close()


def build(settings: Settings | None = None, clock: Clock | None = None) -> InventoryService:
    settings = settings or Settings()
    with schema_lock(settings.store):
        return _assemble(settings, clock)


def _assemble(settings: Settings, clock: Clock | None) -> InventoryService:
    app = InventoryApplication(clock or SystemClock(), eventsourcing_env(settings.store, SERVICE))
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
        topics=[ORDERS.name],
        handlers=policies.handlers(app),
        broker=settings.broker,
        settings=settings.consumer,
    )
    service = InventoryService(
        settings, app, sql, projector(app, sql), InventoryQueries(sql), relay, consumer
    )
    service.http = _http(service)
    return service


def _http(service: InventoryService) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service.running():
            yield

    http = FastAPI(
        title="shopfloor inventory service",
        version="0.1.0",
        lifespan=lifespan,
        description="Stock per SKU and warehouse; reservations that never oversell. "
        "Consumes orders.v1; publishes inventory.v1.",
    )
    http.state.inventory, http.state.queries = service.app, service.queries

    async def store_ok() -> bool:
        await asyncio.to_thread(service.app.recorder.max_notification_id)
        return True

    async def broker_ok() -> bool:
        return await brokerlib.ping(service.settings.broker)

    http.include_router(api.router())
    http.include_router(ops_router(SERVICE, {"store": store_ok, "broker": broker_ok}))
    install_error_handlers(http, ERRORS)
    return http
