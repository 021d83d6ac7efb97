"""Risk use cases: the reactions to orders, inventory and the stream processor's counts
(policies.py hands them in with the consumer's unit of work), the operators' commands on
exceptions and the blacklist, and the timers (first assessment without counts when
told to wait for them, escalation, paid but not shipped). Every fact that can change the
picture assesses the order again; an assessment is recorded (and published) only when it
changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from shopfloor_runtime.clock import Clock
from shopfloor_runtime.edge import UnitOfWork, command
from shopfloor_runtime.store import ServiceApplication

from risk.assess import assess
from risk.domain import (
    BlacklistEntry,
    Case,
    CaseNotFound,
    Customer,
    EntryNotFound,
    Refused,
    case_id,
    customer_id_of,
    entry_id,
)
from risk.logindex import LogIndex
from risk.rules import RiskRules

T = TypeVar("T")


class RiskApplication(ServiceApplication):
    name = "risk"
    cache_size = 20_000  # cases, customers, blacklist entries
    #: how long the first assessment waits for the velocity counts (0: it does not wait;
    #: the counts assess the order again when they come)
    velocity_wait_s = 0.0
    address_wait_s = 60.0

    def __init__(
        self, rules: RiskRules, env: dict[str, str] | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(env, clock)
        self.rules = rules
        self.index = LogIndex(self)

    def use_rules(self, rules: RiskRules) -> None:
        """New rules (a reloaded file): later assessments use them."""
        self.rules = rules

    # -- reactions (policies.py calls these) ------------------------------------------------

    def order_placed(self, uow: UnitOfWork, order_id: str, placed: dict[str, Any]) -> None:
        case = self._case(uow, order_id, likely_new=True)
        case.record_placed(**placed, seen_at=self.clock.now().isoformat())
        customer = self._customer(uow, placed["customer_id"])
        customer.placed(
            order_id, datetime.fromisoformat(placed["placed_at"]), Decimal(placed["total"])
        )
        self._reassess(uow, case)

    def address_recorded(self, uow: UnitOfWork, order_id: str, address: dict[str, Any]) -> None:
        case = self._case(uow, order_id, likely_new=True)
        case.record_address(address)
        self._reassess(uow, case)

    def payment_rejected(
        self, uow: UnitOfWork, order_id: str, why: str, detail: str, reference: str
    ) -> None:
        case = self._case(uow, order_id)
        case.record_payment_rejected(why, detail, reference)
        self._reassess(uow, case)

    def velocity_observed(
        self, uow: UnitOfWork, order_id: str, dimension: str, seen: dict[str, Any]
    ) -> None:
        case = self._case(uow, order_id)
        if case.record_velocity(dimension, seen):
            self._reassess(uow, case)

    def stock_short(self, uow: UnitOfWork, order_id: str, lines: list[str]) -> None:
        case = self._case(uow, order_id)
        case.record_shortage(lines)
        self._reassess(uow, case)

    def order_confirmed(self, uow: UnitOfWork, order_id: str, at: datetime) -> None:
        self._case(uow, order_id).record_confirmed(at)

    def order_shipped(self, uow: UnitOfWork, order_id: str) -> None:
        self._case(uow, order_id).record_shipped()

    def order_cancelled(self, uow: UnitOfWork, order_id: str) -> None:
        case = self._case(uow, order_id)
        case.record_cancelled()
        self._reassess(uow, case)

    # -- assessing --------------------------------------------------------------------------

    def _reassess(self, uow: UnitOfWork, case: Case) -> None:
        now = self.clock.now()
        if not case.ready(now, self.velocity_wait_s, self.address_wait_s):
            return
        assert case.placed is not None
        customer = self._customer(uow, case.placed["customer_id"])
        facts = case.facts(customer.history_before(case.order_id), self._hits(uow, case))
        case.assess(assess(facts, self.rules), self.rules, now)

    def _hits(self, uow: UnitOfWork, case: Case) -> dict[str, str]:
        """Active blacklist entries naming the order's customer, address or device: an
        entry this unit of work changed (a command that blacklists and re-assesses in one
        transaction) as it holds it, every other one from the index."""
        assert case.placed is not None
        keys = {
            "customer": case.placed.get("customer_id"),
            "address": case.placed.get("fingerprint"),
            "device": case.placed.get("device_id"),
        }
        hits = {}
        for kind, value in keys.items():
            if not value:
                continue
            reason: str | None
            if entry_id(kind, value) in uow:
                entry = uow.get(entry_id(kind, value), BlacklistEntry)
                reason = entry.reason if entry is not None and entry.active else None
            else:
                reason = self.index.reason(uow, kind, value)
            if reason is not None:
                hits[kind] = reason
        return hits

    # -- timers -------------------------------------------------------------------------------

    def assess_waiting(self, order_ids: list[str]) -> int:
        """Orders placed a while ago whose counts or address never came: assess them
        without."""
        return self._each(order_ids, self._assess_now)

    def _assess_now(self, uow: UnitOfWork, order_id: str) -> bool:
        case = uow.get(case_id(order_id), Case)
        if case is None or case.assessments:
            return False
        self._reassess(uow, case)
        return bool(case.assessments)

    def escalate_due(self, order_ids: list[str]) -> int:
        """Front-line exceptions open past the limit go to a specialist."""
        limit = self.rules.escalate_after_s

        def act(uow: UnitOfWork, order_id: str) -> bool:
            case = uow.get(case_id(order_id), Case)
            now = self.clock.now()
            if case is None or case.opened_at is None:
                return False
            if (now - case.opened_at).total_seconds() < limit:
                return False
            minutes = int(limit // 60)
            return case.escalate(f"open on the front line for more than {minutes} min", now)

        return self._each(order_ids, act)

    def flag_not_shipped(self, order_ids: list[str]) -> int:
        """Paid and confirmed orders not shipped in time: flagged at risk, once."""

        def act(uow: UnitOfWork, order_id: str) -> bool:
            case = uow.get(case_id(order_id), Case)
            if case is None:
                return False
            if not case.flag_not_shipped(self.clock.now(), self.rules.not_shipped_after_s):
                return False
            self._reassess(uow, case)
            return True

        return self._each(order_ids, act)

    # -- operators' commands ----------------------------------------------------------------------

    def release(self, case: UUID, operator: str, comment: str) -> Case:
        def act(uow: UnitOfWork) -> Case:
            found = self._existing(uow, case)
            found.release(operator, comment, self.clock.now())
            return found

        return self.command(act)

    def close_case(self, case: UUID, operator: str, comment: str) -> Case:
        def act(uow: UnitOfWork) -> Case:
            found = self._existing(uow, case)
            found.close(operator, comment, self.clock.now())
            return found

        return self.command(act)

    def cancel(self, case: UUID, operator: str, comment: str, fraud: bool) -> Case:
        """Cancel the order (the order service does, and frees its stock). A customer
        with enough orders cancelled for fraud is blacklisted automatically."""

        def act(uow: UnitOfWork) -> Case:
            found = self._existing(uow, case)
            now = self.clock.now()
            found.cancel(operator, comment, fraud, now)
            if fraud and found.placed is not None:
                customer = self._customer(uow, found.placed["customer_id"])
                count = customer.cancelled_for_fraud(found.order_id)
                if count >= self.rules.blacklist_after_fraud:
                    self._blacklist(
                        uow,
                        "customer",
                        customer.customer,
                        f"{count} orders cancelled for fraud (limit "
                        f"{self.rules.blacklist_after_fraud})",
                        "risk",
                        automatic=True,
                    )
            return found

        return self.command(act)

    def add_to_blacklist(self, kind: str, value: str, reason: str, added_by: str) -> BlacklistEntry:
        def act(uow: UnitOfWork) -> BlacklistEntry:
            entry = self._blacklist(uow, kind, value, reason, added_by, automatic=False)
            if entry is None:
                raise Refused(f"{kind} {value} is blacklisted already")
            return entry

        return self.command(act)

    def _blacklist(
        self, uow: UnitOfWork, kind: str, value: str, reason: str, by: str, automatic: bool
    ) -> BlacklistEntry | None:
        """Add (or add again) an entry; None if it is active already. A customer's
        orders that can still be stopped are assessed again in the same transaction, so
        an order placed before the entry is held too (an address or device entry applies
        from the next assessment of each order naming it)."""
        now = self.clock.now()
        entry = uow.get(entry_id(kind, value), BlacklistEntry)
        if entry is None:
            entry = BlacklistEntry(kind, value, reason, by, automatic, now)
            uow.add(entry)
        elif not entry.add_again(reason, by, automatic, now):
            return None
        if kind == "customer":
            self._reassess_customer(uow, value)
        return entry

    def _reassess_customer(self, uow: UnitOfWork, customer: str) -> None:
        known = uow.get(customer_id_of(customer), Customer)
        for order_id in known.orders if known is not None else ():
            case = uow.get(case_id(order_id), Case)
            if case is None or not case.assessments or case.status == "cancelled":
                continue
            if not (case.shipped or case.cancelled):
                self._reassess(uow, case)

    def remove_from_blacklist(self, entry: UUID, removed_by: str, reason: str) -> BlacklistEntry:
        def act(uow: UnitOfWork) -> BlacklistEntry:
            found = uow.get(entry, BlacklistEntry)
            if found is None:
                raise EntryNotFound(entry)
            found.remove(removed_by, reason, self.clock.now())
            return found

        return self.command(act)

    def command(self, act: Callable[[UnitOfWork], T], attempts: int = 8) -> T:
        return command(self, act, attempts)

    def _each(self, order_ids: list[str], act: Callable[[UnitOfWork, str], bool]) -> int:
        """One command per order (each saved on its own); how many did something."""
        done = 0
        for order_id in order_ids:

            def one(uow: UnitOfWork, order_id: str = order_id) -> bool:
                return act(uow, order_id)

            done += self.command(one)
        return done

    # -- queries ----------------------------------------------------------------------------------

    def get_case(self, case: UUID) -> Case:
        found = self.find(case, Case, fresh=True)
        if found is None:
            raise CaseNotFound(case)
        return found

    def get_entry(self, entry: UUID) -> BlacklistEntry:
        found = self.find(entry, BlacklistEntry, fresh=True)
        if found is None:
            raise EntryNotFound(entry)
        return found

    # -- finding or starting aggregates -----------------------------------------------------------

    def _existing(self, uow: UnitOfWork, case: UUID) -> Case:
        found = uow.get(case, Case)
        if found is None or found.placed is None:
            raise CaseNotFound(case)
        return found

    def _case(self, uow: UnitOfWork, order_id: str, likely_new: bool = False) -> Case:
        """The order's case, made by the first fact to arrive. Placement and address
        normally make it (both come from the order service in one round), so for them
        the first try does not query the store (`UnitOfWork.get_new`)."""
        found = uow.get_new(case_id(order_id)) if likely_new else uow.get(case_id(order_id))
        case = found if isinstance(found, Case) else None
        if case is None:
            case = Case(order_id)
            uow.add(case)
        return case

    def _customer(self, uow: UnitOfWork, customer: str) -> Customer:
        """The customer's history; a customer the store does not hold (the index of
        risk's own log says so) is not looked up."""
        cid = customer_id_of(customer)
        found = uow.get(cid) if self.index.customer_known(uow, cid) else uow.get_new(cid)
        if not isinstance(found, Customer):
            found = Customer(customer)
            uow.add(found)
        return found
