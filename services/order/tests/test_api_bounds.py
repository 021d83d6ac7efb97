"""What fuzzing found in the order API: each was a 500 or an answer the OpenAPI document
did not declare; now each is a 422 naming the field, and nothing is stored."""

from __future__ import annotations


def test_an_offset_too_large_for_the_database_is_refused_naming_it(client):
    response = client.get(
        "/orders",
        params={"status": "awaiting_payment", "offset": "32253093929466429440", "limit": 1},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_an_order_worth_more_than_any_consumer_can_hold_is_refused(client, order_body):
    body = order_body(lines=[{"sku": "GOLD", "qty": 200, "unit_price": "9999999999.99"}])

    response = client.post("/orders", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "lines"]
    assert client.get("/orders/counts").json() == {}


def test_a_body_that_is_not_text_is_a_422_about_the_body(client):
    response = client.post(
        "/orders", content=b"\x08\xff\xfe", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_counts_and_amounts_must_be_json_numbers_as_documented(client, order_body):
    as_bool = order_body(lines=[{"sku": "A", "qty": True, "unit_price": "1.00"}])
    spaced = order_body(lines=[{"sku": "A", "qty": 1, "unit_price": " 1.00"}])
    for body, field in ((as_bool, "qty"), (spaced, "unit_price")):
        response = client.post("/orders", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == field


def test_a_wrong_method_lists_every_method_of_the_path(client):
    response = client.delete("/orders")
    assert response.status_code == 405
    assert {"GET", "POST"} <= set(response.headers["allow"].split(", "))


def test_the_schema_lists_the_configured_channels_and_payment_methods(build_service):
    from fastapi.testclient import TestClient

    service = build_service(rules={"channels": ["shop", "kiosk"], "payment_methods": ["cash"]})
    schema = TestClient(service.http).get("/openapi.json").json()
    place = schema["components"]["schemas"]["PlaceOrderIn"]["properties"]
    assert place["channel"]["enum"] == ["kiosk", "shop"]
    assert ["cash"] in [o.get("enum") for o in place["payment_method"]["anyOf"]]
    links = schema["paths"]["/orders"]["post"]["responses"]["201"]["links"]
    assert {"GetOrder", "PayOrder", "CancelOrder", "RefundOrder", "GetOrderHistory"} <= set(links)
