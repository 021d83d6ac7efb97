"""What leaves the order service about a person: on orders.v1 a destination without a
person in it; the recipient, phone and e-mail only on orders.private.v1; address
fingerprints stable per address and useless without the key."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import pytest
from order.bootstrap import OrderService
from order.privacy import AddressFingerprints, postal_prefix, region
from shopfloor_contracts.privacy import PERSONAL_FIELDS
from shopfloor_runtime.chain import PartitionChains
from shopfloor_runtime.relay import RelayState

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "Hauptstr. 1",
    "line2": None,
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


def fingerprints(key: bytes = b"k" * 32) -> AddressFingerprints:
    return AddressFingerprints(key)


def test_the_same_address_typed_differently_has_one_fingerprint():
    retyped = {**ADDRESS, "line1": "  HAUPTSTR 1 ", "city": "berlin", "postal_code": "101 15"}
    other_recipient = {**ADDRESS, "name": "Charles Babbage", "phone": "+49 30 1234"}
    assert fingerprints().of(retyped) == fingerprints().of(ADDRESS)
    assert fingerprints().of(other_recipient) == fingerprints().of(ADDRESS)


def test_another_address_or_another_key_gives_another_fingerprint():
    assert fingerprints().of({**ADDRESS, "line1": "Hauptstr. 2"}) != fingerprints().of(ADDRESS)
    assert fingerprints(b"x" * 32).of(ADDRESS) != fingerprints().of(ADDRESS)


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        AddressFingerprints(b"short")


def test_region_and_postal_prefix_follow_the_documented_rule():
    assert (postal_prefix("10115"), region("DE", "10115")) == ("10", "DE-1")
    assert (postal_prefix("sw1a 1aa"), region("GB", "sw1a 1aa")) == ("SW", "GB-S")


def _place(client: Any, order_body: Any, customer: str | None = None, **address: Any) -> Any:
    body = order_body(customer_email="ada@example.org")
    body["customer_id"] = customer or body["customer_id"]
    body["shipping_address"].update(address)
    response = client.post("/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _published(service: Any, order_id: str) -> list[Any]:
    return [
        out
        for event in service.app.events.get(UUID(order_id))
        for out in service.relay.translate(event)
    ]


def _paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            found |= {f"{prefix}{key}"} | _paths(item, f"{prefix}{key}.")
        return found
    if isinstance(value, list):
        return set().union(*(_paths(item, prefix) for item in value)) if value else set()
    return set()


def test_a_placement_publishes_the_person_only_on_the_private_topic(client, service, order_body):
    order = _place(client, order_body, phone="+49 30 123456")

    placed, recipient = _published(service, order["id"])

    assert (placed.topic, type(placed.payload).__name__) == ("orders.v1", "OrderPlaced")
    public = placed.payload.model_dump(mode="json")
    assert {p.rsplit(".", 1)[-1] for p in _paths(public)} & PERSONAL_FIELDS == set()
    assert "Ada" not in json.dumps(public) and "Hauptstrasse" not in json.dumps(public)
    assert public["destination"]["country"] == "DE"
    assert (public["destination"]["region"], public["destination"]["postal_prefix"]) == (
        "DE-1",
        "10",
    )
    assert (recipient.topic, recipient.key) == ("orders.private.v1", order["id"])
    private = recipient.payload
    assert private.shipping_address.name == "Ada Lovelace"
    assert private.shipping_address.phone == "+49 30 123456"
    assert private.email == "ada@example.org"
    assert private.address_fingerprint == placed.payload.destination.address_fingerprint


def test_the_order_itself_still_shows_its_owner_the_full_address(client, order_body):
    order = _place(client, order_body, phone="+49 30 123456")

    shown = client.get(f"/orders/{order['id']}").json()

    assert shown["shipping_address"]["name"] == "Ada Lovelace"
    assert shown["shipping_address"]["phone"] == "+49 30 123456"
    assert shown["customer_email"] == "ada@example.org"


def test_the_history_shows_the_public_form_of_a_placement(client, order_body):
    order = _place(client, order_body)

    [placed] = client.get(f"/orders/{order['id']}/history").json()

    assert placed["event_type"] == "OrderPlaced" and "destination" in placed["payload"]
    assert "shipping_address" not in placed["payload"]


def test_without_a_configured_key_one_is_generated_once_and_kept(
    build_service, service, client, order_body
):
    order = _place(client, order_body)
    restarted = build_service()

    [first, *_] = _published(service, order["id"])
    [again, *_] = _published(restarted, order["id"])
    assert first.payload.destination == again.payload.destination


def test_a_configured_key_is_the_one_used(make_service, client, order_body):
    order = _place(client, order_body)
    keyed = make_service(OrderService, privacy={"address_key": "k" * 32})

    [placed, *_] = _published(keyed, order["id"])
    expected = fingerprints().of({**ADDRESS, "line1": "Hauptstrasse 1"})
    assert placed.payload.destination.address_fingerprint == expected


class _Producer:
    """Records what the relay sends; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, dict[str, Any]]] = []

    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> Any:
        self.sent.append((topic, partition, json.loads(value)))

        async def acked() -> None:
            return None

        return acked()


async def test_the_relay_chains_each_topic_on_its_own(client, service, order_body):
    ids = [_place(client, order_body, f"c-{i}", line1=f"Street {i}")["id"] for i in range(12)]
    producer, relay = _Producer(), service.relay
    relay._producer = producer
    relay.state = RelayState(incarnation=1, position=0, chains=PartitionChains())
    relay._checked_at = time.monotonic()  # the broker's incarnation is known: no broker here

    await relay.publish_once()

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, message in producer.sent:
        by_topic.setdefault(f"{topic}", []).append({**message, "partition": partition})
    assert set(by_topic) == {"orders.v1", "orders.private.v1"}
    for messages in by_topic.values():
        assert sorted(m["aggregate_id"] for m in messages) == sorted(ids)
        last: dict[int, int] = {}
        for m in messages:
            assert m["previous_position"] == last.get(m["partition"], 0)
            last[m["partition"]] = m["position"]
    public = {m["aggregate_id"]: m for m in by_topic["orders.v1"]}
    for private in by_topic["orders.private.v1"]:
        twin = public[private["aggregate_id"]]
        assert private["position"] == twin["position"]  # one stored event, two topics
        assert private["event_id"] != twin["event_id"]
        assert (private["schema_version"], twin["schema_version"]) == (1, 2)


# -- words people typed: in the order's history, not on orders.v1 -------------------------

TYPED = "Ada Lovelace rang from +49 30 123456"


def _public(service: Any, order_id: str, event_type: str) -> list[dict[str, Any]]:
    return [
        out.payload.model_dump(mode="json")
        for out in _published(service, order_id)
        if out.topic == "orders.v1" and type(out.payload).__name__ == event_type
    ]


def _history(client: Any, order_id: str, event_type: str) -> list[dict[str, Any]]:
    events = client.get(f"/orders/{order_id}/history").json()
    return [e["payload"] for e in events if e["event_type"] == event_type]


def _paid(client: Any, order_body: Any) -> dict[str, Any]:
    order = _place(client, order_body)
    payment = {"amount": order["total"], "method": "card", "reference": "pay-1"}
    assert client.post(f"/orders/{order['id']}/payments", json=payment).status_code == 200
    return order


@pytest.mark.parametrize("who", ["customer", "operator"])
def test_a_cancellation_s_typed_words_stay_off_the_public_topic(client, service, order_body, who):
    order = _paid(client, order_body)

    body = {"reason": who, "detail": TYPED}
    assert client.post(f"/orders/{order['id']}/cancel", json=body).status_code == 200

    [cancelled] = _public(service, order["id"], "OrderCancelled")
    said = "the customer" if who == "customer" else "an operator"
    assert cancelled["detail"] == f"cancelled by {said} (the words are in the order's history)"
    [refund] = _public(service, order["id"], "RefundIssued")
    assert refund["reason"] == f"order cancelled: {who}"  # the service's own words stay
    sent = _published(service, order["id"])
    public = [p.payload.model_dump(mode="json") for p in sent if p.topic == "orders.v1"]
    assert TYPED not in json.dumps(public)
    [kept] = _history(client, order["id"], "OrderCancelled")
    assert kept["detail"] == TYPED


def test_a_cancellation_without_words_says_who_cancelled(client, service, order_body):
    order = _place(client, order_body)

    assert client.post(f"/orders/{order['id']}/cancel", json={"reason": "customer"}).is_success

    [cancelled] = _public(service, order["id"], "OrderCancelled")
    assert cancelled["detail"] == "cancelled by the customer"


def test_a_refund_s_typed_reason_stays_off_the_public_topic(client, service, order_body):
    order = _paid(client, order_body)

    body = {"amount": "1.00", "reason": TYPED, "reference": "goodwill-1"}
    assert client.post(f"/orders/{order['id']}/refunds", json=body).status_code == 200

    [refund] = _public(service, order["id"], "RefundIssued")
    assert refund["reason"] == "by hand (the reason is in the order's history)"
    assert (refund["refund_id"], refund["amount"]) == ("goodwill-1", "1.00")
    [kept] = _history(client, order["id"], "RefundIssued")
    assert kept["reason"] == TYPED
