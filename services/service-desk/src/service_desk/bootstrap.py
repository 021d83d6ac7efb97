"""The only reader of settings: the service desk as the kit assembles it, with its rules,
its read models and its SLA timer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from shopfloor_contracts.topics import FULFILMENT, ORDERS
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.service import Loop, Service, every

from service_desk import api, policies, translation
from service_desk.application import DeskApplication
from service_desk.projection import DeskQueries, projector
from service_desk.rules import load_rules
from service_desk.settings import Settings


class DeskService(Service[Settings, DeskApplication]):
    name = "service-desk"
    description = (
        "One ticket queue for every channel, tickets from risk holds, late shipments, "
        "failed deliveries and large refunds, routing by type and tier, SLA timers with "
        "three-level escalation, templates, KPIs, and returns that restock and refund. "
        "Consumes orders.v1 and fulfilment.v1; publishes service-desk.v1."
    )
    settings_type = Settings
    consumes = (ORDERS, FULFILMENT)
    errors = api.ERRORS

    def application(self, env: dict[str, str]) -> DeskApplication:
        return DeskApplication(load_rules(self.settings.rules_file), env, self.clock)

    def translation(self) -> Translate:
        return translation.to_outbound

    def handlers(self) -> Handlers:
        return policies.handlers(self.app)

    def read_models(self) -> list[Projector]:
        self.queries = DeskQueries(self.sql)
        return [projector(self.app, self.sql)]

    def router(self) -> APIRouter:
        return api.router()

    def state(self) -> dict[str, Any]:
        return {"desk": self.app, "queries": self.queries}

    def loops(self) -> list[Loop]:
        return [every(self.settings.tick_s, self.tick, "SLA tick")]

    def tick(self) -> int:
        """Deadlines passed: each missed SLA escalates its ticket, once."""
        return self.app.miss_deadlines(self.queries.due(self.clock.now()))


SPEC = ServiceSpec.of(DeskService)
