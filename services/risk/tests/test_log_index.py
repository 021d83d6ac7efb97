"""The blacklist and the known customers as assessments read them: an index that tails
the store's log once per unit of work, so an entry another process of the service added
or removed applies from that process's next poll or command, and a customer is looked up
only when the store holds it, on SQLite and PostgreSQL."""

from __future__ import annotations

from risk.bootstrap import RiskService
from risk.domain import Customer, customer_id_of, entry_id
from risk.logindex import LogIndex
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
    assert later.app.index.reason(UnitOfWork(later.app), "device", device) == "emulator farm"


def test_a_customer_another_process_saved_is_found_even_after_the_index_was_read(
    service_feed, make_service: MakeService, monkeypatch
):
    """The race the index leaves open: another process saves the customer after this
    one's index read the log. Treated as new, the save conflicts on the customer's
    version and the careful retry loads it: no order of the customer's history lost."""
    first: RiskService = make_service(RiskService)
    one, two = type(service_feed)(first.app), service_feed
    second = two.app
    two.assessed_order()  # the second process's index has read the log
    customer = fresh("customer")
    one.placed(one.order(customer_id=customer))
    monkeypatch.setattr(LogIndex, "_catch_up", lambda self: None)  # it reads no further
    assert not second.index.customer_known(UnitOfWork(second), customer_id_of(customer))
    two.placed(two.order(customer_id=customer))
    found = second.find(customer_id_of(customer))
    assert isinstance(found, Customer) and len(found.orders) == 2
