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
#: Enough customers that ordinary traffic never looks like a burst to risk's velocity
#: rules (at 5 orders/s a customer orders about once in 17 minutes).
CUSTOMERS = tuple(f"cust-{n:05d}" for n in range(1, 5001))
#: (name, street, city, postcode, country): each customer lives at one of these streets,
#: at a house number of their own, so addresses are as distinct as customers.
_STREETS = (
    ("Ada Lovelace", "Hauptstr.", "Berlin", "10115", "DE"),
    ("Blaise Pascal", "Rue de Rivoli", "Paris", "75004", "FR"),
    ("Edsger Dijkstra", "Prinsengracht", "Amsterdam", "1016 GV", "NL"),
    ("Grace Hopper", "Downing Lane", "London", "SW1A 2AA", "GB"),
    ("Kurt Goedel", "Ringstr.", "Wien", "1010", "AT"),
)


def _address(n: int) -> dict[str, str]:
    name, street, city, postcode, country = _STREETS[n % len(_STREETS)]
    number = n // len(_STREETS) + 1
    line1 = f"{number} {street}" if country in ("FR", "GB") else f"{street} {number}"
    return {"name": name, "line1": line1, "city": city, "postal_code": postcode, "country": country}


#: ADDRESSES[i] is where CUSTOMERS[i] lives.
ADDRESSES: tuple[dict[str, str], ...] = tuple(_address(n) for n in range(len(CUSTOMERS)))
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
