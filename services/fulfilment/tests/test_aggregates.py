"""Every fulfilment aggregate driven through its life on cache copies (a copy must never
share state it changes with the original: shopfloor_runtime.aggregates), and rebuilt from
its events to the same state. Random walks, seeded, for waves and lanes."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fulfilment.bootstrap import rules_from
from fulfilment.domain import Capacity, Lane, OrderFile, Refused, Shipment, Slotting, Wave
from fulfilment.settings import Settings
from shopfloor_runtime.aggregates import copy_isolates

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = rules_from(Settings())


def replayed(aggregate: Any) -> Any:
    copy = None
    for domain_event in aggregate.collect_events():
        copy = domain_event.mutate(copy)
    assert copy is not None
    return copy


def same_after_replay(aggregate: Any) -> None:
    assert replayed(aggregate).__dict__ == {**aggregate.__dict__, "_pending_events": []}


def line(sku: str, qty: int, serials: list[str] | None = None) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "serials": serials or [], "bin": "B-01-3"}


def test_a_shipment_through_its_whole_life_on_copies():
    shipment = Shipment(
        shipment=uuid4(),
        first_order_id="o-1",
        order_id="o-1",
        customer_id="c-1",
        fingerprint="f",
        warehouse="WH-BER",
        zone="B",
        carrier="DPD",
        service="standard",
        service_level="standard",
        promised_by=NOW + timedelta(days=4),
        lines=[line("TEE-M", 1)],
        value="19.00",
        weight_grams=500,
        in_place=False,
        warehouses=[],
        carriers=[],
        allocated_at=NOW,
        replaces=None,  # eventsourcing asks for every keyword-only argument
    )
    recipient = {
        "name": "Ada",
        "line1": "Hauptstr. 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    }
    steps = [
        lambda s: s.stock_in_place("o-1", [line("TEE-M", 1)]),
        lambda s: s.join("o-2", [line("CAP-RED", 2, ["S1", "S2"])], "30.00", 1000, NOW),
        lambda s: s.in_wave("w-1"),
        lambda s: s.all_picked(),
        lambda s: s.pack(2000, [], recipient, RULES, NOW),  # flagged: items missing
        lambda s: s.pack(
            1500,
            [{"sku": "TEE-M", "qty": 1}, {"sku": "CAP-RED", "qty": 2, "serials": ["S1", "S2"]}],
            recipient,
            RULES,
            NOW,
        ),
        lambda s: s.track("in_transit", NOW + timedelta(hours=2), "hub"),
        lambda s: s.track("out_for_delivery", NOW + timedelta(days=1), None),
        lambda s: s.track("failed", NOW + timedelta(days=1, hours=2), None),
        lambda s: s.check_delay(NOW + timedelta(days=5)),
        lambda s: s.track("out_for_delivery", NOW + timedelta(days=6), None),
        lambda s: s.track("delivered", NOW + timedelta(days=6, hours=3), None),
    ]
    for act in steps:
        shipment = copy_isolates(shipment, act)
    assert shipment.status == "delivered" and shipment.delayed and shipment.failed_attempts == 1
    assert len(shipment.flags) == 1 and shipment.units == 3
    same_after_replay(shipment)


@pytest.mark.parametrize("seed", range(5))
def test_a_wave_walked_at_random_on_copies(seed):
    rng = random.Random(seed)
    pick_list = []
    for n in range(1, 13):
        serials = [f"S{n}-{k}" for k in range(2)] if rng.random() < 0.3 else []
        pick_list.append(
            {
                "sequence": n,
                "bin": f"B-0{rng.randint(1, 3)}-{rng.randint(1, 8)}",
                "zone": "B",
                "sku": rng.choice(["TEE-M", "CAP-RED", "CAM-1"]),
                "qty": len(serials) or rng.randint(1, 3),
                "shipment_id": f"s-{n % 4}",
                "order_id": f"o-{n % 5}",
                "serials": serials,
            }
        )
    wave = Wave(
        warehouse="WH-BER",
        zone="B",
        shard=0,
        sequence=1,
        shipment_ids=[f"s-{i}" for i in range(4)],
        order_ids=[f"o-{i}" for i in range(5)],
        pick_list=pick_list,
        trigger="size",
        opened_at=NOW,
        released_at=NOW,
    )
    for step in range(60):
        ln = rng.choice(pick_list)
        if rng.random() < 0.05:
            wave = copy_isolates(wave, lambda w, o=ln["order_id"]: w.pull(o))
            continue
        serial = rng.choice(ln["serials"]) if ln["serials"] else None
        qty = 1 if serial else rng.randint(1, 3)
        bin_code = ln["bin"] if rng.random() < 0.9 else "Z-99-9"

        def pick(w: Wave, ln=ln, bin_code=bin_code, qty=qty, serial=serial) -> None:
            with contextlib.suppress(Refused):  # wrong scans change nothing
                w.pick(f"p{step % 3}", bin_code, ln["sku"], qty, serial, NOW)

        wave = copy_isolates(wave, pick)
    assert sum(wave.picked.values()) > 5  # the walk really picked
    for ln in wave.live_lines():
        assert 0 <= wave.left(ln) <= ln["qty"]
        assert len(set(wave.picked_serials.get(ln["sequence"], []))) == len(
            wave.picked_serials.get(ln["sequence"], [])
        )
    same_after_replay(wave)


@pytest.mark.parametrize("seed", range(5))
def test_a_lane_walked_at_random_releases_each_sequence_once(seed):
    rng = random.Random(seed)
    lane, now, released = Lane("WH-BER", "B", 0), NOW, []
    for n in range(80):
        now += timedelta(seconds=rng.randint(1, 40))
        choice = rng.random()
        if choice < 0.7:
            lane = copy_isolates(lane, lambda lane, n=n: lane.add(f"s-{n}", rng.randint(1, 2), now))
        elif choice < 0.85 and lane.waiting:
            victim = rng.choice(sorted(lane.waiting))
            lane = copy_isolates(lane, lambda lane, v=victim: lane.remove(v))
        trigger = lane.due(now, RULES)
        if trigger:

            def release(lane: Lane, trigger: str = trigger) -> None:
                released.append(lane.release(trigger, now))

            lane = copy_isolates(lane, release)
    sequences = [seq for seq, _, _ in released]
    assert sequences == list(range(1, len(released) + 1))
    shipments = [s for _, ss, _ in released for s in ss]
    assert len(shipments) == len(set(shipments))  # none in two waves
    same_after_replay(lane)


def test_the_small_aggregates_on_copies():
    file = OrderFile("o-1")
    for act in (
        lambda f: f.record_placed(
            customer_id="c",
            region="DE-1",
            fingerprint="f",
            lines=[{"sku": "TEE-M", "qty": 1}],
            value="9.00",
            service_level="standard",
        ),
        lambda f: f.record_reserved(
            [{"sku": "TEE-M", "qty": 1, "warehouse": "WH-BER", "serials": []}], []
        ),
        lambda f: f.record_confirmed(NOW),
        lambda f: f.allocated(["s-1"]),
        lambda f: f.move_refused("s-1", "WH-AMS", "no"),
        lambda f: f.record_cancelled(),
    ):
        file = copy_isolates(file, act)
    same_after_replay(file)
    capacity = Capacity("WH-BER", "2026-12-01", 0)
    for act in (
        lambda c: c.take("s-1"),
        lambda c: c.take("s-2"),
        lambda c: c.give_back("s-1"),
        lambda c: c.borrow(lender=1, slots=3),
        lambda c: c.lend(to=2, slots=1),
    ):
        capacity = copy_isolates(capacity, act)
    assert capacity.used == 1 and capacity.room(5) == 5 + 3 - 1 - 1
    same_after_replay(capacity)
    slotting = Slotting("WH-BER")
    for fastest in (["TEE-M"], ["CAP-RED", "TEE-M"], []):
        slotting.reslot(fastest, RULES, NOW)
    same_after_replay(slotting)
