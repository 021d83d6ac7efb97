"""Events on `orders.private.v1`, produced by the order service, keyed by order id: the
personal part of an order. Read only by the services that must reach the person
(fulfilment prints labels, the service desk answers the customer); never by analysts."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Strict


class RecipientAddress(Strict):
    name: str
    line1: str
    line2: str | None = None
    city: str
    postal_code: str
    country: str = Field(description="ISO 3166-1 alpha-2")
    phone: str | None = Field(None, description="for the carrier (E.164 or as typed)")


class OrderRecipientRecorded(Strict):
    """Who receives an order and how to reach them; published with every `OrderPlaced`
    (same order id, same partition number on this topic)."""

    order_id: str
    customer_id: str
    shipping_address: RecipientAddress
    email: str | None = Field(None, description="the customer's contact address")
    address_fingerprint: str = Field(
        description="the same value as OrderPlaced.destination.address_fingerprint"
    )
    placed_at: AwareDatetime
    ip_address: str | None = Field(None, description="the client's IP address, as the shop saw it")
