"""The figures: integer sums kept per family and key, each a pure function of the
entity states. Every entity contributes vectors to some keys (an order: one to its
placement hour's sales, one per SKU line, one to its funnel day, its stage durations to
the day each stage ended...); the figures are the sum of all contributions, kept up to
date by taking an entity's old contribution away and adding its new one whenever its
state changes, and rebuilt from the table after a recovery or rebalance. Integers only
(cents, milliseconds, counts), and a key whose vector sums to zero is dropped: the same
set of states gives the same figures, bit for bit, whatever the history.

Families, each key's first element the day (days since the epoch, UTC) where it has one:

| family | key | vector |
|---|---|---|
| sales | day, hour, channel | orders, GMV cents, discount cents, units |
| sku | day, sku | units, revenue cents |
| funnel | day placed, channel | placed, paid, shipped, delivered, cancelled, returned, refunded |
| payments | day placed, method, channel | paid orders, paid order totals (cents) |
| kept | day placed, channel | orders not cancelled, their totals, refunded (cents) |
| kept_sku | day placed, channel, sku | units of the orders not cancelled |
| stage | stage, day ended | count, sum ms, sum of squares ms^2 |
| stage_bins | stage, day ended, sketch bin | count |
| customer_day | customer, day | orders, spend cents |
| exceptions | day assessed, rule, level | orders (one per rule that fired: by rule) |
| flagged | day assessed, level | orders (one per flagged order: totals, by level, by day) |
| backlog | () | confirmed orders not shipped nor cancelled |
| shipments | day dispatched, warehouse, carrier | shipments, on time, orders |
| picking | day scanned | scans accepted, scans refused |
| pack_checks | day checked | checks passed, checks failed (shipment flagged) |
| cost | sku | units with a cost, cost cents |
| tickets | day opened, type, channel | opened, resolved, breached |
| ticket_times | day opened, type | answered, its ms, resolved, its ms, rated, score sum |
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from analytics.entities import State
from analytics.sketch import bin_of
from analytics.timeutil import day_of, hour_of

Key = tuple[Any, ...]
Contribution = list[tuple[str, Key, tuple[int, ...]]]

STAGES = ("placed_paid", "paid_shipped", "shipped_delivered")
_STAGE_EDGES = {
    "placed_paid": ("placed", "paid"),
    "paid_shipped": ("paid", "shipped"),
    "shipped_delivered": ("shipped", "delivered"),
}


def contribution(entity: str, state: State | None) -> Contribution:
    if not state:
        return []
    kind = entity.split(":", 1)[0]
    if kind == "order":
        return _order(state)
    if kind == "shipping":
        return _shipping(state)
    if kind == "stock":
        return _stock(entity.split(":", 1)[1], state)
    if kind == "ticket":
        return _ticket(state)
    return []


def _order(s: State) -> Contribution:
    out: Contribution = []
    risk = s.get("risk")
    if risk is not None and risk[0] == "flagged":
        day = day_of(s["assessed"])
        out.extend(("exceptions", (day, rule, risk[1] or "-"), (1,)) for rule in risk[2])
        out.append(("flagged", (day, risk[1] or "-"), (1,)))
    placed = s.get("placed")
    if placed is None:
        return out
    day, channel = day_of(placed), s["channel"]
    units = sum(qty for _, qty, _ in s["lines"])
    out.append(("sales", (day, hour_of(placed), channel), (1, s["total"], s["discount"], units)))
    for sku, qty, unit in s["lines"]:
        out.append(("sku", (day, sku), (qty, qty * unit)))
    out.append(
        (
            "funnel",
            (day, channel),
            (
                1,
                int("paid" in s),
                int("shipped" in s),
                int("delivered" in s),
                int("cancelled" in s),
                int("returned" in s),
                s.get("refunded", 0),
            ),
        )
    )
    if "paid" in s:
        out.append(("payments", (day, s.get("method") or "-", channel), (1, s["total"])))
    if "cancelled" not in s:  # what the margin is made of: the orders that were sold
        out.append(("kept", (day, channel), (1, s["total"], s.get("refunded", 0))))
        for sku, qty, _ in s["lines"]:
            out.append(("kept_sku", (day, channel, sku), (qty,)))
    out.append(("customer_day", (s["customer"], day), (1, s["total"])))
    for stage, (start, end) in _STAGE_EDGES.items():
        if start in s and end in s:
            ms = max(0, (s[end] - s[start]) // 1000)
            ended = day_of(s[end])
            out.append(("stage", (stage, ended), (1, ms, ms * ms)))
            out.append(("stage_bins", (stage, ended, bin_of(ms)), (1,)))
    if "confirmed" in s and "shipped" not in s and "cancelled" not in s:
        out.append(("backlog", (), (1,)))
    return out


def _shipping(s: State) -> Contribution:
    out: Contribution = [
        (family, (int(day),), (right, wrong))
        for family, field in (("picking", "scans"), ("pack_checks", "checks"))
        for day, (right, wrong) in s.get(field, {}).items()
    ]
    for one in s.get("shipments", {}).values():
        dispatched = one.get("dispatched")
        if dispatched is None:
            continue
        on_time = int(dispatched <= one["promised"])
        key = (day_of(dispatched), one["warehouse"], one["carrier"])
        out.append(("shipments", key, (1, on_time, one.get("orders", 1))))
    return out


def _stock(sku: str, s: State) -> Contribution:
    if not s.get("costed"):
        return []
    return [("cost", (sku,), (s["costed"], s["cost"]))]


def _ticket(s: State) -> Contribution:
    if "opened" not in s:
        return []
    key = (day_of(s["opened"]), s["type"], s["channel"])
    answered, resolved = s.get("first_response_ms"), s.get("resolution_ms")
    rating = s.get("rating")
    times = (
        int(answered is not None),
        answered or 0,
        int(resolved is not None),
        resolved or 0,
        int(rating is not None),
        rating or 0,
    )
    out: Contribution = [("tickets", key, (1, int("resolved" in s), int(bool(s.get("breached")))))]
    if any(times):
        out.append(("ticket_times", key[:2], times))
    return out


class Figures:
    """The sum of every entity's contribution, by family and key."""

    def __init__(self) -> None:
        self.data: dict[str, dict[Key, list[int]]] = {}
        #: the newest event time of the entities counted (their `at`), not a sum: the
        #: figures' "now" (event time), right after a recovery too
        self.newest_us: int | None = None
        #: the partitions whose entities these figures count, as a worker last rebuilt
        #: them for its share (None: every partition, as in `rebuild` and the tests). Not
        #: faust's assignment: that changes when a rebalance ends, the figures only once
        #: the moved partitions are recovered
        self.held: set[int] | None = None

    def replace(self, entity: str, old: State | None, new: State | None) -> None:
        self._add(contribution(entity, old), -1)
        self._add(contribution(entity, new), 1)
        self._saw(new)

    def rebuild(self, states: Iterable[tuple[str, State]]) -> None:
        self.data, self.newest_us = {}, None
        for entity, state in states:
            self._add(contribution(entity, state), 1)
            self._saw(state)

    def _saw(self, state: State | None) -> None:
        at = state.get("at") if state else None
        if at is not None and (self.newest_us is None or at > self.newest_us):
            self.newest_us = at

    def _add(self, parts: Contribution, sign: int) -> None:
        for family, key, vector in parts:
            keys = self.data.setdefault(family, {})
            found = keys.get(key)
            if found is None:
                keys[key] = [sign * v for v in vector]
                continue
            for i, v in enumerate(vector):
                found[i] += sign * v
            if not any(found):
                del keys[key]
                if not keys:
                    del self.data[family]

    def copy(self) -> Figures:
        twin = Figures()
        twin.data = {f: {k: list(v) for k, v in keys.items()} for f, keys in self.data.items()}
        twin.newest_us = self.newest_us
        twin.held = None if self.held is None else set(self.held)
        return twin

    def add_snapshot(self, snapshot: dict[str, list[list[Any]]]) -> None:
        """Add another worker's figures (its `snapshot()`, through JSON: keys as lists)."""
        for family, rows in snapshot.items():
            for key, vector in rows:
                self._add([(family, tuple(key), tuple(vector))], 1)

    def family(self, name: str) -> dict[Key, list[int]]:
        return self.data.get(name, {})

    def between(self, name: str, first: int, last: int) -> Iterator[tuple[Key, list[int]]]:
        """The keys of a day-keyed family whose day is in [first, last]."""
        for key, vector in self.family(name).items():
            day = key[1] if name in ("stage", "stage_bins", "customer_day") else key[0]
            if first <= day <= last:
                yield key, vector

    def newest_day(self) -> int | None:
        """The newest day any order, stage, shipment, scan or ticket is counted on
        (event time), None without figures. Reads the small day-keyed families only."""
        days = [
            key[0]
            for family in ("sales", "flagged", "shipments", "picking", "pack_checks", "tickets")
            for key in self.family(family)
        ]
        days.extend(day for _, day in self.family("stage"))  # a delivery's, say
        return max(days, default=None)

    def snapshot(self) -> dict[str, list[list[Any]]]:
        """Everything, as sorted JSON-ready lists: equal for equal figures."""
        return {
            family: sorted([list(key), vector] for key, vector in keys.items())
            for family, keys in sorted(self.data.items())
        }
