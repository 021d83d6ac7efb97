"""The margin from entity states made by hand, so every cent can be checked: only the
orders that were sold count (a cancelled one earns nothing), refunds come off the
revenue, and each channel shows its own margin before shipping."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from analytics import report
from analytics.figures import Figures
from analytics.rules import AnalyticsRules, PaymentFee
from analytics.timeutil import day_of, micros

AT = micros(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
DAY = report.Range(day_of(AT), day_of(AT))
RULES = AnalyticsRules(
    commission_percent={"shop": Decimal(0), "marketplace": Decimal(10)},
    payment_fees={"card": PaymentFee(percent=Decimal(2), fixed=Decimal("0.50"))},
    shipping_cost={"DHL": Decimal("5.00")},
)


def order(channel: str, total: int, qty: int, **more: object) -> dict[str, object]:
    return {
        "placed": AT,
        "channel": channel,
        "customer": f"c-{channel}-{total}",
        "total": total,
        "discount": 0,
        "lines": [["SKU-1", qty, total // qty]],
        "method": "card",
        **more,
    }


def figures(*orders: dict[str, object]) -> Figures:
    f = Figures()
    f.replace("stock:SKU-1", None, {"costed": 10, "cost": 10 * 2000})  # 20.00 a unit
    for n, state in enumerate(orders):
        f.replace(f"order:o-{n}", None, state)
    return f


def test_a_cancelled_order_earns_nothing_and_a_refund_comes_off_the_revenue():
    cancelled_unpaid = order("shop", 10000, 2, cancelled=AT + 60_000_000)
    sold = order("shop", 5000, 1, paid=AT + 1, refunded=2000)
    m = report.margin(figures(cancelled_unpaid, sold), DAY, RULES)
    # revenue 50.00 - 20.00 refunded; goods 1 x 20.00; fee 2 % of 50.00 + 0.50
    assert m["orders"] == 1 and m["revenue"] == "30.00" and m["refunds"] == "20.00"
    assert m["cost_of_goods"] == "20.00" and m["payment_fees"] == "1.50"
    assert m["margin"] == "8.50" == m["margin_per_order"]


def test_a_cancelled_order_that_was_paid_still_costs_its_payment_fee():
    cancelled_paid = order("shop", 10000, 2, paid=AT + 1, cancelled=AT + 2, refunded=10000)
    m = report.margin(figures(cancelled_paid), DAY, RULES)
    assert m["orders"] == 0 and m["revenue"] == "0.00" and m["cost_of_goods"] == "0.00"
    assert m["payment_fees"] == "2.50" and m["margin"] == "-2.50"


def test_each_channel_has_its_margin_before_shipping_and_the_total_takes_the_shipping_off():
    shop = order("shop", 5000, 1, paid=AT + 1)
    market = order("marketplace", 10000, 2, paid=AT + 1)
    f = figures(shop, market)
    shipments = {
        "s-1": {"dispatched": AT + 5, "promised": AT + 10, "warehouse": "WH", "carrier": "DHL"}
    }
    f.replace("shipping:s-1", None, {"shipments": shipments})
    m = report.margin(f, DAY, RULES)
    by = {row["channel"]: row for row in m["by_channel"]}
    # marketplace: 100.00 - 2 x 20.00 - 10 % commission - (2.00 + 0.50) fee = 47.50
    assert by["marketplace"]["margin_before_shipping"] == "47.50"
    assert by["marketplace"]["commission"] == "10.00"
    # shop: 50.00 - 20.00 - (1.00 + 0.50) = 28.50
    assert by["shop"]["margin_before_shipping"] == "28.50"
    assert m["shipping"] == "5.00" and m["margin"] == "71.00"  # 47.50 + 28.50 - 5.00
    assert m["margin_rate"] == round(71 / 150, 6)
