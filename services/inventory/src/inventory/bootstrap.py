"""The only reader of settings: builds the inventory application, relay, consumer, read
models and FastAPI app, once."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from fastapi import FastAPI
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.service import background, messaging, service_http
from shopfloor_runtime.store import SqlStore, eventsourcing_env, schema_lock

from inventory import api, policies, translation
from inventory.application import InventoryApplication
from inventory.domain import InvalidStock, UnknownSku, UnknownTransfer
from inventory.projection import InventoryQueries, projector
from inventory.settings import Settings

SERVICE = "inventory"
DESCRIPTION = (
    "Stock per SKU and warehouse; reservations that never oversell. "
    "Consumes orders.v1; publishes inventory.v1."
)

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

    def running(self) -> AbstractAsyncContextManager[None]:
        """Background work beside the API: read models, relay, consumer."""
        settings = self.settings
        return background(
            [
                self.projector.run,
                *([self.relay.run] if settings.relay.enabled else []),
                *([self.consumer.run] if settings.consumer.enabled else []),
            ]
        )

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
    relay, consumer = messaging(
        SERVICE, app, sql, settings, translation.to_outbound, [ORDERS.name], policies.handlers(app)
    )
    service = InventoryService(
        settings, app, sql, projector(app, sql), InventoryQueries(sql), relay, consumer
    )
    service.http = _http(service)
    return service


def _http(service: InventoryService) -> FastAPI:
    return service_http(
        name=SERVICE,
        app=service.app,
        broker=service.settings.broker,
        router=api.router(),
        errors=ERRORS,
        running=service.running,
        state={"inventory": service.app, "queries": service.queries},
        description=DESCRIPTION,
    )


SPEC = ServiceSpec(
    name=SERVICE,
    package="inventory",
    settings=Settings,
    build=build,
    description=DESCRIPTION,
)
