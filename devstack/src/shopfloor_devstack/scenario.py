"""The simulated shop's scenario: what it sells and at what price, its customers and their
addresses, its warehouses and carriers. Make-believe data every part shares; the rules of
the business (channels, coupons, statuses, stock policy) stay with the services."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal

from shopfloor_devstack.parts import World

CATALOGUE: dict[str, Decimal] = {
    "MUG-WHITE": Decimal("8.50"),
    "MUG-BLACK": Decimal("8.90"),
    "TEE-S": Decimal("19.00"),
    "TEE-M": Decimal("19.00"),
    "TEE-L": Decimal("21.00"),
    "HOODIE-M": Decimal("49.90"),
    "CAP-RED": Decimal("14.95"),
    "SOCKS-3P": Decimal("9.99"),
    "BOTTLE-750": Decimal("24.50"),
    "TOTE-BAG": Decimal("12.00"),
    "POSTER-A2": Decimal("15.00"),
    "STICKERS-10": Decimal("4.99"),
}
CUSTOMERS = tuple(f"cust-{n:04d}" for n in range(1, 201))
ADDRESSES: tuple[dict[str, str], ...] = tuple(
    dict(zip(("name", "line1", "city", "postal_code", "country"), fields, strict=True))
    for fields in (
        ("Ada Lovelace", "Hauptstr. 1", "Berlin", "10115", "DE"),
        ("Blaise Pascal", "12 Rue de Rivoli", "Paris", "75004", "FR"),
        ("Edsger Dijkstra", "Prinsengracht 263", "Amsterdam", "1016 GV", "NL"),
        ("Grace Hopper", "10 Downing Lane", "London", "SW1A 2AA", "GB"),
        ("Kurt Goedel", "Ringstr. 7", "Wien", "1010", "AT"),
    )
)
WAREHOUSES = ("WH-BER", "WH-AMS")
CARRIERS = ("DHL", "DPD", "GLS", "UPS", "PostNL")


def world(rate: float, urls: Mapping[str, str], seed: int | None = None) -> World:
    return World(
        catalogue=CATALOGUE,
        customers=CUSTOMERS,
        addresses=ADDRESSES,
        warehouses=WAREHOUSES,
        carriers=CARRIERS,
        rate=rate,
        urls=dict(urls),
        run_id=uuid.uuid4().hex[:12],
        seed=seed,
    )
