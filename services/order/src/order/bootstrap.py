"""The only reader of settings: the order service as the kit assembles it, with what is
its own: the rules from settings, the group-commit placer, the read model, the deadline
loop (payment reminders and timeouts, completion after the return window)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from shopfloor_contracts.topics import FULFILMENT, INVENTORY, RISK, SERVICE_DESK
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.groupcommit import GroupCommit
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.service import Loop, Service, every

from order import api, policies, translation
from order.application import OrderApplication, PlacementRequest
from order.domain import Coupon, OrderRules, PlacementResult
from order.privacy import AddressFingerprints, address_key
from order.projection import OrderQueries, projector
from order.settings import Settings


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
        return_window=timedelta(seconds=r.return_window_s),
    )


class OrderService(Service[Settings, OrderApplication]):
    name = "order"
    description = (
        "Places, pays, confirms, cancels and refunds orders, and follows them as fulfilment "
        "ships and the carrier delivers them; holds what risk flags as serious; refunds "
        "returns the service desk received, once. Publishes orders.v1 and "
        "orders.private.v1; consumes inventory.v1, fulfilment.v1, risk.v1 and service-desk.v1."
    )
    settings_type = Settings
    consumes = (INVENTORY, FULFILMENT, RISK, SERVICE_DESK)
    errors = api.ERRORS

    def application(self, env: dict[str, str]) -> OrderApplication:
        key = address_key(self.settings.privacy, self.sql)
        self.translate = translation.Translation(AddressFingerprints(key))
        app = OrderApplication(rules_from(self.settings), self.clock, env, self.translate.describe)
        # POST /orders is saved in groups by one writer thread (started on first use)
        self.placer: GroupCommit[PlacementRequest, PlacementResult] = GroupCommit(
            self.name, "place_orders", app.place_orders
        )
        return app

    def translation(self) -> Translate:
        return self.translate.to_outbound

    def handlers(self) -> Handlers:
        return policies.handlers(self.app)

    def read_models(self) -> list[Projector]:
        self.queries = OrderQueries(self.sql)
        return [projector(self.app, self.sql)]

    def router(self) -> APIRouter:
        return api.router(self.app.rules)

    def state(self) -> dict[str, Any]:
        return {"orders": self.app, "queries": self.queries, "placer": self.placer}

    def loops(self) -> list[Loop]:
        return [every(self.settings.deadline_tick_s, self.tick_deadlines, "deadline tick")]

    def tick_deadlines(self) -> int:
        """Fire every payment reminder, payment timeout and completion that is due now."""
        return self.app.fire_deadlines(self.queries.due_deadlines(self.clock.now()))

    def closing(self) -> None:
        self.placer.stop()


SPEC = ServiceSpec.of(OrderService)
