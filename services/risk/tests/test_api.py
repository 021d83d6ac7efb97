"""The risk HTTP API on the real stores (SQLite and PostgreSQL): the exception queues
with their reasons, the operators' steps and their refusals, the blacklist, the
statistics, and the errors a user sees."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from risk.translation import to_contract


def flagged(service, service_feed, n=5, **kwargs):
    order = service_feed.assessed_order(**kwargs)
    service_feed.velocity(order, "customer", n)
    service.catch_up()
    return order


def test_the_queues_list_flagged_orders_with_their_reasons(service, service_feed, client):
    held = flagged(service, service_feed)
    odd = service_feed.order()
    odd.address["postal_code"] = "99"
    service_feed.assessed_order(odd)
    service_feed.assessed_order()  # cleared: in no queue
    service.catch_up()

    everything = client.get("/exceptions").json()
    assert {e["order_id"] for e in everything} == {held.order_id, odd.order_id}
    [special] = client.get("/exceptions", params={"queue": "specialist"}).json()
    assert special["order_id"] == held.order_id and special["hold"] is True
    assert special["reasons"][0]["detail"].startswith("5 orders in 10 min from customer")
    [by_reason] = client.get("/exceptions", params={"reason": "address"}).json()
    assert by_reason["order_id"] == odd.order_id and by_reason["level"] == "ordinary"
    one = client.get(f"/exceptions/{special['exception_id']}").json()
    assert one["status"] == "open" and one["queue"] == "specialist"
    assessment = client.get(f"/orders/{held.order_id}/assessment").json()
    assert assessment["exception_id"] == special["exception_id"]


def test_release_and_cancel_with_operator_and_comment(service, service_feed, client):
    held, other = flagged(service, service_feed), flagged(service, service_feed)
    ids = {e["order_id"]: e["exception_id"] for e in client.get("/exceptions").json()}

    released = client.post(
        f"/exceptions/{ids[held.order_id]}/release",
        json={"operator": "ops-1", "comment": "known wholesaler"},
    )
    assert released.status_code == 200
    assert released.json()["status"] == "released" and released.json()["hold"] is False
    assert released.json()["history"][-1]["comment"] == "known wholesaler"
    again = client.post(
        f"/exceptions/{ids[held.order_id]}/release", json={"operator": "ops-1", "comment": "x"}
    )
    assert again.status_code == 409 and "is released" in again.json()["detail"]

    cancelled = client.post(
        f"/exceptions/{ids[other.order_id]}/cancel",
        json={"operator": "ops-2", "comment": "stolen card", "fraud": True},
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    service.catch_up()
    statuses = {e["order_id"]: e["status"] for e in client.get("/exceptions").json()}
    assert statuses == {held.order_id: "released", other.order_id: "cancelled"}


def test_the_counts_say_how_many_exceptions_are_in_each_status_and_held(
    service, service_feed, client
):
    assert client.get("/exceptions/counts").json() == {"held": 0}
    held, released = flagged(service, service_feed), flagged(service, service_feed)
    odd = service_feed.order()
    odd.address["postal_code"] = "99"
    service_feed.assessed_order(odd)  # ordinary: open, not held
    service_feed.assessed_order()  # cleared: no exception
    exception = client.get(f"/orders/{released.order_id}/assessment").json()["exception_id"]
    client.post(f"/exceptions/{exception}/release", json={"operator": "ops", "comment": "ok"})
    service.catch_up()

    assert client.get("/exceptions/counts").json() == {"open": 2, "released": 1, "held": 1}
    assert held.order_id != released.order_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operator": "ops"}, "comment"),
        ({"operator": "a b", "comment": "x"}, "operator"),
        ({"operator": "ops", "comment": "x", "colour": 1}, "colour"),
    ],
)
def test_a_bad_operator_step_is_a_422_naming_the_field(service, service_feed, client, body, field):
    flagged(service, service_feed)
    [case] = client.get("/exceptions").json()
    answer = client.post(f"/exceptions/{case['exception_id']}/release", json=body)
    assert answer.status_code == 422
    assert field in str(answer.json())
    assert client.get(f"/exceptions/{case['exception_id']}").json()["status"] == "open"


def test_an_unknown_exception_is_a_404(client):
    answer = client.post(
        "/exceptions/00000000-0000-0000-0000-000000000000/release",
        json={"operator": "ops", "comment": "x"},
    )
    assert answer.status_code == 404


def test_the_blacklist_adds_lists_and_removes_entries(service, service_feed, client):
    added = client.post(
        "/blacklist",
        json={"kind": "device", "value": "dev-7", "reason": "chargebacks", "added_by": "ops"},
    )
    assert added.status_code == 201 and added.json()["automatic"] is False
    twice = client.post(
        "/blacklist",
        json={"kind": "device", "value": "dev-7", "reason": "again", "added_by": "ops"},
    )
    assert twice.status_code == 409
    bad = client.post(
        "/blacklist", json={"kind": "planet", "value": "x", "reason": "y", "added_by": "ops"}
    )
    assert bad.status_code == 422 and "kind" in str(bad.json())
    service.catch_up()
    [entry] = client.get("/blacklist").json()
    assert (entry["kind"], entry["value"], entry["added_by"]) == ("device", "dev-7", "ops")

    order = service_feed.assessed_order(device_id="dev-7")
    assert service_feed.rules(order) == ["blacklist.device"]

    removed = client.delete(
        f"/blacklist/{entry['entry_id']}", params={"removed_by": "ops", "reason": "resolved"}
    )
    assert removed.status_code == 200 and removed.json()["active"] is False
    service.catch_up()
    assert client.get("/blacklist").json() == []
    [gone] = client.get("/blacklist", params={"active": False}).json()
    assert gone["removed_reason"] == "resolved"


def test_stats_count_exceptions_by_reason_level_and_day(service, service_feed, client, clock):
    flagged(service, service_feed)
    flagged(service, service_feed)
    odd = service_feed.order(total=Decimal("1500.00"))
    odd.address["city"] = ""
    service_feed.assessed_order(odd)
    service.catch_up()
    day = clock.now().date().isoformat()
    stats = client.get("/exceptions/stats", params={"from": day, "to": day}).json()
    reasons = {"velocity.customer": 2, "address.missing": 1, "large.amount": 1}
    assert stats["by_reason"] == reasons
    assert stats["by_level"] == {"serious": 3, "ordinary": 1}  # by each reason's level
    assert stats["by_day"] == {day: reasons}
    assert stats["orders"] == 3  # the order flagged by two rules counts once
    assert client.get("/exceptions/stats", params={"from": "2026-13-01"}).status_code == 422


def test_the_rules_in_force_are_shown(client):
    rules = client.get("/rules").json()
    assert rules["velocity"]["customer"] == {"limit": 4, "window_s": 600}
    assert rules["escalate_after_s"] == 1800


def published(service):
    """Every risk.v1 payload risk's stored events become, as the relay would send them."""
    app = service.app
    return [
        found[1].model_dump(mode="json")
        for n in app.recorder.select_notifications(start=1, limit=100_000)
        if (found := to_contract(app.domain_event(n)))
    ]


TYPED = "Ada Lovelace rang from +49 30 123456"


def test_what_operators_type_stays_in_risk_and_off_risk_v1(service, service_feed, client):
    held, other = flagged(service, service_feed), flagged(service, service_feed)
    ids = {e["order_id"]: e["exception_id"] for e in client.get("/exceptions").json()}
    step = {"operator": "ops-1", "comment": TYPED}
    assert client.post(f"/exceptions/{ids[held.order_id]}/release", json=step).is_success
    assert client.post(f"/exceptions/{ids[other.order_id]}/cancel", json=step).is_success
    entry = {"kind": "device", "value": "dev-9", "reason": TYPED, "added_by": "ops-1"}
    added = client.post("/blacklist", json=entry).json()
    removed = client.delete(
        f"/blacklist/{added['entry_id']}", params={"removed_by": "ops-1", "reason": TYPED}
    )
    assert removed.is_success
    service.catch_up()

    sent = published(service)
    assert TYPED not in json.dumps(sent)
    comments = [p["comment"] for p in sent if "comment" in p]
    assert comments == ["by hand (the comment is in the exception's history)"] * 2
    entries = [p for p in sent if "entry_id" in p]
    assert {p["reason"] for p in entries} == {"by hand (the reason is on the blacklist entry)"}
    shown = client.get(f"/exceptions/{ids[held.order_id]}").json()
    assert shown["history"][-1]["comment"] == TYPED
    [gone] = client.get("/blacklist", params={"active": False}).json()
    assert (gone["reason"], gone["removed_reason"]) == (TYPED, TYPED)
