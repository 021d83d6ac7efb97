"""Fulfilment scaling out and back at peak, end to end on the real broker and
PostgreSQL: a steady stream of confirmed orders while fulfilment worker processes go
1 -> 3 -> 1 (two started, then one killed with SIGKILL and one stopped). Every order
ends in exactly one shipment and exactly one wave; none lost, none twice; no wave mixes
warehouses or zones; no pick list names a unit twice. Read as an analyst would: from
fulfilment.v1 (re-published copies keep their event id, so they are counted once)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.testing import postgres_database

from bench.upstream import confirmed_order
from tests.processes import ServiceProcess
from tests.support import ContractProducer, read_topic

pytestmark = pytest.mark.integration

RATE = 25  # confirmed orders per second
SECONDS = 36
SKUS = ("TEE-S", "TEE-M", "MUG-WHITE", "CAP-RED", "SOCKS-3P", "CAM-1")
SERIALIZED = "CAM-1"


class Stream:
    """Plays the order and inventory services: each order placed, its recipient, its
    stock held in the warehouse nearest its destination (serials for CAM-1), confirmed."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.orders = ContractProducer(broker, "order")
        self.inventory = ContractProducer(broker, "inventory")
        self.placed: list[str] = []
        self.rng = random.Random(8)  # noqa: S311 - test data
        self.serials = (f"SN-{n:06d}" for n in range(10**6))

    def one(self) -> tuple[list, list]:
        customer = f"cust-{self.rng.randrange(400)}"  # some repeat: merges happen
        order = confirmed_order(self.rng, customer, SKUS, self._serials)
        self.placed.append(order.order_id)
        return (
            [(message, order.order_id) for message in order.order_side],
            [(order.reserved, order.order_id)],
        )

    def _serials(self, sku: str, qty: int) -> list[str]:
        return [next(self.serials) for _ in range(qty)] if sku == SERIALIZED else []

    async def run(self, seconds: float) -> None:
        for _ in range(int(seconds * 2)):
            order_side, inventory_side = [], []
            for _ in range(RATE // 2):
                o, i = self.one()
                order_side += o
                inventory_side += i
            await asyncio.gather(
                self.orders.publish(order_side), self.inventory.publish(inventory_side)
            )
            await asyncio.sleep(0.5)


def worker(broker: EmbeddedBroker, dsn: str, logs: Path, relay: bool) -> ServiceProcess:
    env = {
        "FULFILMENT_BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FULFILMENT_STORE__DSN": dsn,
        "FULFILMENT_RELAY__ENABLED": "true" if relay else "false",  # one relay per service
        "FULFILMENT_RULES__WAVE_WINDOW_S": "3",
        "FULFILMENT_RULES__WAVE_SIZE": "20",
        "FULFILMENT_TICK_S": "0.5",
        # the default 400 shipments a day each would leave most of this stream waiting
        "FULFILMENT_RULES__WAREHOUSES": json.dumps(
            {code: {"daily_capacity": 100_000} for code in ("WH-BER", "WH-AMS")}
        ),
    }
    return ServiceProcess("fulfilment", env, logs)


async def test_workers_going_1_3_1_under_a_steady_stream_keep_every_wave_exact(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    stream = Stream(own_broker)
    with postgres_database("sf_fulfilment") as dsn:
        first = worker(own_broker, dsn, tmp_path, relay=True).start()
        second = worker(own_broker, dsn, tmp_path, relay=False)
        third = worker(own_broker, dsn, tmp_path, relay=False)
        try:
            await first.ready()

            async def scale() -> None:
                await asyncio.sleep(SECONDS / 4)
                second.start(), third.start()
                await asyncio.gather(second.ready(), third.ready())
                await asyncio.sleep(SECONDS / 4)
                shares.extend([await applied(second.url), await applied(third.url)])
                second.kill()  # SIGKILL mid-stream: its partitions move on
                await asyncio.sleep(SECONDS / 8)
                third.stop()

            shares: list[float] = []
            await asyncio.gather(stream.run(SECONDS), scale())
            assert second.starts == third.starts == 1
            assert all(share > 0 for share in shares), f"a worker never got work: {shares}"
            expected = set(stream.placed)

            waves_of = await settle(own_broker, expected, first.url)
            messages = await fulfilment_messages(own_broker)
        finally:
            for process in (third, second, first):
                process.stop()

    assert len(expected) == RATE // 2 * 2 * SECONDS
    # exactly one wave per order
    assert {o: len(w) for o, w in waves_of.items() if len(w) != 1} == {}
    # exactly one shipment per order
    shipments_of: dict[str, set[str]] = defaultdict(set)
    for m in messages["ShipmentAllocated"]:
        shipments_of[m["order_id"]].add(m["shipment_id"])
    assert set(shipments_of) == expected
    assert {o: s for o, s in shipments_of.items() if len(s) != 1} == {}
    # no wave mixes warehouses or zones, no unit twice in any pick list
    seen_units: set[tuple[str, str, str]] = set()
    seen_serials: set[str] = set()
    warehouse = {m["shipment_id"]: m["warehouse"] for m in messages["ShipmentAllocated"]}
    for wave in messages["WaveReleased"]:
        zones = {line["zone"] for line in wave["pick_list"]}
        assert wave["zone"] == "multi" or zones == {wave["zone"]}, wave["wave_id"]
        for line in wave["pick_list"]:
            unit = (line["shipment_id"], line["order_id"], line["sku"])
            assert unit not in seen_units, f"{unit} listed twice"
            seen_units.add(unit)
            for serial in line["serials"]:
                assert serial not in seen_serials, f"serial {serial} listed twice"
                seen_serials.add(serial)
        assert {warehouse[s] for s in wave["shipment_ids"]} == {wave["warehouse"]}


async def settle(broker: EmbeddedBroker, expected: set[str], api: str) -> dict[str, set[str]]:
    """Wait (up to two minutes) until every order is in a released wave; if some never
    get there, say where they are."""
    waves: dict[str, set[str]] = {}
    for _ in range(60):
        waves = await waves_by_order(broker)
        if set(waves) >= expected:
            return waves
        await asyncio.sleep(2)
    missing = sorted(expected - set(waves))
    async with httpx.AsyncClient(base_url=api) as client:
        found = [(await client.get("/shipments", params={"order": o})).json() for o in missing]
    where = Counter(
        (s["status"], s["zone"], len(s["order_ids"])) if s else "no shipment"
        for shipments in found
        for s in (shipments or [None])
    )
    raise AssertionError(
        f"{len(missing)} of {len(expected)} orders never reached a wave: {dict(where)}"
    )


async def applied(url: str) -> float:
    """Messages a worker's consumer applied so far (its /metrics)."""
    async with httpx.AsyncClient(base_url=url) as client:
        text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("shopfloor_events_consumed_total") and 'outcome="applied"' in line
    )


async def fulfilment_messages(broker: EmbeddedBroker) -> dict[str, list[dict]]:
    """Each fulfilment.v1 event once (a re-published copy keeps its event id)."""
    seen: set[str] = set()
    found: dict[str, list[dict]] = defaultdict(list)
    for record in await read_topic(broker.bootstrap_servers, "fulfilment.v1", 60):
        message = json.loads(record.value)
        if message["event_id"] in seen:
            continue
        seen.add(message["event_id"])
        found[message["event_type"]].append(message["payload"])
    return found


async def waves_by_order(broker: EmbeddedBroker) -> dict[str, set[str]]:
    waves: dict[str, set[str]] = defaultdict(set)
    for wave in (await fulfilment_messages(broker))["WaveReleased"]:
        for order_id in wave["order_ids"]:
            waves[order_id].add(wave["wave_id"])
    return waves
