"""The rules fulfilment decides by, as plain values: warehouses (capacity, zones, bins),
distances, carriers, delivery promises, weights, waves, packing. Pure: the settings
build them (bootstrap.py); the domain only reads them.

Allocation is a pure function of an order's facts and these rules, so it can explain
itself: every warehouse and carrier considered, ranked, and why each one lost."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shopfloor_runtime.chain import partition_for

MULTI_ZONE = "multi"


@dataclass(frozen=True)
class WarehouseRule:
    daily_capacity: int
    zones: tuple[str, ...]  # nearest packing first
    bins: Mapping[str, str] = field(default_factory=dict)  # SKU -> bin ("B-03-2")
    aisles: int = 12
    slots: int = 8


@dataclass(frozen=True)
class CarrierRule:
    carrier: str
    service: str
    transit_days: int
    base_cost: Decimal
    per_kg: Decimal
    regions: tuple[str, ...] = ()  # region or country prefixes; empty: everywhere
    max_weight_grams: int = 31_500
    max_value: Decimal = Decimal(5000)

    @property
    def name(self) -> str:
        return f"{self.carrier} {self.service}"

    def serves(self, region: str) -> bool:
        return not self.regions or any(region.startswith(prefix) for prefix in self.regions)

    def cost(self, weight_grams: int) -> Decimal:
        kilos = max(math.ceil(weight_grams / 1000), 1)
        return (self.base_cost + self.per_kg * kilos).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class FastMovers:
    """The velocity rule: a SKU picked at least `min_picks` times in a warehouse over the
    last `window` is a fast mover there; the `slots` fastest get bins in the zone
    nearest packing."""

    window: timedelta = timedelta(hours=24)
    min_picks: int = 20
    slots: int = 24


@dataclass(frozen=True)
class Rules:
    warehouses: Mapping[str, WarehouseRule]
    distances: Mapping[str, Mapping[str, float]]  # region or country -> warehouse -> km
    carriers: tuple[CarrierRule, ...]
    promise_days: Mapping[str, int]  # service level -> days from confirmation
    weights: Mapping[str, int] = field(default_factory=dict)  # SKU -> grams
    default_weight_grams: int = 500
    merge: bool = True
    split: bool = False
    wave_window: timedelta = timedelta(minutes=5)
    wave_size: int = 50  # orders
    pack_tolerance: float = 0.05
    fast_movers: FastMovers = field(default_factory=FastMovers)
    #: Lanes and capacity are kept per shard of the order id space, so workers owning
    #: different partitions never write the same aggregate (see `shard_of`).
    shards: int = 1
    partitions: int = 6  # of the topics fulfilment consumes, keyed by order id

    def __post_init__(self) -> None:
        if self.shards < 1 or self.partitions % self.shards:
            raise ValueError(
                f"shards must divide the input topics' {self.partitions} partitions, "
                f"got {self.shards}"
            )

    # -- reading ------------------------------------------------------------------------

    def shard_of(self, order_id: str) -> int:
        """The shard of a shipment (by its first order id): a contiguous range of the
        partitions the order id's messages land on. The consumers' range assignor hands
        a worker the same partition numbers of every input topic, so one worker owns a
        shard's lanes and capacity at a time."""
        partition = partition_for(order_id.encode(), self.partitions)
        return partition * self.shards // self.partitions

    def share(self, warehouse: str, shard: int) -> int:
        """A shard's own part of a warehouse's daily capacity (shards lend each other
        what they do not use, see Capacity)."""
        base, extra = divmod(self.warehouses[warehouse].daily_capacity, self.shards)
        return base + (1 if shard < extra else 0)

    def weight(self, sku: str) -> int:
        return self.weights.get(sku, self.default_weight_grams)

    def distance(self, region: str, warehouse: str) -> float | None:
        """km from a destination region ("DE-1") to a warehouse: the region's row, else
        its country's ("DE"), else the default row ("*")."""
        for key in (region, region.split("-")[0], "*"):
            row = self.distances.get(key)
            if row is not None and warehouse in row:
                return row[warehouse]
        return None

    def promise(self, service_level: str, confirmed_at: datetime) -> datetime:
        days = self.promise_days.get(service_level, max(self.promise_days.values(), default=5))
        return confirmed_at + timedelta(days=days)

    def bin_for(self, warehouse: str, sku: str, fast: Mapping[str, str] | None = None) -> str:
        """Where a SKU is picked in a warehouse: its fast-mover slot if it is one, else its
        configured bin, else a stable slot outside the zone nearest packing (that zone
        is for fast movers)."""
        rule = self.warehouses[warehouse]
        if fast and sku in fast:
            return fast[sku]
        if sku in rule.bins:
            return rule.bins[sku]
        spot = zlib.crc32(f"{warehouse}:{sku}".encode())
        slow = rule.zones[1:] or rule.zones
        zone = slow[spot % len(slow)]
        aisle = (spot // len(slow)) % rule.aisles + 1
        slot = (spot // (len(slow) * rule.aisles)) % rule.slots + 1
        return f"{zone}-{aisle:02d}-{slot}"

    def fast_bin(self, warehouse: str, rank: int) -> str:
        """The `rank`-th fast-mover slot (from 0): in the zone nearest packing, filled
        aisle by aisle from the packing end."""
        rule = self.warehouses[warehouse]
        aisle, slot = divmod(rank, rule.slots)
        return f"{rule.zones[0]}-{aisle + 1:02d}-{slot + 1}"

    def route_position(self, warehouse: str, bin_code: str) -> tuple[int, int, int, str]:
        """Where a bin lies on the walking route: zones from packing outwards, aisles in
        order, up odd aisles and down even ones (a serpentine walk)."""
        zone, aisle, slot = _bin_parts(bin_code)
        zones = self.warehouses[warehouse].zones
        zone_rank = zones.index(zone) if zone in zones else len(zones)
        return zone_rank, aisle, slot if aisle % 2 else -slot, bin_code


def zone_of(bin_code: str) -> str:
    return _bin_parts(bin_code)[0]


def _bin_parts(bin_code: str) -> tuple[str, int, int]:
    parts = bin_code.split("-")
    zone = parts[0]
    numbers = [int(p) if p.isdigit() else 0 for p in parts[1:3]] + [0, 0]
    return zone, numbers[0], numbers[1]


# -- allocation: pure, explained ----------------------------------------------------------


@dataclass(frozen=True)
class OrderFacts:
    """What allocation needs to know of one confirmed order."""

    order_id: str
    customer_id: str
    region: str
    lines: tuple[tuple[str, int], ...]  # (sku, qty)
    value: Decimal
    service_level: str
    held: Mapping[str, Mapping[str, int]]  # sku -> warehouse -> units held for it
    free: Mapping[str, Mapping[str, int]]  # sku -> warehouse -> free units (a hint)


def units_missing(facts: OrderFacts, warehouse: str) -> list[tuple[str, int, int]]:
    """(sku, needed, free there) for each line the warehouse cannot cover with what it
    holds for the order plus its free units (by inventory's last hint)."""
    short = []
    for sku, qty in facts.lines:
        held = facts.held.get(sku, {}).get(warehouse, 0)
        if held >= qty:
            continue
        free = facts.free.get(sku, {}).get(warehouse, 0)
        if held + free < qty:
            short.append((sku, qty - held, free))
    return short


def all_held_in(facts: OrderFacts, warehouse: str) -> bool:
    return all(facts.held.get(sku, {}).get(warehouse, 0) >= qty for sku, qty in facts.lines)


def rank_warehouses(
    facts: OrderFacts,
    rules: Rules,
    over: Mapping[str, int],
    refused: Mapping[str, str],
    ask_inventory: bool = False,
) -> list[dict[str, Any]]:
    """Every warehouse, best first: those that can take the order (stock by inventory's
    last figures, capacity, not refused by inventory) by distance, then the rest. The
    first is chosen if it can; each other one says why it was not. `over`: the
    warehouses with no capacity left today, with their shipments so far.

    With `ask_inventory`, when none can by those figures (they are a hint, and presold
    units are held nowhere yet), the nearest with capacity that inventory has not
    refused is chosen all the same: inventory decides when it is asked to move the hold."""
    rows = []
    for code, rule in rules.warehouses.items():
        distance = rules.distance(facts.region, code)
        reason, soft = None, False
        if code in refused:
            reason = f"{code}: {refused[code]}"
        elif code in over:
            reason = f"{code}: over today's capacity {over[code]}/{rule.daily_capacity}"
        else:
            short = units_missing(facts, code)
            if short:
                what = ", ".join(f"{sku} ({need} needed, {free} free)" for sku, need, free in short)
                reason, soft = f"{code}: not enough stock: {what}", True
        rows.append({"warehouse": code, "distance_km": distance, "reason": reason, "soft": soft})
    rows.sort(
        key=lambda r: (
            r["reason"] is not None,
            not r["soft"],
            math.inf if r["distance_km"] is None else r["distance_km"],
            not all_held_in(facts, str(r["warehouse"])),
            r["warehouse"],
        )
    )
    best = rows[0] if rows and rows[0]["reason"] is None else None
    if best is None and ask_inventory and rows and rows[0]["soft"]:
        best = rows[0]
        best["reason"] = (
            f"{best['reason']} by inventory's last figures, and no warehouse has it all: "
            "inventory is asked to hold it here"
        )
    for rank, row in enumerate(rows, 1):
        row["rank"], row["chosen"] = rank, row is best
        del row["soft"]
        if best is not None and row is not best and row["reason"] is None:
            row["reason"] = f"{row['warehouse']}: {_farther(row, best)}"
    return rows


def _farther(row: dict[str, Any], best: dict[str, Any]) -> str:
    if row["distance_km"] is None:
        return f"no distance configured for this region; {best['warehouse']} is known"
    if row["distance_km"] == best["distance_km"]:
        return f"as near as {best['warehouse']}, which holds more of the order already"
    return f"farther ({row['distance_km']:g} km vs {best['distance_km']:g} km)"


def rank_carriers(
    region: str, weight_grams: int, value: Decimal, service_level: str, rules: Rules
) -> list[dict[str, Any]]:
    """Every carrier service, best first: the cheapest that serves the region, carries
    the weight and value, and meets the promise; if none meets the promise, the fastest
    that can carry it at all (the shipment will likely be late, and says so)."""
    promise = rules.promise_days.get(service_level, max(rules.promise_days.values(), default=5))
    rows = []
    for rule in rules.carriers:
        reason = None
        if not rule.serves(region):
            reason = f"does not serve {region}"
        elif weight_grams > rule.max_weight_grams:
            reason = f"over its weight limit ({weight_grams} g > {rule.max_weight_grams} g)"
        elif value > rule.max_value:
            reason = f"over its declared value limit ({value} > {rule.max_value})"
        rows.append(
            {
                "carrier": rule.carrier,
                "service": rule.service,
                "cost": rule.cost(weight_grams),
                "transit_days": rule.transit_days,
                "reason": reason,
                "late": rule.transit_days > promise,
            }
        )
    able = [r for r in rows if r["reason"] is None]
    on_time = [r for r in able if not r["late"]]
    if on_time:
        best = min(on_time, key=lambda r: (r["cost"], r["transit_days"], r["carrier"]))
    elif able:
        best = min(able, key=lambda r: (r["transit_days"], r["cost"], r["carrier"]))
    else:
        best = None
    for r in rows:
        r["chosen"] = r is best
        if best is None or r is best:
            if r is best and r["late"]:
                r["reason"] = f"no service meets the {promise}-day {service_level} promise; fastest"
        elif r["reason"] is None:
            if r["late"] and not best["late"]:
                r["reason"] = f"{r['transit_days']} days misses the {promise}-day promise"
            else:
                r["reason"] = f"dearer ({r['cost']} vs {best['cost']})"
        if r["reason"] is not None and r is not best:
            r["reason"] = f"{r['carrier']} {r['service']}: {r['reason']}"
    for r in rows:
        del r["late"]
    rows.sort(key=lambda r: (not r["chosen"], r["reason"] is not None, r["cost"]))
    return rows
