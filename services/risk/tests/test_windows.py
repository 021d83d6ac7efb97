"""The velocity worker (`python -m risk.windows`, a child process) on the embedded broker:
counts per customer, address and device though one key's orders are spread over the
orders.v1 partitions; a SIGKILL mid-stream changes no final count (the window state comes
back from the changelog, all of it); re-publishing changes nothing; a late order corrects
the later ones. Read as the risk service would: the latest count per (order, dimension)
on risk.velocity.v1. The counting itself: test_windows_velocity.py."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from risk.windows.app import TABLE
from risk.windows.harness import (
    Publisher,
    Told,
    WorkerProcess,
    expected_counts,
    latest,
    order,
    order_message,
    publish,
    random_orders,
    read_all,
    read_told,
)
from shopfloor_contracts.orders import OrderPlaced
from shopfloor_contracts.topics import ORDERS
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.fausttables import SEAL_KEY
from shopfloor_runtime.testing import fresh

pytestmark = pytest.mark.integration


def messages(orders: list[OrderPlaced]) -> list[tuple[str, bytes]]:
    return [(o.order_id, order_message(o)) for o in orders]


async def told_until(
    bootstrap: str, done: Callable[[list[Told]], bool], timeout: float = 60.0
) -> list[Told]:
    deadline = time.monotonic() + timeout
    while True:
        told = await read_told(bootstrap)
        if done(told):
            return told
        if time.monotonic() > deadline:
            raise AssertionError(f"not told in {timeout}s; {len(told)} messages")
        await asyncio.sleep(0.5)


def settled_at(expected: dict[tuple[str, str], int]) -> Callable[[list[Told]], bool]:
    return lambda told: latest(told) == expected


@pytest.fixture
def base_time() -> datetime:
    """An hour ago: well inside the buckets' retention (which faust counts from the
    wall clock), and exact to the second so ties are easy to make."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def worker(own_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker that tells every count (RISK_WINDOWS_TELL=all), so the counting can be
    checked order by order."""
    process = WorkerProcess(own_broker.bootstrap_servers, tmp_path, {"RISK_WINDOWS_TELL": "all"})
    yield process
    process.kill()


@pytest.fixture
def default_worker(own_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker as deployed: only counts over their limit (4 orders in 10 min) told."""
    process = WorkerProcess(own_broker.bootstrap_servers, tmp_path)
    yield process
    process.kill()


def burst(base: datetime, n: int, **shared: str | None) -> list[OrderPlaced]:
    """`n` orders a few seconds apart, sharing what `shared` names, all else their own."""
    made = []
    for k in range(n):
        fields: dict[str, Any] = {
            "customer_id": fresh("cust"),
            "address": fresh("addr"),
            "device": fresh("dev"),
            **shared,
        }
        made.append(order(fresh("order"), placed_at=base + timedelta(seconds=7 * k), **fields))
    return made


def partitions_of(orders: list[OrderPlaced]) -> set[int]:
    return {partition_for(o.order_id.encode(), ORDERS.partitions) for o in orders}


async def test_the_kth_order_of_a_burst_counts_k_for_its_customer_address_and_device(
    own_broker: EmbeddedBroker, worker: WorkerProcess, base_time: datetime
) -> None:
    customer = burst(base_time, 12, customer_id=fresh("cust"))
    address = burst(base_time, 12, address=fresh("addr"))
    device = burst(base_time, 12, device=fresh("dev"), address=None)  # no destination
    orders = customer + address + device
    assert all(len(partitions_of(b)) >= 4 for b in (customer, address, device))
    paid = json.loads(order_message(customer[0]))
    paid["event_type"] = "OrderPaid"
    noise = [("junk", b"\xff not an envelope"), (customer[0].order_id, json.dumps(paid).encode())]
    worker.start()
    # shuffled, so later orders of a key often arrive before earlier ones
    await publish(
        own_broker.bootstrap_servers, random.sample(messages(orders), len(orders)) + noise
    )

    told = await told_until(own_broker.bootstrap_servers, settled_at(expected_counts(orders)))

    final = latest(told)
    for dimension, group in (("customer", customer), ("address", address), ("device", device)):
        assert [final[(o.order_id, dimension)] for o in group] == list(range(1, 13))
    assert not any(o.destination for o in device)
    assert re.search(r"skipped unreadable message orders\.v1\[\d\]@\d+: ", worker.log())


async def test_republishing_the_same_messages_changes_no_count(
    own_broker: EmbeddedBroker, worker: WorkerProcess, base_time: datetime
) -> None:
    orders = burst(base_time, 10, customer_id=fresh("cust"), device=fresh("dev"))
    sent = messages(orders)
    worker.start()
    await publish(own_broker.bootstrap_servers, sent)
    expected = expected_counts(orders)
    before = await told_until(own_broker.bootstrap_servers, settled_at(expected))

    await publish(own_broker.bootstrap_servers, sent)  # the same bytes, event ids and all

    seen = {(t.partition, t.offset) for t in before}

    def retold_all(told: list[Told]) -> bool:
        again = {(t.order_id, t.dimension) for t in told if (t.partition, t.offset) not in seen}
        return again == set(expected)

    after = await told_until(own_broker.bootstrap_servers, retold_all)
    assert latest(after) == expected
    said_before = {t.event_id for t in before}
    assert {t.event_id for t in after} == said_before  # nothing new was said


async def test_a_late_order_tells_the_later_orders_their_corrected_counts(
    own_broker: EmbeddedBroker, worker: WorkerProcess, base_time: datetime
) -> None:
    customer = fresh("cust")
    on_time = [
        order(fresh("order"), customer, base_time + timedelta(seconds=s)) for s in (0, 60, 120, 180)
    ]
    late = order(fresh("order"), customer, base_time + timedelta(seconds=90))
    worker.start()
    await publish(own_broker.bootstrap_servers, messages(on_time))
    before = await told_until(own_broker.bootstrap_servers, settled_at(expected_counts(on_time)))
    assert [latest(before)[(o.order_id, "customer")] for o in on_time] == [1, 2, 3, 4]

    await publish(own_broker.bootstrap_servers, messages([late]))

    expected = expected_counts([*on_time, late])
    after = await told_until(own_broker.bootstrap_servers, settled_at(expected))
    assert [latest(after)[(o.order_id, "customer")] for o in on_time] == [1, 2, 4, 5]
    assert latest(after)[(late.order_id, "customer")] == 3
    seen = {(t.partition, t.offset) for t in before}
    retold = {t.order_id for t in after if (t.partition, t.offset) not in seen}
    assert retold == {late.order_id, on_time[2].order_id, on_time[3].order_id}


async def test_by_default_only_counts_over_the_limit_are_told_also_when_a_late_order_makes_them(
    own_broker: EmbeddedBroker, default_worker: WorkerProcess, base_time: datetime
) -> None:
    customer = fresh("cust")
    on_time = [
        order(fresh("order"), customer, base_time + timedelta(seconds=s))
        for s in (0, 60, 120, 180, 240, 300)
    ]
    default_worker.start()
    await publish(own_broker.bootstrap_servers, messages(on_time))
    over = {k: v for k, v in expected_counts(on_time).items() if v > 4}
    assert over == {(on_time[4].order_id, "customer"): 5, (on_time[5].order_id, "customer"): 6}
    before = await told_until(own_broker.bootstrap_servers, settled_at(over))

    # placed at 90 s: the orders of 120 and 180 s now count 4 and 5, the late one 3
    late = order(fresh("order"), customer, base_time + timedelta(seconds=90))
    await publish(own_broker.bootstrap_servers, messages([late]))
    over = {k: v for k, v in expected_counts([*on_time, late]).items() if v > 4}
    assert set(over) == {(o.order_id, "customer") for o in on_time[3:]}
    after = await told_until(own_broker.bootstrap_servers, settled_at(over))
    seen = {(t.partition, t.offset) for t in before}
    assert sorted(t.count for t in after if (t.partition, t.offset) not in seen) == [5, 6, 7]
    assert all(t.count > 4 for t in after)  # the late order's own count (3): not told


def changelog_state(records: list[Any], seals: dict[int, int]) -> tuple[int, int]:
    """Buckets and order entries of the changelog read up to the seals (as recovery
    should), by applying it the way faust's memory store does."""
    state: dict[tuple[int, bytes], dict[str, Any]] = {}
    for r in records:
        if r.offset >= seals.get(r.partition, r.offset + 1):
            continue
        if r.value is None:
            state.pop((r.partition, r.key), None)
        else:
            state[(r.partition, r.key)] = json.loads(r.value)
    return len(state), sum(len(bucket) for bucket in state.values())


async def test_a_worker_killed_mid_stream_ends_with_the_counts_of_a_clean_run(
    own_broker: EmbeddedBroker, worker: WorkerProcess, base_time: datetime
) -> None:
    bootstrap = own_broker.bootstrap_servers
    orders = random_orders(base_time, 600, spacing_s=0.4, pool=20, seed=5)
    expected = expected_counts(orders)
    worker.start()
    await worker.recovered()
    async with Publisher(bootstrap) as publisher:
        producing = asyncio.create_task(publisher.at_rate(orders, rate=60))
        while publisher.sent < 300:
            await asyncio.sleep(0.1)
        await told_until(bootstrap, lambda told: len(told) > 300)

        worker.kill()  # mid-stream, a commit interval's work not committed
        worker.start()
        _, buckets, entries = await worker.recovered()
        await producing
    await told_until(bootstrap, settled_at(expected), timeout=90)

    assert entries > 300  # the window state came back, it was not started again
    # ... all of it: recovery read the changelog up to this start's seals, not to the
    # broker's end offset (the first offset of the last batch + 1)
    seals = json.loads(re.findall(r"before recovery at offsets (\{.*\})", worker.log())[-1])
    changelog = await read_all(bootstrap, f"risk-windows-{TABLE}-changelog", 6)
    assert all(r.key == SEAL_KEY for r in changelog if r.value is None)
    assert changelog_state(changelog, {int(p): o for p, o in seals.items()}) == (buckets, entries)
