"""The service desk's HTTP API on the real stores (SQLite and PostgreSQL): tickets opened
and threaded, the queue views and their filters, a ticket's whole timeline with the
customer's tier and orders, the SLA tick, KPIs, templates, standards, returns, and the
errors a user sees."""

from __future__ import annotations

from datetime import timedelta


def ticket_body(**kw):
    return {
        "channel": "chat",
        "customer_id": "cust-api",
        "type": "order_status",
        "subject": "Where is my parcel?",
        "message": "Hi, it has been a week.",
        **kw,
    }


def test_a_contact_opens_a_ticket_and_the_next_one_threads_into_it(client):
    first = client.post("/tickets", json=ticket_body(order_id="order-1"))
    assert first.status_code == 201, first.text
    opened = first.json()
    assert (opened["queue"], opened["tier"], opened["status"]) == ("front-desk", "new", "open")
    assert opened["route"] == "any ticket -> front-desk"
    again = client.post("/tickets", json=ticket_body(order_id="order-1", channel="email"))
    assert again.status_code == 200 and again.json()["threaded"] is True
    assert again.json()["ticket_id"] == opened["ticket_id"]
    assert len(again.json()["messages"]) == 2


def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(service, client):
    bad = client.post("/tickets", json=ticket_body(channel="pigeon"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "channel"
    missing = client.post("/tickets", json={**ticket_body(), "message": ""})
    assert missing.status_code == 422
    ticket = client.post("/tickets", json=ticket_body()).json()
    no_agent = client.post(
        f"/tickets/{ticket['ticket_id']}/messages", json={"author": "agent", "body": "x"}
    )
    assert no_agent.status_code == 422 and "names its agent" in no_agent.text
    template = client.post(
        f"/tickets/{ticket['ticket_id']}/messages",
        json={"author": "agent", "agent": "ana", "template_id": "where-is-my-order"},
    )
    assert template.status_code == 422
    assert template.json()["detail"][0]["loc"] == ["body", "template_id"]
    rating = client.post(f"/tickets/{ticket['ticket_id']}/satisfaction", json={"score": 6})
    assert rating.status_code == 422
    unknown = client.get("/tickets/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and "not found" in unknown.json()["detail"]
    service.catch_up()
    [row] = client.get("/tickets").json()
    assert row["answered_at"] is None and row["rating"] is None


def test_the_queue_views_filter_by_queue_level_status_customer_and_breach(service, client, clock):
    delivery = client.post("/tickets", json=ticket_body(type="delivery", customer_id="c-a")).json()
    client.post("/tickets", json=ticket_body(type="payment", customer_id="c-b", channel="email"))
    service.catch_up()
    clock.advance(timedelta(seconds=91))
    assert service.tick() >= 1  # the chats' first response passed: escalated
    service.catch_up()
    [logistics] = client.get("/tickets", params={"queue": "escalations", "status": "open"}).json()
    assert logistics["ticket_id"] == delivery["ticket_id"] and logistics["level"] == "difficult"
    assert logistics["breached"] is True
    [billing] = client.get("/tickets", params={"queue": "billing"}).json()
    assert billing["customer_id"] == "c-b" and billing["breached"] is False  # email: 4 h
    assert [
        t["customer_id"] for t in client.get("/tickets", params={"breached": "true"}).json()
    ] == ["c-a"]
    assert [
        t["customer_id"] for t in client.get("/tickets", params={"customer": "c-b"}).json()
    ] == ["c-b"]
    counts = client.get("/tickets/counts").json()
    assert counts == {"open": 2, "breached": 1, "escalated": 1}


def test_a_ticket_shows_its_timeline_and_the_customers_tier_and_orders(
    service, service_feed, client
):
    order = service_feed.dispatched(
        service_feed.paid(service_feed.placed(service_feed.order("cust-tl")))
    )
    ticket = client.post(
        "/tickets", json=ticket_body(customer_id="cust-tl", order_id=order.order_id)
    ).json()
    tid = ticket["ticket_id"]
    client.post(
        f"/tickets/{tid}/messages",
        json={"author": "agent", "agent": "ana", "template_id": "where-is-my-order"},
    )
    client.post(f"/tickets/{tid}/resolve", json={"agent": "ana"})
    client.post(f"/tickets/{tid}/satisfaction", json={"score": 4})
    found = client.get(f"/tickets/{tid}").json()
    assert [step["event"] for step in found["timeline"]] == [
        "Opened",
        "CustomerWrote",
        "AgentReplied",
        "Resolved",
        "Rated",
    ]
    assert found["messages"][1]["body"].startswith(f"Your order {order.order_id} is shipped.")
    assert found["customer"]["tier"] == "new"
    [history] = found["customer"]["orders"]
    assert (history["order_id"], history["status"], history["carrier"]) == (
        order.order_id,
        "shipped",
        "DHL",
    )
    twice = client.post(f"/tickets/{tid}/satisfaction", json={"score": 1})
    assert twice.status_code == 409 and "rated already" in twice.json()["detail"]


def test_kpis_give_response_and_resolution_percentiles_rates_and_satisfaction(
    service, client, clock
):
    for n, wait in enumerate((10, 30, 60)):
        tid = client.post("/tickets", json=ticket_body(customer_id=f"c-k{n}")).json()["ticket_id"]
        clock.advance(timedelta(seconds=wait))
        client.post(
            f"/tickets/{tid}/messages", json={"author": "agent", "agent": "ana", "body": "ok"}
        )
        client.post(f"/tickets/{tid}/resolve", json={"agent": "ana"})
        client.post(f"/tickets/{tid}/satisfaction", json={"score": 3 + n % 3})
    client.post("/tickets", json=ticket_body(customer_id="c-open", channel="email"))
    service.catch_up()
    kpis = client.get("/kpis").json()
    assert kpis["tickets"] == 4
    assert kpis["first_response_s"] == {"p50": 30.0, "p90": 60.0}
    assert kpis["resolution_rate"] == 0.75 and kpis["sla_breach_rate"] == 0.0
    assert kpis["satisfaction"] == 4.0 and kpis["ratings"] == 3
    assert kpis["by_channel"]["chat"]["tickets"] == 3 and kpis["by_agent"]["ana"]["tickets"] == 3
    bad = client.get("/kpis", params={"from": "2026-13-01"})
    assert bad.status_code == 422


def test_templates_and_compensation_standards_are_published(client):
    found = client.get("/templates", params={"type": "order_status"}).json()
    assert [t["id"] for t in found] == ["where-is-my-order"]
    assert found[0]["placeholders"] == ["carrier", "order_id", "order_status", "tracking_number"]
    assert [t["id"] for t in client.get("/templates", params={"q": "money back"}).json()] == [
        "refund-timing"
    ]
    standards = client.get("/compensation-standards").json()
    assert standards["return_window_days"] == 7
    assert {s["reason"] for s in standards["standards"]} == {
        "damaged",
        "wrong_item",
        "not_as_described",
        "changed_mind",
    }


def test_a_return_through_the_api_from_request_to_receipt(service, service_feed, client):
    order = service_feed.delivered_order("cust-ret")
    asked = client.post(
        "/returns",
        json={
            "order_id": order.order_id,
            "lines": [{"sku": "TEE-M", "qty": 1}],
            "reason": "damaged",
            "photos": ["s3://p/1.jpg"],
        },
    )
    assert asked.status_code == 201, asked.text
    ret = asked.json()
    assert ret["status"] == "authorized" and ret["compensation"] == "damaged-in-transit"
    received = client.post(
        f"/returns/{ret['return_id']}/receipt",
        json={"lines": [{"sku": "TEE-M", "qty": 1, "condition": "resellable"}]},
    )
    assert received.status_code == 200 and received.json()["refund_amount"] == "20.00"
    service.catch_up()
    [listed] = client.get("/returns", params={"order_id": order.order_id}).json()
    assert (listed["status"], listed["refund_amount"]) == ("received", "20.00")
    # the agent looking at the return sees the customer's photos
    assert client.get(f"/returns/{ret['return_id']}").json()["photos"] == ["s3://p/1.jpg"]
    unknown = client.post(
        "/returns",
        json={"order_id": "order-x", "lines": [{"sku": "TEE-M", "qty": 1}], "reason": "damaged"},
    )
    assert unknown.status_code == 404
    too_many = client.post(
        f"/returns/{ret['return_id']}/receipt",
        json={"lines": [{"sku": "TEE-M", "qty": 3, "condition": "resellable"}]},
    )
    assert too_many.status_code == 409


def test_an_agent_escalates_by_hand_through_the_api_and_must_say_why(service, client):
    tid = client.post("/tickets", json=ticket_body(type="complaint")).json()["ticket_id"]
    for missing in ({"agent": "ana"}, {"agent": "ana", "reason": "   "}):
        refused = client.post(f"/tickets/{tid}/escalate", json=missing)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "reason"
    assert client.get(f"/tickets/{tid}").json()["level"] == "ordinary"  # nothing changed
    up = client.post(f"/tickets/{tid}/escalate", json={"agent": "ana", "reason": "legal threat"})
    assert up.status_code == 200, up.text
    assert (up.json()["level"], up.json()["queue"]) == ("difficult", "escalations")
    top = client.post(f"/tickets/{tid}/escalate", json={"agent": "bo", "reason": "still angry"})
    assert (top.json()["level"], top.json()["specialist"]) == ("extreme", "mira.complaints")
    steps = [
        s for s in client.get(f"/tickets/{tid}").json()["timeline"] if s["event"] == "Escalated"
    ]
    assert [(s["to_level"], s["reason"], s["by"], s["automatic"]) for s in steps] == [
        ("difficult", "legal threat", "ana", False),
        ("extreme", "still angry", "bo", False),
    ]
    beyond = client.post(f"/tickets/{tid}/escalate", json={"agent": "bo", "reason": "more"})
    assert beyond.status_code == 409 and "last level" in beyond.json()["detail"]
    unknown = "00000000-0000-0000-0000-000000000000"
    gone = client.post(f"/tickets/{unknown}/escalate", json={"agent": "ana", "reason": "why"})
    assert gone.status_code == 404


def test_the_queue_view_filters_by_level(service, client):
    for customer, ups in (("c-ord", 0), ("c-diff", 1), ("c-ext", 2)):
        tid = client.post("/tickets", json=ticket_body(customer_id=customer)).json()["ticket_id"]
        for _ in range(ups):
            client.post(f"/tickets/{tid}/escalate", json={"agent": "ana", "reason": "tough"})
    service.catch_up()

    def at(level):
        return [t["customer_id"] for t in client.get("/tickets", params={"level": level}).json()]

    assert (at("ordinary"), at("difficult"), at("extreme")) == (["c-ord"], ["c-diff"], ["c-ext"])
    [extreme] = client.get("/tickets", params={"level": "extreme", "status": "open"}).json()
    assert (extreme["queue"], extreme["specialist"]) == ("specialists", "sam.specialist")
    assert client.get("/tickets", params={"level": "urgent"}).status_code == 422


def test_kpis_per_type_and_only_for_the_days_asked(service, client, clock):
    def answered(kind, customer, wait):
        tid = client.post("/tickets", json=ticket_body(type=kind, customer_id=customer)).json()[
            "ticket_id"
        ]
        clock.advance(timedelta(seconds=wait))
        client.post(
            f"/tickets/{tid}/messages", json={"author": "agent", "agent": "ana", "body": "ok"}
        )
        return tid

    first_day = clock.now().date().isoformat()  # 2026-01-01
    client.post(f"/tickets/{answered('delivery', 'c-d1', 20)}/resolve", json={"agent": "ana"})
    answered("delivery", "c-d2", 40)
    answered("payment", "c-p1", 100)  # past the chat's 90 s: a breach
    clock.advance(timedelta(days=2))
    last_day = clock.now().date().isoformat()  # 2026-01-03
    answered("payment", "c-p2", 10)
    service.catch_up()

    early = client.get("/kpis", params={"from": first_day, "to": first_day}).json()
    assert (early["from"], early["to"], early["tickets"]) == (first_day, first_day, 3)
    assert set(early["by_type"]) == {"delivery", "payment"}
    delivery, payment = early["by_type"]["delivery"], early["by_type"]["payment"]
    assert (delivery["tickets"], delivery["first_response_s"]) == (2, {"p50": 20.0, "p90": 40.0})
    assert (delivery["resolution_rate"], delivery["sla_breach_rate"]) == (0.5, 0.0)
    assert (payment["tickets"], payment["sla_breach_rate"]) == (1, 1.0)
    late = client.get("/kpis", params={"from": last_day, "to": last_day}).json()
    assert late["tickets"] == 1 and late["by_type"]["payment"]["first_response_s"]["p50"] == 10.0
    assert client.get("/kpis", params={"from": first_day, "to": last_day}).json()["tickets"] == 4
    backwards = client.get("/kpis", params={"from": last_day, "to": first_day})
    assert backwards.status_code == 422 and "is after to" in backwards.text
