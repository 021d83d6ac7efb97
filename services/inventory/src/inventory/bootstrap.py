"""The only reader of settings: the inventory service as the kit assembles it, with its
read models and its reactions to orders and shipments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from shopfloor_contracts.topics import FULFILMENT, ORDERS, SERVICE_DESK
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.service import Service

from inventory import api, policies, translation
from inventory.application import InventoryApplication
from inventory.projection import InventoryQueries, projector
from inventory.settings import Settings


class InventoryService(Service[Settings, InventoryApplication]):
    name = "inventory"
    description = (
        "Stock per SKU and warehouse; reservations that never oversell, held where "
        "fulfilment ships from; received returns back on hand once. Consumes orders.v1, "
        "fulfilment.v1 and service-desk.v1; publishes inventory.v1."
    )
    settings_type = Settings
    consumes = (ORDERS, FULFILMENT, SERVICE_DESK)
    errors = api.ERRORS

    def application(self, env: dict[str, str]) -> InventoryApplication:
        return InventoryApplication(env, self.clock)

    def translation(self) -> Translate:
        return translation.to_outbound

    def handlers(self) -> Handlers:
        return policies.handlers(self.app)

    def read_models(self) -> list[Projector]:
        self.queries = InventoryQueries(self.sql)
        return [projector(self.app, self.sql)]

    def router(self) -> APIRouter:
        return api.router()

    def state(self) -> dict[str, Any]:
        return {"inventory": self.app, "queries": self.queries}


SPEC = ServiceSpec.of(InventoryService)
