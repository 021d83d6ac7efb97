"""The inventory service through its HTTP API: the same behaviour on SQLite and PostgreSQL.

Each test gets a service of its own on a fresh store (see conftest `store`), a manual
clock, and no background tasks: reservations come from the order policies applied
directly (`feed`), and the read models are caught up explicitly before reading them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

# -- helpers ------------------------------------------------------------------------


def receive(
    client: TestClient, sku: str, qty: int, warehouse: str = "berlin", serials: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "warehouse": warehouse, "qty": qty}
    if serials is not None:
        body["serials"] = serials
    response = client.post("/stock/receipts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stock_of(client: TestClient, sku: str) -> dict[str, Any]:
    response = client.get(f"/stock/{sku}")
    assert response.status_code == 200, response.text
    return response.json()


def warehouses(stock: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        w["warehouse"]: (w["on_hand"], w["reserved"], w["available"]) for w in stock["warehouses"]
    }


def set_policy(client: TestClient, sku: str, **policy: Any) -> dict[str, Any]:
    response = client.put(f"/stock/{sku}/policy", json=policy)
    assert response.status_code == 200, response.text
    return response.json()


def refused_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["loc"][-1] for error in response.json()["detail"]]


def read(service: Any, client: TestClient, path: str) -> Any:
    service.catch_up()
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


# -- receipts -----------------------------------------------------------------------------


def test_a_receipt_adds_units_on_hand_and_answers_201(client, sku):
    receive(client, sku, 5)

    body = receive(client, sku, 3, warehouse="hamburg")

    assert (body["sku"], body["on_hand"], body["reserved"], body["available"]) == (sku, 8, 0, 8)
    assert warehouses(body) == {"berlin": (5, 0, 5), "hamburg": (3, 0, 3)}
    assert stock_of(client, sku) == body


def test_a_receipt_of_zero_units_is_refused(client, sku):
    response = client.post("/stock/receipts", json={"sku": sku, "warehouse": "berlin", "qty": 0})

    assert refused_fields(response) == ["qty"]
    assert client.get(f"/stock/{sku}").status_code == 404


def test_a_receipt_whose_serial_count_differs_from_its_qty_is_refused_naming_serials(client, sku):
    response = client.post(
        "/stock/receipts",
        json={"sku": sku, "warehouse": "berlin", "qty": 3, "serials": ["SN-A", "SN-B"]},
    )

    assert refused_fields(response) == ["serials"]
    assert "2 serial numbers for 3 units" in response.json()["detail"][0]["msg"]
    assert client.get(f"/stock/{sku}").status_code == 404


def test_a_receipt_repeating_a_known_serial_number_is_refused(client, sku, new_id):
    serial = new_id("SN")
    receive(client, sku, 1, serials=[serial])

    response = client.post(
        "/stock/receipts", json={"sku": sku, "warehouse": "hamburg", "qty": 1, "serials": [serial]}
    )

    assert refused_fields(response) == ["serials"]
    assert stock_of(client, sku)["on_hand"] == 1


def test_a_receipt_with_an_unknown_field_is_refused(client, sku):
    response = client.post(
        "/stock/receipts",
        json={"sku": sku, "warehouse": "berlin", "qty": 1, "price": "9.99"},
    )

    assert refused_fields(response) == ["price"]
    assert client.get(f"/stock/{sku}").status_code == 404


# -- counts ---------------------------------------------------------------------------------


def test_a_count_sets_on_hand_to_the_counted_units(client, sku):
    receive(client, sku, 10)

    response = client.post(
        "/stock/adjustments",
        json={"sku": sku, "warehouse": "berlin", "counted": 7, "reason": "cycle count"},
    )

    assert response.status_code == 200, response.text
    assert warehouses(response.json()) == {"berlin": (7, 0, 7)}


def test_a_count_below_the_reserved_units_is_refused_naming_counted(client, feed, sku):
    receive(client, sku, 10)
    feed.place({sku: 4})

    response = client.post(
        "/stock/adjustments",
        json={"sku": sku, "warehouse": "berlin", "counted": 3, "reason": "cycle count"},
    )

    assert refused_fields(response) == ["counted"]
    assert response.json()["detail"][0]["loc"] == ["body", "counted"]
    assert warehouses(stock_of(client, sku)) == {"berlin": (10, 4, 6)}


def test_a_count_of_an_unknown_sku_is_not_found(client, sku):
    response = client.post(
        "/stock/adjustments",
        json={"sku": sku, "warehouse": "berlin", "counted": 3, "reason": "cycle count"},
    )

    assert response.status_code == 404
    assert sku in response.json()["detail"]


# -- transfers ------------------------------------------------------------------------------


def test_transferred_units_are_in_transit_until_the_receipt(client, sku):
    receive(client, sku, 10)

    response = client.post(
        "/stock/transfers",
        json={"sku": sku, "from_warehouse": "berlin", "to_warehouse": "hamburg", "qty": 4},
    )

    assert response.status_code == 201, response.text
    transfer_id = response.json()["transfer_id"]
    moving = stock_of(client, sku)
    assert (moving["on_hand"], moving["in_transit"], moving["available"]) == (6, 4, 6)
    assert warehouses(moving) == {"berlin": (6, 0, 6)}

    arrived = client.post(f"/stock/transfers/{transfer_id}/receipt", json={"sku": sku})

    assert arrived.status_code == 200, arrived.text
    assert (arrived.json()["on_hand"], arrived.json()["in_transit"]) == (10, 0)
    assert warehouses(stock_of(client, sku)) == {"berlin": (6, 0, 6), "hamburg": (4, 0, 4)}


def test_a_transfer_is_received_only_once(client, sku):
    receive(client, sku, 10)
    transfer = client.post(
        "/stock/transfers",
        json={"sku": sku, "from_warehouse": "berlin", "to_warehouse": "hamburg", "qty": 4},
    ).json()
    path = f"/stock/transfers/{transfer['transfer_id']}/receipt"
    assert client.post(path, json={"sku": sku}).status_code == 200

    again = client.post(path, json={"sku": sku})

    assert again.status_code == 404
    assert stock_of(client, sku)["on_hand"] == 10


def test_a_transfer_within_one_warehouse_or_of_reserved_units_is_refused(client, feed, sku):
    receive(client, sku, 10)
    feed.place({sku: 7})

    same = client.post(
        "/stock/transfers",
        json={"sku": sku, "from_warehouse": "berlin", "to_warehouse": "berlin", "qty": 1},
    )
    reserved = client.post(
        "/stock/transfers",
        json={"sku": sku, "from_warehouse": "berlin", "to_warehouse": "hamburg", "qty": 4},
    )

    assert refused_fields(same) == ["to_warehouse"]
    assert refused_fields(reserved) == ["qty"]
    assert stock_of(client, sku)["in_transit"] == 0


# -- reading stock --------------------------------------------------------------------------


def test_the_stock_of_an_unknown_sku_is_not_found(client, sku):
    response = client.get(f"/stock/{sku}")

    assert response.status_code == 404
    assert sku in response.json()["detail"]


def test_the_stock_list_shows_every_sku_with_its_totals(service, client, feed, new_id):
    first, second = sorted([new_id("SKU"), new_id("SKU")])
    receive(client, first, 5)
    receive(client, first, 2, warehouse="hamburg")
    receive(client, second, 3)
    feed.place({first: 4})

    listed = read(service, client, "/stock")

    assert listed == [
        {"sku": first, "on_hand": 7, "reserved": 4, "available": 3},
        {"sku": second, "on_hand": 3, "reserved": 0, "available": 3},
    ]
    assert read(service, client, "/stock?limit=1&offset=1") == listed[1:]


def test_the_stock_list_below_safety_shows_only_skus_under_their_safety_stock(
    service, client, feed, new_id
):
    low, fine = new_id("SKU"), new_id("SKU")
    receive(client, low, 10)
    receive(client, fine, 10)
    set_policy(client, low, safety_stock=5)
    set_policy(client, fine, safety_stock=5)
    feed.place({low: 6, fine: 5})

    listed = read(service, client, "/stock?below_safety=true")

    assert listed == [{"sku": low, "safety_stock": 5, "on_hand": 10, "reserved": 6, "available": 4}]
    assert stock_of(client, low)["below_safety"] is True
    assert stock_of(client, fine)["below_safety"] is False


def test_a_sku_leaves_the_below_safety_list_when_it_recovers(service, client, feed, sku):
    receive(client, sku, 10)
    set_policy(client, sku, safety_stock=5)
    order_id = feed.place({sku: 6})
    assert [row["sku"] for row in read(service, client, "/stock?below_safety=true")] == [sku]

    feed.cancel(order_id)

    assert read(service, client, "/stock?below_safety=true") == []


# -- policy and reorder advice ---------------------------------------------------------------


def test_a_policy_is_stored_and_shown_with_the_stock(client, sku):
    receive(client, sku, 10)

    body = set_policy(
        client, sku, safety_stock=3, lead_time_days=10, purchase_limit=2, presale_allowance=5
    )

    expected = {
        "safety_stock": 3,
        "lead_time_days": 10,
        "purchase_limit": 2,
        "presale_allowance": 5,
        "presold": 0,
        "below_safety": False,
    }
    assert {k: body[k] for k in expected} == expected
    assert {k: stock_of(client, sku)[k] for k in expected} == expected


def test_a_policy_for_a_sku_not_yet_received_registers_it(client, sku):
    body = set_policy(client, sku, safety_stock=2)

    assert (body["on_hand"], body["below_safety"]) == (0, True)
    assert stock_of(client, sku)["safety_stock"] == 2


def test_a_policy_with_a_negative_safety_stock_is_refused(client, sku):
    receive(client, sku, 1)

    response = client.put(f"/stock/{sku}/policy", json={"safety_stock": -1})

    assert refused_fields(response) == ["safety_stock"]
    assert stock_of(client, sku)["safety_stock"] == 0


def test_the_presale_allowance_cannot_drop_below_the_units_already_presold(client, feed, sku):
    receive(client, sku, 1)
    set_policy(client, sku, presale_allowance=5)
    feed.place({sku: 4})  # 1 on hand, 3 presold

    response = client.put(f"/stock/{sku}/policy", json={"presale_allowance": 2})

    assert refused_fields(response) == ["presale_allowance"]
    assert (stock_of(client, sku)["presale_allowance"], stock_of(client, sku)["presold"]) == (5, 3)


def test_reorder_suggestions_list_skus_below_safety_stock_with_a_quantity(
    service, client, feed, new_id
):
    low, fine = new_id("SKU"), new_id("SKU")
    receive(client, low, 30)
    receive(client, fine, 30)
    set_policy(client, low, safety_stock=5, lead_time_days=14)
    set_policy(client, fine, safety_stock=5, lead_time_days=14)
    feed.place({low: 28, fine: 1})  # low: 2 available, 1.0 a day

    suggestions = read(service, client, "/reorder-suggestions")

    assert len(suggestions) == 1
    suggestion = suggestions[0]
    assert suggestion["sku"] == low
    # 1.0 a day * 14 days + 5 safety - 2 available
    assert (suggestion["quantity"], suggestion["daily_velocity"]) == (17, 1.0)
    assert (suggestion["lead_time_days"], suggestion["safety_stock"]) == (14, 5)


def test_a_recovered_sku_has_no_reorder_suggestion(service, client, feed, sku):
    receive(client, sku, 10)
    set_policy(client, sku, safety_stock=5)
    feed.place({sku: 8})
    assert [s["sku"] for s in read(service, client, "/reorder-suggestions")] == [sku]

    receive(client, sku, 20)

    assert read(service, client, "/reorder-suggestions") == []


# -- reconciliation -------------------------------------------------------------------------


def test_reconciliation_shows_no_difference_after_reservations_releases_and_commits(
    service, client, feed, new_id
):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    receive(client, shirts, 5)
    receive(client, shirts, 5, warehouse="hamburg")
    receive(client, mugs, 4)
    set_policy(client, mugs, presale_allowance=3)
    feed.place({shirts: 7, mugs: 2})
    cancelled = feed.place({shirts: 1, mugs: 1})
    shipped = feed.place({shirts: 2})
    feed.place({mugs: 3})  # 1 on hand, 2 presale
    feed.place({shirts: 50})  # rejected
    feed.cancel(cancelled)
    feed.ship(shipped, {shirts: 2})

    rows = {row["sku"]: row for row in read(service, client, "/stock/reconciliation")}

    assert rows == {
        shirts: {"sku": shirts, "reserved": 7, "open_reservations": 7, "difference": 0},
        mugs: {"sku": mugs, "reserved": 3, "open_reservations": 3, "difference": 0},
    }
    assert read(service, client, "/stock/reconciliation?only_differences=true") == []
    assert stock_of(client, shirts)["reserved"] == 7
    assert (stock_of(client, mugs)["reserved"], stock_of(client, mugs)["presold"]) == (3, 2)


def test_moved_holds_show_in_the_stock_per_warehouse_and_reconcile_before_and_after_a_rebuild(
    service, client, feed, new_id
):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    receive(client, shirts, 5)
    receive(client, shirts, 5, warehouse="hamburg")
    receive(client, mugs, 2, warehouse="hamburg")
    set_policy(client, mugs, presale_allowance=2)
    feed.place({mugs: 2})  # every mug on hand
    spread = feed.place({shirts: 7, mugs: 1})  # shirts: 5 berlin + 2 hamburg; mugs: presale
    receive(client, mugs, 1, warehouse="hamburg")  # fills the presale: the mug is hamburg's
    receive(client, shirts, 3)
    receive(client, mugs, 3)
    refused = feed.place({mugs: 2})  # berlin (3 free there)
    feed.allocate(refused, "hamburg")  # 0 free there: refused, nothing moves

    feed.allocate(spread, "berlin")  # shirts: 2 from hamburg; mug: 1 from hamburg

    assert warehouses(stock_of(client, shirts)) == {"berlin": (8, 7, 1), "hamburg": (5, 0, 5)}
    assert warehouses(stock_of(client, mugs)) == {"berlin": (3, 3, 0), "hamburg": (3, 2, 1)}
    reservation = client.get(f"/reservations/{spread}").json()
    assert (reservation["warehouse"], reservation["status"]) == ("berlin", "held")
    assert sorted((ln["sku"], ln["warehouse"], ln["qty"]) for ln in reservation["lines"]) == sorted(
        [(shirts, "berlin", 7), (mugs, "berlin", 1)]
    )
    assert read(service, client, "/stock/reconciliation?only_differences=true") == []
    before = read(service, client, "/stock")
    service.rebuild()
    assert read(service, client, "/stock") == before
    assert read(service, client, "/stock/reconciliation?only_differences=true") == []


def test_the_read_model_agrees_with_the_stock_after_a_rebuild(service, client, feed, sku):
    receive(client, sku, 6)
    order_id = feed.place({sku: 2})
    feed.ship(order_id, {sku: 2})
    before = read(service, client, "/stock")

    service.rebuild()

    assert read(service, client, "/stock") == before
    assert before == [{"sku": sku, "on_hand": 4, "reserved": 0, "available": 4}]


# -- serial numbers -------------------------------------------------------------------------


def test_a_serial_number_history_follows_the_unit_from_receipt_to_shipment(
    service, client, feed, sku, new_id
):
    sold, kept = new_id("SN"), new_id("SN")
    receive(client, sku, 2, serials=[sold, kept])
    cancelled = feed.place({sku: 2})
    feed.cancel(cancelled)
    shipped = feed.place({sku: 1})
    feed.ship(shipped, {sku: 1})

    sold_history = read(service, client, f"/serials/{sold}")
    kept_history = read(service, client, f"/serials/{kept}")

    def story(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["sku"], e["event"], e["warehouse"], e["order_id"]) for e in entries]

    assert story(sold_history) == [
        (sku, "received", "berlin", None),
        (sku, "reserved", "berlin", cancelled),
        (sku, "released", "berlin", cancelled),
        (sku, "reserved", "berlin", shipped),
        (sku, "shipped", "berlin", shipped),
    ]
    assert story(kept_history) == [
        (sku, "received", "berlin", None),
        (sku, "reserved", "berlin", cancelled),
        (sku, "released", "berlin", cancelled),
    ]
    assert all(entry["at"] for entry in sold_history + kept_history)


def test_the_history_of_an_unknown_serial_number_is_not_found(service, client, new_id):
    service.catch_up()

    response = client.get(f"/serials/{new_id('SN')}")

    assert response.status_code == 404


# -- reservations ---------------------------------------------------------------------------


def test_a_reservation_shows_the_decision_for_its_order(client, feed, sku, new_id):
    receive(client, sku, 3)
    held = feed.place({sku: 2})
    rejected = feed.place({sku: 5})
    unknown = new_id("SKU")
    rejected_unknown = feed.place({unknown: 1})

    held_body = client.get(f"/reservations/{held}").json()
    rejected_body = client.get(f"/reservations/{rejected}").json()

    assert held_body == {
        "order_id": held,
        "status": "held",
        "lines": [{"sku": sku, "warehouse": "berlin", "qty": 2, "serials": []}],
        "short_lines": [],
        "warehouse": None,
        "shipment_id": None,
    }
    assert rejected_body == {
        "order_id": rejected,
        "status": "rejected",
        "lines": [],
        "short_lines": [
            {"sku": sku, "requested": 5, "available": 1, "reason": "insufficient_stock"}
        ],
        "warehouse": None,
        "shipment_id": None,
    }
    assert client.get(f"/reservations/{rejected_unknown}").json()["short_lines"][0]["reason"] == (
        "unknown_sku"
    )


def test_a_reservation_shows_whether_it_was_released_or_committed(client, feed, sku):
    receive(client, sku, 5)
    cancelled, shipped = feed.place({sku: 1}), feed.place({sku: 1})
    feed.cancel(cancelled)
    feed.ship(shipped, {sku: 1})

    assert client.get(f"/reservations/{cancelled}").json()["status"] == "released"
    assert client.get(f"/reservations/{shipped}").json()["status"] == "committed"


def test_the_reservation_of_an_unknown_order_is_not_found(client, new_id):
    response = client.get(f"/reservations/{new_id('order')}")

    assert response.status_code == 404


def test_a_sku_with_a_slash_is_refused_since_it_could_never_be_looked_up(client):
    refused = client.post("/stock/receipts", json={"sku": "TEE/M", "warehouse": "berlin", "qty": 1})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "sku"
    assert client.get("/stock").json() == []
