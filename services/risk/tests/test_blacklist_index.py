"""The blacklist as assessments read it: an index that tails the store's log once per
unit of work, so an entry another process of the service added or removed applies from
that process's next poll or command, on SQLite and PostgreSQL."""

from __future__ import annotations

from risk.bootstrap import RiskService
from risk.domain import entry_id
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.testing import MakeService, fresh


def test_an_entry_another_process_adds_or_removes_applies_to_the_next_assessment(
    service_feed, make_service: MakeService
):
    other: RiskService = make_service(RiskService)  # a second process on the same store
    service_feed.assessed_order()  # the index has read the log once
    customer = fresh("customer")
    other.app.add_to_blacklist("customer", customer, "chargebacks", "ops-1")
    held = service_feed.assessed_order(customer_id=customer)
    assert service_feed.rules(held) == ["blacklist.customer"] and service_feed.case(held).hold
    other.app.remove_from_blacklist(entry_id("customer", customer), "ops-1", "paid back")
    later = service_feed.assessed_order(customer_id=customer)
    assert service_feed.rules(later) == [] and not service_feed.case(later).hold


def test_entries_written_before_the_process_started_are_known(make_service: MakeService):
    first: RiskService = make_service(RiskService)
    device = fresh("device")
    first.app.add_to_blacklist("device", device, "emulator farm", "ops-2")
    later: RiskService = make_service(RiskService)
    assert later.app.blacklist.reason(UnitOfWork(later.app), "device", device) == "emulator farm"
