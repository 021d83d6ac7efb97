"""Which rules fire for an order, and why: a pure function of what risk knows of the
order (its facts) and the rules. Every reason names its rule, its level, a sentence for
an operator and the figures it compared, so nobody has to guess why an order was
flagged. Nothing personal goes into a reason: addresses and devices are named by
fingerprint or id, and a bad postal code by its shape, not its value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from risk.rules import RiskRules

REQUIRED_LABELS = {
    "name": "recipient name",
    "line1": "street",
    "city": "city",
    "postal_code": "postal code",
    "country": "country",
}


@dataclass(frozen=True)
class Facts:
    customer_id: str
    total: Decimal
    fingerprint: str | None = None
    device_id: str | None = None
    #: from orders.private.v1: which address fields are filled, the postal code, country
    address: Mapping[str, Any] | None = None
    #: refused payments: (reason, detail), as the order service published them
    payments: tuple[tuple[str, str], ...] = ()
    #: dimension -> {"key", "count", "window_s", "order_ids"}, from risk.velocity.v1
    velocity: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the customer's orders placed before this one: how many, and their average total
    history: tuple[int, Decimal] = (0, Decimal(0))
    #: blacklist hits: kind -> the entry's reason
    blacklisted: Mapping[str, str] = field(default_factory=dict)
    #: inventory's short lines: "SKU (3 requested, 1 available)"
    shortage: tuple[str, ...] = ()
    #: when the order was found paid and confirmed but not shipped in time
    not_shipped_since: datetime | None = None


def reason(rules: RiskRules, rule: str, detail: str, **inputs: Any) -> dict[str, Any]:
    return {
        "rule": rule,
        "level": rules.level(rule),
        "detail": detail,
        "inputs": {k: str(v) for k, v in inputs.items()},
    }


def assess(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    """Every rule that fires, in a stable order (by rule id)."""
    found = [
        *_address(facts, rules),
        *_payments(facts, rules),
        *_large(facts, rules),
        *_velocity(facts, rules),
        *_blacklist(facts, rules),
        *_stock(facts, rules),
        *_not_shipped(facts, rules),
    ]
    return sorted(found, key=lambda r: r["rule"])


def _address(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    address = facts.address
    if address is None:  # assessed without it: it did not come in time
        detail = "no recipient address received for the order (orders.private.v1)"
        return [reason(rules, "address.unknown", detail)]
    country = str(address.get("country") or "").upper()
    shape = rules.countries.get(country)
    if shape is None:
        known = ", ".join(sorted(rules.countries))
        return [
            reason(
                rules,
                "address.country",
                f"no address rules for country {country or '(none)'}; known: {known}",
                country=country,
            )
        ]
    found = []
    missing = [f for f in shape.required if not str(address.get(f) or "").strip()]
    if missing:
        names = ", ".join(REQUIRED_LABELS.get(f, f) for f in missing)
        found.append(
            reason(
                rules,
                "address.missing",
                f"incomplete address: no {names}",
                missing=",".join(missing),
                country=country,
            )
        )
    postcode = str(address.get("postal_code") or "").strip().upper()
    if postcode and not re.fullmatch(shape.postcode, postcode):
        found.append(
            reason(
                rules,
                "address.postcode",
                f"postal code is not {country}'s shape ({shape.postcode_shape})",
                country=country,
                length=len(postcode),
            )
        )
    return found


_PAYMENT_RULES = {
    "amount_mismatch": "payment.amount_mismatch",
    "already_paid": "payment.duplicate",
    "order_cancelled": "payment.after_cancel",
}
_PAYMENT_TEXT = {
    "payment.amount_mismatch": "a payment did not match the order total",
    "payment.duplicate": "a second payment arrived for a paid order",
    "payment.after_cancel": "a payment arrived after the order was cancelled",
}


def _payments(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    by_rule: dict[str, list[str]] = {}
    for why, detail in facts.payments:
        rule = _PAYMENT_RULES.get(why)
        if rule is not None:
            by_rule.setdefault(rule, []).append(detail)
    return [
        reason(
            rules,
            rule,
            f"{_PAYMENT_TEXT[rule]}: {details[-1]}"
            + (f" ({len(details)} times)" if len(details) > 1 else ""),
            payments=len(details),
        )
        for rule, details in by_rule.items()
    ]


def _large(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    large, found = rules.large_order, []
    if facts.total > large.amount:
        found.append(
            reason(
                rules,
                "large.amount",
                f"order total {facts.total:.2f} above the limit {large.amount:.2f}",
                total=f"{facts.total:.2f}",
                limit=f"{large.amount:.2f}",
            )
        )
    orders, average = facts.history
    if orders >= large.history_min_orders and average > 0:
        ceiling = average * large.history_factor
        if facts.total > ceiling:
            found.append(
                reason(
                    rules,
                    "large.history",
                    f"order total {facts.total:.2f} is over {large.history_factor:g} times "
                    f"the customer's average {average:.2f} over {orders} orders",
                    total=f"{facts.total:.2f}",
                    average=f"{average:.2f}",
                    orders=orders,
                    factor=f"{large.history_factor:g}",
                )
            )
    return found


_DIMENSION_TEXT = {"customer": "customer", "address": "address", "device": "device"}


def _velocity(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    found = []
    for dimension, seen in sorted(facts.velocity.items()):
        limit = getattr(rules.velocity, dimension)
        count, window_s = int(seen["count"]), int(seen["window_s"])
        if count > limit.limit:
            key = str(seen["key"])
            shown = key if dimension != "address" else key[:12]
            found.append(
                reason(
                    rules,
                    f"velocity.{dimension}",
                    f"{count} orders in {_duration(window_s)} from {_DIMENSION_TEXT[dimension]} "
                    f"{shown}, limit {limit.limit}",
                    count=count,
                    limit=limit.limit,
                    window_s=window_s,
                    key=shown,
                    orders=",".join(seen.get("order_ids") or []),
                )
            )
    return found


def _blacklist(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    return [
        reason(rules, f"blacklist.{kind}", f"{kind} is blacklisted: {why}", kind=kind)
        for kind, why in sorted(facts.blacklisted.items())
    ]


def _stock(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    if not facts.shortage:
        return []
    return [
        reason(
            rules,
            "stock.shortage",
            f"inventory could not reserve: {', '.join(facts.shortage)}",
            lines=len(facts.shortage),
        )
    ]


def _not_shipped(facts: Facts, rules: RiskRules) -> list[dict[str, Any]]:
    if facts.not_shipped_since is None:
        return []
    after = _duration(int(rules.not_shipped_after_s))
    return [
        reason(
            rules,
            "fulfilment.not_shipped",
            f"paid and confirmed, not shipped within {after}: at risk of cancellation",
            after_s=int(rules.not_shipped_after_s),
        )
    ]


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
