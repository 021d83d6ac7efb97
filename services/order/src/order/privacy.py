"""What analysts may see of an address: country, a postal-code prefix, a region, and a
keyed fingerprint (HMAC) that is stable per address but reveals nothing without the
order service's secret key. The personal rest goes to `orders.private.v1` only."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shopfloor_runtime.store import SqlStore

from order.settings import PrivacySettings

log = logging.getLogger(__name__)

#: The row of `service_secrets` that holds a generated key when none is configured.
GENERATED_KEY = "privacy.address_key"
_PUNCTUATION = re.compile(r"[.,;:'\"()\[\]/#-]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """How two spellings of one address become one: Unicode-compatible forms, case,
    punctuation and runs of whitespace do not count ("Hauptstr. 1" = "hauptstr 1")."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", folded)).strip()


def postal_prefix(postal_code: str) -> str:
    """The first two characters of the postal code, upper case, spaces removed."""
    return "".join(postal_code.split()).upper()[:2]


def region(country: str, postal_code: str) -> str:
    """Country and the postal code's first character: "DE-1" is Berlin to Brandenburg;
    coarse enough to name no one, fine enough for sales by region."""
    return f"{country.upper()}-{postal_prefix(postal_code)[:1]}"


@dataclass(frozen=True)
class AddressFingerprints:
    """HMAC-SHA256 of the normalised street address (lines, city, postal code,
    country; not the recipient's name or phone: many names at one address is exactly
    what velocity checks and blacklists look for)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("the address fingerprint key must be at least 16 bytes")

    def of(self, address: Mapping[str, Any]) -> str:
        postcode = "".join(str(address.get("postal_code") or "").split())
        parts = [
            normalise(address.get("line1")),
            normalise(address.get("line2")),
            normalise(address.get("city")),
            normalise(postcode),
            normalise(address.get("country")),
        ]
        message = "\x1f".join(parts).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


def address_key(settings: PrivacySettings, sql: SqlStore) -> bytes:
    """The configured key; without one, a random key generated once and kept in the
    service's own store (every process of the service shares the store, so all of
    them fingerprint alike, across restarts). A warning says so: on a shared store in
    production the key belongs in a secret manager, where it can be rotated."""
    if settings.address_key is not None:
        return settings.address_key.get_secret_value().encode()
    key = _stored_key(sql)
    if sql.dialect == "postgres":
        log.warning(
            "ORDER_PRIVACY__ADDRESS_KEY is not set: address fingerprints use a key "
            "generated and kept in the order database. Set it from a secret manager in "
            "production (32+ random bytes); changing it changes every fingerprint."
        )
    else:
        log.info("address fingerprints: using the development key kept in the SQLite store")
    return key


def _stored_key(sql: SqlStore) -> bytes:
    with sql.transaction() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS service_secrets "
            "(name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        # Two processes starting at once: the first insert wins, both read the winner.
        cur.execute(
            "INSERT INTO service_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (GENERATED_KEY, secrets.token_hex(32)),
        )
        cur.execute("SELECT value FROM service_secrets WHERE name = ?", (GENERATED_KEY,))
        return str(cur.fetchone()[0]).encode()
