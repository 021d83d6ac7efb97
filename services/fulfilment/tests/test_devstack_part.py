"""The fulfilment part of the dev stack without a stack: what its pickers, packers and
carriers decide, checked against the service's own rules (the domain's Wave refuses
every deliberately wrong scan), and one whole floor run against the service in process
(SQLite, relay and consumer off; the order and stock facts handed to the application)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fulfilment.api import WaveOut
from fulfilment.bootstrap import SPEC, FulfilmentService
from fulfilment.devstack import (
    DELIVERY,
    FAILING_ONCE,
    Floor,
    WarehouseFloor,
    complete_shipments,
    next_scan,
    open_lines,
    pack_request,
    pick_queue,
    wrong_scan,
)
from fulfilment.domain import Refused, Wave
from shopfloor_devstack import scenario
from shopfloor_devstack.parts import Failures, Http

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def line(seq: int, shipment: str, sku: str, qty: int, **extra: Any) -> dict[str, Any]:
    return {
        "sequence": seq,
        "bin": extra.pop("bin", f"B-{seq:02d}-1"),
        "zone": "B",
        "sku": sku,
        "qty": qty,
        "shipment_id": shipment,
        "order_id": extra.pop("order_id", f"o-{shipment}"),
        "serials": extra.pop("serials", []),
        "picked": extra.pop("picked", 0),
        "cancelled": extra.pop("cancelled", False),
    }


def test_pickers_walk_the_open_lines_in_route_order_leaving_out_cancelled_and_picked() -> None:
    wave = {
        "pick_list": [
            line(3, "s1", "TEE-S", 1),
            line(1, "s1", "MUG-WHITE", 2, picked=2),
            line(2, "s2", "CAP-RED", 1, cancelled=True),
            line(4, "s2", "TOTE-BAG", 3, picked=1),
        ]
    }
    assert [ln["sequence"] for ln in open_lines(wave)] == [3, 4]


def test_a_shipment_is_complete_when_all_its_live_lines_are_picked() -> None:
    wave = {
        "pick_list": [
            line(1, "s1", "MUG-WHITE", 2, picked=2),
            line(2, "s1", "TEE-S", 1, cancelled=True),  # its order was pulled
            line(3, "s2", "MUG-WHITE", 1, picked=1),
            line(4, "s2", "CAP-RED", 2, picked=1),
            line(5, "s3", "TOTE-BAG", 1, cancelled=True),  # nothing left: pulled, not packed
        ]
    }
    assert complete_shipments(wave) == ["s1"]


def test_a_plain_line_is_one_scan_a_serialized_one_a_scan_per_unit() -> None:
    assert next_scan(line(1, "s1", "MUG-WHITE", 3, picked=1)) == {
        "bin": "B-01-1",
        "sku": "MUG-WHITE",
        "qty": 2,
    }
    serialized = line(2, "s1", "CAP-RED", 3, serials=["SN-1", "SN-2", "SN-3"], picked=1)
    assert next_scan(serialized) == {"bin": "B-02-1", "sku": "CAP-RED", "qty": 1, "serial": "SN-2"}
    # The service said SN-2 was picked already (by another hand): the next one is scanned.
    assert next_scan(serialized, {"SN-2"})["serial"] == "SN-3"  # type: ignore[index]
    assert next_scan(serialized, {"SN-1", "SN-2", "SN-3"}) is None


def a_wave() -> Wave:
    lines = [
        line(1, "s1", "MUG-WHITE", 2, bin="A-01-1", order_id="o1"),
        line(2, "s2", "MUG-WHITE", 1, bin="A-01-1", order_id="o2"),
        line(3, "s2", "CAP-RED", 2, bin="B-04-2", order_id="o2", serials=["SN-1", "SN-2"]),
        line(4, "s3", "TEE-S", 1, bin="C-02-7", order_id="o3"),
    ]
    for ln in lines:
        del ln["picked"], ln["cancelled"]
    return Wave(
        warehouse="WH-BER",
        zone="multi",
        shard=0,
        sequence=1,
        shipment_ids=["s1", "s2", "s3"],
        order_ids=["o1", "o2", "o3"],
        pick_list=lines,
        trigger="size",
        opened_at=NOW,
        released_at=NOW,
    )


def test_every_deliberately_wrong_scan_is_one_the_service_refuses() -> None:
    wave = a_wave()
    wave.pull("o3")  # a cancelled order's SKU is no longer on the list either
    seen = set()
    for seed in range(200):
        rng = random.Random(seed)
        shown = WaveOut.of(wave).model_dump()
        target = rng.choice(open_lines(shown))
        scan, what = wrong_scan(rng, shown, target, sorted(scenario.CATALOGUE))
        seen.add(what)
        with pytest.raises(Refused, match="wrong item|does not hold"):
            wave.pick("picker-01", scan["bin"], scan["sku"], scan["qty"], scan.get("serial"), NOW)
    assert seen == {"wrong bin", "wrong item"}
    assert wave.picked == {}


def test_the_packer_weighs_within_the_tolerance_unless_the_scale_is_made_wrong() -> None:
    floor, rng = Floor(), random.Random(1)
    shipment = {
        "weight_grams": 2000,
        "lines": [
            {"order_id": "o1", "sku": "MUG-WHITE", "qty": 2, "serials": [], "bin": "A-01-1"},
            {"order_id": "o2", "sku": "CAP-RED", "qty": 1, "serials": ["SN-1"], "bin": "B-04-2"},
        ],
    }
    weights = [pack_request(rng, shipment, floor, wrong=False)["weight_grams"] for _ in range(200)]
    assert 1960 <= min(weights) < max(weights) <= 2040  # well inside the service's 5 %
    wrong = pack_request(rng, shipment, floor, wrong=True)
    assert wrong["weight_grams"] == 2400
    assert wrong["items"] == [
        {"sku": "MUG-WHITE", "qty": 2, "serials": []},
        {"sku": "CAP-RED", "qty": 1, "serials": ["SN-1"]},
    ]


# -- one floor run against the service in process --------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[FulfilmentService]:
    off = {"enabled": False}
    settings = SPEC.settings(
        store={"data_dir": tmp_path},
        relay=off,
        consumer=off,
        rules={"wave_size": 2},
        shards=1,  # both orders in one wave
    )
    built = SPEC.build(settings)
    try:
        async with built.running():
            yield built
    finally:
        built.close()


def order_facts(service: FulfilmentService, order_id: str, lines: list[tuple[Any, ...]]) -> None:
    """What fulfilment hears of a placed, paid, reserved and confirmed order."""
    app = service.app
    placed = {
        "customer_id": f"cust-{order_id}",
        "region": "DE-1",
        "fingerprint": None,
        "lines": [{"sku": sku, "qty": qty} for sku, qty, *_ in lines],
        "value": "40.00",
        "service_level": "standard",
    }
    held = [
        {"sku": sku, "qty": qty, "warehouse": "WH-BER", "serials": list(rest[0]) if rest else []}
        for sku, qty, *rest in lines
    ]
    recipient = dict(scenario.ADDRESSES[0])
    app.command(lambda uow: app.order_placed(uow, order_id, placed))
    app.command(lambda uow: app.recipient_recorded(uow, order_id, recipient))
    app.command(lambda uow: app.stock_reserved(uow, order_id, held, []))
    app.command(lambda uow: app.order_confirmed(uow, order_id, NOW))


async def test_the_floor_picks_packs_and_delivers_a_wave_refusals_included(
    service: FulfilmentService,
) -> None:
    order_facts(service, "o1", [("MUG-WHITE", 2), ("TEE-S", 1)])
    order_facts(service, "o2", [("MUG-WHITE", 1), ("CAP-RED", 2, ["SN-1", "SN-2"])])
    # Every scan wrong first, every parcel weighed wrong first, every delivery failing once.
    floor = Floor(
        every_s=0.02,
        max_scan_s=0.001,
        min_scan_s=0,
        min_hop_s=0,
        max_hop_s=0.01,
        wrong_scan=1.0,
        wrong_weight=1.0,
        failed_delivery=1.0,
    )
    url, failures = "http://fulfilment.test", Failures()
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport) as client:
        world = scenario.world(1, {"fulfilment": url}, seed=5)
        part = WarehouseFloor(world, Http(client, url, failures), floor)
        work = asyncio.create_task(part.run())
        for _ in range(300):
            if part.counts.delivered == 2 or failures.count:
                break
            await asyncio.sleep(0.02)
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        assert failures.count == 0, failures.last
        # MUG-WHITE for each order, TEE-S, and one scan per serialized CAP-RED.
        assert part.progress() == (
            "1 waves picked, 2 packed, 2 delivered, 5 wrong scans and 2 wrong weights refused"
        )
        shipments = [
            (await client.get(f"{url}/shipments", params={"order": o})).json()[0]
            for o in ("o1", "o2")
        ]
        for shipment in shipments:
            assert shipment["status"] == "delivered"
            assert [t["milestone"] for t in shipment["tracking"]] == list(FAILING_ONCE)
            assert len(shipment["flags"]) == 1  # the wrong weighing, for a supervisor
        assert set(FAILING_ONCE) == set(DELIVERY) | {"failed"}
        reading = await pick_queue(client, url)
        assert reading == "0 waves to pick, accuracy 50.0%"
