"""Every rule has a case that flags and a near miss that does not, and each reason says
which figures tripped it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from risk.assess import Facts, assess
from risk.rules import RiskRules, RulesFileError, load_rules

RULES = RiskRules()
GOOD = {
    "name": "A",
    "line1": "Hauptstr. 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


def facts(**changes) -> Facts:
    base = {"customer_id": "c-1", "total": Decimal("50.00"), "address": GOOD}
    return Facts(**{**base, **changes})


def fired(f: Facts) -> dict[str, dict]:
    return {r["rule"]: r for r in assess(f, RULES)}


def test_an_ordinary_order_fires_nothing():
    assert assess(facts(), RULES) == []


@pytest.mark.parametrize(
    ("address", "rule", "words"),
    [
        ({**GOOD, "postal_code": "1011"}, "address.postcode", "5 digits"),
        ({**GOOD, "city": " "}, "address.missing", "no city"),
        ({**GOOD, "name": "", "line1": ""}, "address.missing", "no recipient name, street"),
        ({**GOOD, "country": "ZZ"}, "address.country", "no address rules for country ZZ"),
        ({**GOOD, "country": "NL", "postal_code": "10115"}, "address.postcode", "2 letters"),
    ],
)
def test_a_bad_address_is_flagged_with_what_is_wrong(address, rule, words):
    reason = fired(facts(address=address))[rule]
    assert words in reason["detail"] and reason["level"] == "ordinary"
    assert "10115" not in reason["detail"]  # the postal code itself is not repeated


@pytest.mark.parametrize(
    "address",
    [
        GOOD,
        {**GOOD, "country": "NL", "postal_code": "1016 AB"},
        {**GOOD, "country": "GB", "postal_code": "SW1A 1AA"},
    ],
)
def test_a_valid_address_of_a_known_country_passes(address):
    assert not any(r.startswith("address") for r in fired(facts(address=address)))


@pytest.mark.parametrize(
    ("why", "rule", "level"),
    [
        ("amount_mismatch", "payment.amount_mismatch", "ordinary"),
        ("already_paid", "payment.duplicate", "serious"),
        ("order_cancelled", "payment.after_cancel", "ordinary"),
    ],
)
def test_payment_anomalies_are_flagged(why, rule, level):
    reason = fired(facts(payments=((why, "paid 10.00, total 50.00"),)))[rule]
    assert reason["level"] == level and "paid 10.00" in reason["detail"]


def test_a_payment_refused_for_another_reason_is_no_anomaly():
    assert fired(facts(payments=(("method_unavailable", "no cards"),))) == {}


def test_an_order_above_the_amount_limit_is_serious_and_one_at_it_passes():
    reason = fired(facts(total=Decimal("1000.01")))["large.amount"]
    assert reason["level"] == "serious"
    assert reason["inputs"] == {"total": "1000.01", "limit": "1000.00"}
    assert "large.amount" not in fired(facts(total=Decimal("1000.00")))


def test_an_order_far_above_the_customers_history_is_flagged_only_with_enough_history():
    big = facts(total=Decimal("251.00"), history=(3, Decimal("50.00")))
    reason = fired(big)["large.history"]
    assert "5 times the customer's average 50.00 over 3 orders" in reason["detail"]
    assert "large.history" not in fired(facts(total=Decimal("250.00"), history=(3, Decimal(50))))
    assert "large.history" not in fired(facts(total=Decimal("251.00"), history=(2, Decimal(50))))


@pytest.mark.parametrize("dimension", ["customer", "address", "device"])
def test_velocity_trips_above_the_limit_and_not_at_it(dimension):
    def seen(n):
        return {dimension: {"key": "k-1", "count": n, "window_s": 600, "order_ids": ["o"] * n}}

    reason = fired(facts(velocity=seen(5)))[f"velocity.{dimension}"]
    assert reason["detail"] == f"5 orders in 10 min from {dimension} k-1, limit 4"
    assert reason["level"] == "serious" and reason["inputs"]["limit"] == "4"
    assert fired(facts(velocity=seen(4))) == {}


@pytest.mark.parametrize("kind", ["customer", "address", "device"])
def test_a_blacklisted_customer_address_or_device_is_serious(kind):
    reason = fired(facts(blacklisted={kind: "chargebacks"}))[f"blacklist.{kind}"]
    assert reason["level"] == "serious" and "chargebacks" in reason["detail"]


def test_a_customer_address_or_device_not_on_the_blacklist_passes():
    # the near miss: another customer's entry, or none, fires nothing
    assert fired(facts(blacklisted={})) == {}


def test_a_stock_shortage_is_ordinary():
    reason = fired(facts(shortage=("TEE-M (3 requested, 1 available)",)))["stock.shortage"]
    assert reason["level"] == "ordinary" and "TEE-M (3 requested" in reason["detail"]


def test_stock_reserved_in_full_is_no_shortage():
    assert fired(facts(shortage=())) == {}


def test_not_shipped_in_time_is_flagged():
    at = datetime(2026, 12, 2, tzinfo=UTC)
    reason = fired(facts(not_shipped_since=at))["fulfilment.not_shipped"]
    assert "not shipped within 15 min" in reason["detail"]


def test_a_rules_file_changes_limits_and_levels(tmp_path: Path):
    path = tmp_path / "rules.toml"
    path.write_text('serious = ["large.amount"]\n[velocity.customer]\nlimit = 2\nwindow_s = 60\n')
    rules = load_rules(path)
    assert rules.velocity.customer.limit == 2 and rules.velocity.address.limit == 4
    assert rules.level("velocity.customer") == "ordinary"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[velocity.customer]\nlimit = 0\n", "velocity.customer.limit"),
        ("[velocity\n", "not valid TOML"),
        ("colour = 'red'\n", "colour: Extra inputs are not permitted"),
        ('[countries.DE]\npostcode = "("\npostcode_shape = "x"\n', "not a regular expression"),
    ],
)
def test_an_invalid_rules_file_is_refused_with_one_readable_line(tmp_path: Path, text, words):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesFileError) as refused:
        load_rules(path)
    message = str(refused.value)
    assert words in message and "\n" not in message and message.startswith(str(path))
