"""The figures as people read them, computed from `Figures` for a range of days: sales,
margin, the funnel, stage times, ABC, customer segments, exceptions, tickets, shipping,
picking accuracy. Money is
computed in integer cents and Decimal, shown as strings with two decimals; a rate is a
share 0..1 (None when its base is zero)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from analytics.figures import STAGES, Figures
from analytics.rules import AnalyticsRules
from analytics.sketch import quantile
from analytics.timeutil import day_date

CENT = Decimal("0.01")


def money(cents: int | Decimal) -> str:
    return f"{(Decimal(cents) / 100).quantize(CENT, ROUND_HALF_EVEN)}"


def rate(part: int | Decimal, whole: int | Decimal) -> float | None:
    return None if not whole else round(float(Decimal(part) / Decimal(whole)), 6)


@dataclass(frozen=True)
class Range:
    """Days since the epoch, both ends included."""

    first: int
    last: int

    def days(self) -> range:
        return range(self.first, self.last + 1)


def sales(f: Figures, r: Range, by: str = "channel") -> list[dict[str, Any]]:
    """Orders, GMV, average order value, discount and units per channel, hour or day
    (of placement)."""
    index = {"day": 0, "hour": 1, "channel": 2}[by]
    groups: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for key, (orders, gmv, discount, units) in f.between("sales", r.first, r.last):
        g = groups[key[index]]
        g[0] += orders
        g[1] += gmv
        g[2] += discount
        g[3] += units
    rows = []
    for group in sorted(groups):
        orders, gmv, discount, units = groups[group]
        rows.append(
            {
                by: day_date(group).isoformat() if by == "day" else group,
                "orders": orders,
                "gmv": money(gmv),
                "aov": money(Decimal(gmv) / orders) if orders else None,
                "discount": money(discount),
                "units": units,
            }
        )
    return rows


def totals(f: Figures, r: Range) -> dict[str, Any]:
    orders = gmv = 0
    for _, vector in f.between("sales", r.first, r.last):
        orders += vector[0]
        gmv += vector[1]
    return {
        "orders": orders,
        "gmv": money(gmv),
        "aov": money(Decimal(gmv) / orders) if orders else None,
    }


def funnel(f: Figures, r: Range) -> dict[str, Any]:
    """Orders placed in the range and how far they got; the repurchase rate among the
    customers who ordered in it (more than one order up to the range's end)."""
    sums = [0] * 7
    for _, vector in f.between("funnel", r.first, r.last):
        for i, v in enumerate(vector):
            sums[i] += v
    placed, paid, shipped, delivered, cancelled, returned, refunded = sums
    ordered: dict[str, int] = defaultdict(int)
    in_range: set[str] = set()
    for (customer, day), (orders, _) in f.family("customer_day").items():
        if day <= r.last:
            ordered[customer] += orders
            if day >= r.first:
                in_range.add(customer)
    again = sum(1 for c in in_range if ordered[c] > 1)
    return {
        "placed": placed,
        "paid": paid,
        "shipped": shipped,
        "delivered": delivered,
        "cancelled": cancelled,
        "returned": returned,
        "refunded": money(refunded),
        "paid_rate": rate(paid, placed),
        "shipped_rate": rate(shipped, placed),
        "delivered_rate": rate(delivered, placed),
        "cancellation_rate": rate(cancelled, placed),
        "return_rate": rate(returned, delivered),
        "customers": len(in_range),
        "repurchase_rate": rate(again, len(in_range)),
    }


def stages(f: Figures, r: Range) -> dict[str, dict[str, Any]]:
    """Per stage (by the day it ended): count, mean, p50/p90/p99 (DDSketch, within 1 %),
    variance and coefficient of variation, in seconds."""
    sums: dict[str, list[int]] = {s: [0, 0, 0] for s in STAGES}
    bins: dict[str, dict[int, int]] = {s: defaultdict(int) for s in STAGES}
    for (stage, _), (n, total, squares) in f.between("stage", r.first, r.last):
        acc = sums[stage]
        acc[0] += n
        acc[1] += total
        acc[2] += squares
    for (stage, _, key), (n,) in f.between("stage_bins", r.first, r.last):
        bins[stage][key] += n
    out = {}
    for stage in STAGES:
        n, total, squares = sums[stage]
        mean = Decimal(total) / n if n else None
        variance = (Decimal(squares) / n - mean * mean) if mean is not None else None
        out[stage] = {
            "count": n,
            "mean_s": _seconds(mean),
            "p50_s": _seconds(quantile(bins[stage], 0.5)),
            "p90_s": _seconds(quantile(bins[stage], 0.9)),
            "p99_s": _seconds(quantile(bins[stage], 0.99)),
            "variance_s2": None if variance is None else round(float(variance) / 1e6, 3),
            "cv": None if variance is None or not mean else round(float(variance.sqrt() / mean), 4),
        }
    return out


def _seconds(ms: Decimal | float | None) -> float | None:
    return None if ms is None else round(float(ms) / 1000, 3)


@dataclass
class _Channel:
    orders: int = 0
    revenue: int = 0  # cents, refunds taken off
    refunds: int = 0
    goods: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    before_shipping: Decimal = Decimal(0)


def margin(f: Figures, r: Range, rules: AnalyticsRules) -> dict[str, Any]:
    """What the orders placed in the range and not cancelled earned, in all and by
    channel: their totals less refunds (revenue), less the goods' cost (weighted-average
    unit cost per SKU, from the stock receipts that carry one), the platform commission
    (per channel, on the revenue) and the payment fees (on every paid order, a cancelled
    one's too: the provider keeps its fee); the shipping (per dispatched shipment, by
    carrier, on the day of dispatch) comes off the total only, since one shipment can
    carry orders of several channels. A returned item's cost is not given back (whether
    it is resold is not known here)."""
    costs = {sku: (units, cents) for (sku,), (units, cents) in f.family("cost").items()}
    channels: dict[str, _Channel] = defaultdict(_Channel)
    for (_, channel), (kept, totals, refunded) in f.between("kept", r.first, r.last):
        c = channels[channel]
        c.orders += kept
        c.revenue += totals - refunded
        c.refunds += refunded
    uncosted_units = 0
    for (_, channel, sku), (units,) in f.between("kept_sku", r.first, r.last):
        found = costs.get(sku)
        if found is None or not found[0]:
            uncosted_units += units
            continue
        channels[channel].goods += Decimal(found[1]) / found[0] * units
    for (_, method, channel), (paid, cents) in f.between("payments", r.first, r.last):
        fee = rules.payment_fees.get(method) or rules.payment_fees.get("card")
        if fee is not None:
            channels[channel].fees += Decimal(cents) * fee.percent / 100 + fee.fixed * 100 * paid
    by_channel = []
    for channel in sorted(channels):
        c = channels[channel]
        percent = rules.commission_percent.get(channel, Decimal(0))
        c.commission = Decimal(c.revenue) * percent / 100
        c.before_shipping = Decimal(c.revenue) - c.goods - c.commission - c.fees
        by_channel.append(
            {
                "channel": channel,
                "orders": c.orders,
                "revenue": money(c.revenue),
                "cost_of_goods": money(c.goods),
                "commission": money(c.commission),
                "payment_fees": money(c.fees),
                "margin_before_shipping": money(c.before_shipping),
                "margin_rate_before_shipping": rate(c.before_shipping, c.revenue),
            }
        )
    shipping = Decimal(0)
    for (_, _, carrier), (shipments, _, _) in f.between("shipments", r.first, r.last):
        cost = rules.shipping_cost.get(carrier, rules.default_shipping_cost)
        shipping += cost * 100 * shipments
    every = channels.values()
    orders = sum(c.orders for c in every)
    revenue = sum(c.revenue for c in every)
    goods = sum((c.goods for c in every), Decimal(0))
    commission = sum((c.commission for c in every), Decimal(0))
    fees = sum((c.fees for c in every), Decimal(0))
    total = Decimal(revenue) - goods - commission - fees - shipping
    return {
        "orders": orders,
        "revenue": money(revenue),
        "refunds": money(sum(c.refunds for c in every)),
        "cost_of_goods": money(goods),
        "units_without_cost": uncosted_units,
        "commission": money(commission),
        "payment_fees": money(fees),
        "shipping": money(shipping),
        "margin": money(total),
        "margin_per_order": money(total / orders) if orders else None,
        "margin_rate": rate(total, revenue),
        "by_channel": by_channel,
    }


def abc(f: Figures, r: Range, rules: AnalyticsRules) -> list[dict[str, Any]]:
    """SKUs by revenue, highest first (ties by SKU), each with its class: A while the
    revenue before it is under `a` % of the total, then B under `b` %, then C."""
    revenue: dict[str, int] = defaultdict(int)
    units: dict[str, int] = defaultdict(int)
    for (_, sku), (n, cents) in f.between("sku", r.first, r.last):
        revenue[sku] += cents
        units[sku] += n
    total = sum(revenue.values())
    rows, before = [], 0
    for sku in sorted(revenue, key=lambda s: (-revenue[s], s)):
        share_before = Decimal(before) * 100 / total if total else Decimal(0)
        klass = "A" if share_before < rules.abc.a else "B" if share_before < rules.abc.b else "C"
        before += revenue[sku]
        rows.append(
            {
                "sku": sku,
                "revenue": money(revenue[sku]),
                "units": units[sku],
                "share": rate(revenue[sku], total),
                "cumulative_share": rate(before, total),
                "class": klass,
            }
        )
    return rows


def segments(f: Figures, at: int, rules: AnalyticsRules) -> dict[str, int]:
    """Customers as of day `at`: VIP (spend in the VIP window at least vip_spend),
    else dormant (no order in dormant_days), else new (one order so far), else active."""
    seen: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for (customer, day), (orders, cents) in f.family("customer_day").items():
        if day <= at:
            seen[customer].append((day, orders, cents))
    counts = {"new": 0, "active": 0, "dormant": 0, "vip": 0}
    vip_cents = rules.segments.vip_spend * 100
    for days in seen.values():
        last = max(d for d, _, _ in days)
        spend = sum(c for d, _, c in days if d > at - rules.segments.vip_window_days)
        orders = sum(n for _, n, _ in days)
        if spend >= vip_cents:
            counts["vip"] += 1
        elif at - last >= rules.segments.dormant_days:
            counts["dormant"] += 1
        elif orders == 1:
            counts["new"] += 1
        else:
            counts["active"] += 1
    return counts


def exceptions(f: Figures, r: Range) -> dict[str, Any]:
    """Orders risk flagged (by the day of the assessment): in all, by the order's level
    and by day, each order once; and by rule, where an order flagged by two rules counts
    under each (so `by_rule` sums to more than `orders`)."""
    by_rule: dict[str, int] = defaultdict(int)
    by_level: dict[str, int] = defaultdict(int)
    by_day: dict[str, int] = defaultdict(int)
    for (_, rule, _), (n,) in f.between("exceptions", r.first, r.last):
        by_rule[rule] += n
    for (day, level), (n,) in f.between("flagged", r.first, r.last):
        by_level[level] += n
        by_day[day_date(day).isoformat()] += n
    return {
        "orders": sum(by_level.values()),
        "by_rule": dict(by_rule),
        "by_level": dict(by_level),
        "by_day": dict(by_day),
    }


def tickets(f: Figures, r: Range) -> dict[str, Any]:
    """The service desk's tickets opened in the range: how many were resolved and in
    breach, the mean first response and resolution (waiting for the customer not
    counted, as the desk measures it), and the mean satisfaction score (1-5)."""
    by_type: dict[str, int] = defaultdict(int)
    by_channel: dict[str, int] = defaultdict(int)
    opened = resolved = breached = 0
    for (_, kind, channel), (n, done, late) in f.between("tickets", r.first, r.last):
        by_type[kind] += n
        by_channel[channel] += n
        opened += n
        resolved += done
        breached += late
    sums = [0] * 6
    for _, vector in f.between("ticket_times", r.first, r.last):
        for i, v in enumerate(vector):
            sums[i] += v
    answered, answer_ms, timed, resolution_ms, rated, score = sums
    return {
        "opened": opened,
        "resolved": resolved,
        "resolution_rate": rate(resolved, opened),
        "breach_rate": rate(breached, resolved),
        "first_response_mean_s": _seconds(Decimal(answer_ms) / answered) if answered else None,
        "resolution_mean_s": _seconds(Decimal(resolution_ms) / timed) if timed else None,
        "ratings": rated,
        "satisfaction": round(score / rated, 3) if rated else None,
        "by_type": dict(by_type),
        "by_channel": dict(by_channel),
    }


def shipping(f: Figures, r: Range) -> dict[str, Any]:
    shipments = on_time = orders = 0
    by_warehouse: dict[str, int] = defaultdict(int)
    for (_, warehouse, _), (n, ok, o) in f.between("shipments", r.first, r.last):
        shipments += n
        on_time += ok
        orders += o
        by_warehouse[warehouse] += n
    backlog = sum(v[0] for v in f.family("backlog").values())
    return {
        "shipments": shipments,
        "orders_shipped": orders,
        "on_time_rate": rate(on_time, shipments),
        "by_warehouse": dict(by_warehouse),
        "backlog": backlog,
    }


def accuracy(f: Figures, r: Range) -> dict[str, Any]:
    """Picking accuracy as fulfilment reports it (its `GET /pickers/stats`, the dev
    stack's "accuracy 98.0%"): accepted scans / all scans, a refused scan being a picking
    mistake the scanner caught; by the day of the scan. And the pack check's pass rate:
    checks passed / checks made, a failed one (the shipment flagged) being a mistake
    that got past the scanner (a wrong or missing item, a wrong weight)."""
    picks = refused = passed = flagged = 0
    for _, (right, wrong) in f.between("picking", r.first, r.last):
        picks += right
        refused += wrong
    for _, (right, wrong) in f.between("pack_checks", r.first, r.last):
        passed += right
        flagged += wrong
    return {
        "accuracy": rate(picks, picks + refused),
        "picks": picks,
        "refused_scans": refused,
        "pack_check_rate": rate(passed, passed + flagged),
        "pack_checks": passed + flagged,
        "flagged": flagged,
    }


def accuracy_by_day(f: Figures, r: Range) -> list[dict[str, Any]]:
    return [{"day": day_date(day).isoformat(), **accuracy(f, Range(day, day))} for day in r.days()]
