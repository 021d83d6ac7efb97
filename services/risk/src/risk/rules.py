"""The rules risk assesses by: thresholds, windows, per-country address shapes, which
rule is serious. A TOML file named by RISK_RULES_FILE overrides the defaults below (any
subset); the service reloads it while running when it changes, and refuses an invalid
one with one readable line, keeping the rules it had. The stream processor
(`risk.windows`) reads the same file for its windows.

Rule ids (each reason on OrderAssessed names one):
  address.missing, address.postcode, address.country   (orders.private.v1)
  address.unknown   (no recipient address within RISK_ADDRESS_WAIT_S of the placement)
  payment.amount_mismatch, payment.duplicate, payment.after_cancel   (PaymentRejected)
  large.amount, large.history
  velocity.customer, velocity.address, velocity.device   (risk.velocity.v1)
  blacklist.customer, blacklist.address, blacklist.device
  stock.shortage   (inventory's ReservationRejected)
  fulfilment.not_shipped   (paid, confirmed, not shipped in time)
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from shopfloor_runtime.rulesfile import RulesFileError as RulesFileError
from shopfloor_runtime.rulesfile import load_rules_file

Level = Literal["ordinary", "serious"]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VelocityLimit(_Rules):
    limit: int = Field(4, ge=1, description="more than this many orders in the window flags")
    window_s: int = Field(600, gt=0, le=86_400, description="the sliding window, seconds")


class VelocityRules(_Rules):
    customer: VelocityLimit = VelocityLimit()
    address: VelocityLimit = VelocityLimit()
    device: VelocityLimit = VelocityLimit()


class LargeOrderRules(_Rules):
    amount: Decimal = Field(Decimal(1000), gt=0, description="an order total above this flags")
    history_factor: Decimal = Field(
        Decimal(5), gt=1, description="... or above this many times the customer's average"
    )
    history_min_orders: int = Field(
        3, ge=1, description="the average counts once the customer has this many orders"
    )


class CountryAddress(_Rules):
    postcode: str = Field(description="regular expression the whole postal code must match")
    postcode_shape: str = Field(description='for the reason: "5 digits"')
    required: tuple[str, ...] = ("name", "line1", "city", "postal_code")

    @field_validator("postcode")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return pattern


def _countries() -> dict[str, CountryAddress]:
    c = CountryAddress
    return {
        "DE": c(postcode=r"\d{5}", postcode_shape="5 digits"),
        "AT": c(postcode=r"\d{4}", postcode_shape="4 digits"),
        "FR": c(postcode=r"\d{5}", postcode_shape="5 digits"),
        "NL": c(postcode=r"\d{4} ?[A-Z]{2}", postcode_shape='4 digits and 2 letters ("1016 AB")'),
        "GB": c(
            postcode=r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
            postcode_shape='an outward and an inward code ("SW1A 1AA")',
        ),
    }


SERIOUS_BY_DEFAULT = (
    "large.amount",
    "large.history",
    "velocity.customer",
    "velocity.address",
    "velocity.device",
    "blacklist.customer",
    "blacklist.address",
    "blacklist.device",
    "payment.duplicate",
)


class RiskRules(_Rules):
    velocity: VelocityRules = VelocityRules()
    large_order: LargeOrderRules = LargeOrderRules()
    countries: dict[str, CountryAddress] = Field(
        default_factory=_countries,
        description="address rules per country; an order to a country not listed is flagged "
        "address.country",
    )
    serious: tuple[str, ...] = Field(
        SERIOUS_BY_DEFAULT, description="rule ids that hold the order; all others are ordinary"
    )
    escalate_after_s: float = Field(
        1800, gt=0, description="a front-line case open this long goes to a specialist"
    )
    not_shipped_after_s: float = Field(
        900, gt=0, description="confirmed and not shipped this long: at risk of cancellation"
    )
    blacklist_after_fraud: int = Field(
        3, ge=1, description="customers with this many orders cancelled for fraud are blacklisted"
    )

    def level(self, rule: str) -> Level:
        return "serious" if rule in self.serious else "ordinary"


def load_rules(path: Path | None) -> RiskRules:
    """The rules from a TOML file over the defaults (None: the defaults)."""
    return load_rules_file(path, RiskRules)
