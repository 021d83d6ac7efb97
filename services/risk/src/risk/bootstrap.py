"""The only reader of settings: the risk service as the kit assembles it, with its rules
(reloaded when their file changes), its read model and its timers."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from shopfloor_contracts.topics import INVENTORY, ORDERS, ORDERS_PRIVATE, RISK_VELOCITY
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.registry import ServiceSpec
from shopfloor_runtime.service import Loop, Service, every

from risk import api, policies, translation
from risk.application import RiskApplication
from risk.projection import RiskQueries, projector
from risk.rules import RulesFileError, load_rules
from risk.settings import Settings

log = logging.getLogger(__name__)


class RiskService(Service[Settings, RiskApplication]):
    name = "risk"
    description = (
        "Assesses every order against configurable rules (address, payment, size, velocity, "
        "blacklist, stock, shipping delay), holds serious cases, queues exceptions for "
        "operators, keeps the blacklist. Consumes orders.v1, orders.private.v1, inventory.v1 "
        "and risk.velocity.v1; publishes risk.v1."
    )
    settings_type = Settings
    consumes = (ORDERS, ORDERS_PRIVATE, INVENTORY, RISK_VELOCITY)
    errors = api.ERRORS
    _rules_mtime: float | None = None

    def application(self, env: dict[str, str]) -> RiskApplication:
        rules = load_rules(self.settings.rules_file)  # an invalid file stops the start
        self._rules_mtime = self._mtime()
        app = RiskApplication(rules, env, self.clock)
        app.velocity_wait_s = self.settings.velocity_wait_s
        # an address is waited for at least as long as the counts are
        app.address_wait_s = max(self.settings.address_wait_s, self.settings.velocity_wait_s)
        return app

    def translation(self) -> Translate:
        return translation.to_outbound

    def handlers(self) -> Handlers:
        return policies.handlers(self.app)

    def read_models(self) -> list[Projector]:
        self.queries = RiskQueries(self.sql)
        return [projector(self.app, self.sql)]

    def router(self) -> APIRouter:
        return api.router()

    def state(self) -> dict[str, Any]:
        return {"risk": self.app, "queries": self.queries}

    def loops(self) -> list[Loop]:
        return [
            every(self.settings.tick_s, self.tick, "deadline tick"),
            every(self.settings.reload_s, self.reload_rules, "rules reload"),
        ]

    def tick(self) -> int:
        """First assessments whose counts never came, escalations, paid but not shipped."""
        app, now = self.app, self.clock.now()
        rules = app.rules
        done = 0
        # placed a while ago and never assessed: the counts (with a velocity wait) or the
        # address did not come; assess without them (ready() says which may go)
        wait = app.velocity_wait_s or app.address_wait_s
        waiting = self.queries.waiting_assessment(now - timedelta(seconds=wait))
        done = app.assess_waiting(waiting)
        due = self.queries.escalation_due(now - timedelta(seconds=rules.escalate_after_s))
        done += app.escalate_due(due)
        late = self.queries.not_shipped_due(now - timedelta(seconds=rules.not_shipped_after_s))
        return done + app.flag_not_shipped(late)

    def reload_rules(self) -> bool:
        """Use the rules file again if it changed; an invalid one is refused with one
        line in the log, and the rules in force stay."""
        mtime = self._mtime()
        if mtime == self._rules_mtime:
            return False
        self._rules_mtime = mtime
        try:
            rules = load_rules(self.settings.rules_file)
        except RulesFileError as error:
            log.error("risk rules not reloaded, the old ones stay: %s", error)
            return False
        self.app.use_rules(rules)
        log.info("risk rules reloaded from %s", self.settings.rules_file)
        return True

    def _mtime(self) -> float | None:
        path = self.settings.rules_file
        try:
            return None if path is None else path.stat().st_mtime
        except OSError:
            return None


SPEC = ServiceSpec.of(RiskService)
