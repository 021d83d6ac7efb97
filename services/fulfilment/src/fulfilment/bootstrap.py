"""The only reader of settings: the fulfilment service as the kit assembles it, with its
rules from settings, its read model and its timers (wave windows, delays, retries)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from shopfloor_contracts.topics import INVENTORY, ORDERS, ORDERS_PRIVATE, SERVICE_DESK
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.service import Loop, Service, every

from fulfilment import api, policies, translation
from fulfilment.application import FulfilmentApplication
from fulfilment.projection import FulfilmentQueries, projector
from fulfilment.rules import CarrierRule, FastMovers, Rules, WarehouseRule
from fulfilment.settings import Settings


def rules_from(settings: Settings) -> Rules:
    """The rules; refuses a shard count that does not divide the input partitions."""
    r = settings.rules
    assert ORDERS.partitions == ORDERS_PRIVATE.partitions == INVENTORY.partitions
    return Rules(
        warehouses={
            code: WarehouseRule(w.daily_capacity, tuple(w.zones), dict(w.bins))
            for code, w in r.warehouses.items()
        },
        distances={region: dict(row) for region, row in r.distances.items()},
        carriers=tuple(
            CarrierRule(
                carrier=c.carrier,
                service=c.service,
                transit_days=c.transit_days,
                base_cost=c.base_cost,
                per_kg=c.per_kg,
                regions=tuple(c.regions),
                max_weight_grams=c.max_weight_grams,
                max_value=c.max_value,
            )
            for c in r.carriers
        ),
        promise_days=dict(r.promise_days),
        weights=dict(r.weights),
        default_weight_grams=r.default_weight_grams,
        merge=r.merge,
        split=r.split,
        wave_window=timedelta(seconds=r.wave_window_s),
        wave_size=r.wave_size,
        pack_tolerance=r.pack_tolerance,
        shards=settings.shards,
        partitions=ORDERS.partitions,
        fast_movers=FastMovers(
            window=timedelta(hours=r.fast_movers.window_h),
            min_picks=r.fast_movers.min_picks,
            slots=r.fast_movers.slots,
        ),
    )


class FulfilmentService(Service[Settings, FulfilmentApplication]):
    name = "fulfilment"
    description = (
        "Allocates confirmed orders to a warehouse and carrier, batches them into picking "
        "waves, checks picks and packing, dispatches and tracks shipments. Consumes "
        "orders.v1, orders.private.v1 and inventory.v1; publishes fulfilment.v1."
    )
    settings_type = Settings
    consumes = (ORDERS, ORDERS_PRIVATE, INVENTORY, SERVICE_DESK)
    errors = api.ERRORS
    _ticks = 0  # wave ticks so far

    def application(self, env: dict[str, str]) -> FulfilmentApplication:
        return FulfilmentApplication(rules_from(self.settings), env, self.clock)

    def translation(self) -> Translate:
        return translation.to_outbound

    def handlers(self) -> Handlers:
        return policies.handlers(self.app)

    def read_models(self) -> list[Projector]:
        self.queries = FulfilmentQueries(self.sql)
        return [projector(self.app, self.sql)]

    def router(self) -> APIRouter:
        return api.router()

    def state(self) -> dict[str, Any]:
        return {"fulfilment": self.app, "queries": self.queries}

    def loops(self) -> list[Loop]:
        return [
            every(self.settings.tick_s, self.tick, "wave and delay tick"),
            every(self.settings.retry_unallocated_s, self.retry_unallocated, "allocation retry"),
            every(self.settings.reslot_s, self.reslot, "fast-mover slotting"),
        ]

    def tick(self) -> int:
        """Release waves whose window passed; flag shipments past their promise. Every
        ten seconds or so the lanes are read as stored (another worker may have filled
        one this worker holds an older copy of)."""
        fresh = self._ticks % max(round(10 / self.settings.tick_s), 1) == 0
        self._ticks += 1
        released = self.app.release_due_waves(fresh=fresh)
        return released + self.app.fire_delays(self.queries.due_delays(self.clock.now()))

    def reslot(self) -> int:
        """Slot the fast movers by the velocity rule over recent picks."""
        rule = self.app.rules.fast_movers
        since = self.clock.now() - rule.window
        return self.app.reslot(self.queries.velocity(since, rule.min_picks))

    def retry_unallocated(self) -> int:
        return self.app.retry_unallocated(self.queries.unallocated())


SPEC = ServiceSpec.of(FulfilmentService)
