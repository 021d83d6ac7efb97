"""Measurements of the velocity worker on the embedded broker, the numbers behind
docs/risk-velocity-faust.md. Development only (it starts brokers; it needs the dev stack).

    python -m bench.risk_windows backlog [--orders 1000,5000,20000] [--no-seal]
                                           [--kill-after SECONDS]
    python -m bench.risk_windows rebalance [--rate 40] [--seconds 90]
    python -m bench.risk_windows uncommitted [--runs 10]

`backlog`, per size: a fresh broker, N orders on orders.v1 placed over two hours, one
worker started; throughput (orders per second through one worker, from the first to the
last VelocityObserved), changelog records and bytes per order; then the worker SIGKILLed
and started again: recovery time and what it restored, against the changelog as it
stood (read to the fetch high watermark), and at the end the latest counts against the
reference. `--kill-after` kills it that long into the backlog instead of after it.
`--no-seal` runs the worker without sealing the changelog before recovery, to show what
the broker's low end offset costs.

`rebalance`: worker A under a live stream at `--rate` orders/s; B joins, leaves
(SIGTERM), joins again, then A is SIGKILLed. Per event, the longest time an order
published from 2 s before it to 2 s before the next waited for its first count, and the
longest gap in the output; at the end the counts against the reference.

`uncommitted`: `--runs` times, a restart onto input partitions never committed, with a
backlog (the case where faust's resume after recovery drops records): how many runs
finished and how many stalled.

Each run waits until no `bench.peak` runs (they would disturb each other) and prints one
JSON line per result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from risk.windows.app import TABLE
from risk.windows.harness import (
    Publisher,
    Told,
    WorkerProcess,
    expected_counts,
    high_watermarks,
    latest,
    order_message,
    random_orders,
    read_all,
    read_told,
)
from shopfloor_contracts.orders import OrderPlaced
from shopfloor_contracts.topics import ORDERS
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.fausttables import SEAL_KEY
from shopfloor_runtime.testing import free_port

from bench.harness import process_cpu_s

GROUP = "risk-windows"
CHANGELOG = f"{GROUP}-{TABLE}-changelog"
KEYED = f"{GROUP}-{ORDERS.name}-velocity-key-repartition"


def say(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


async def quiet_machine() -> None:
    pgrep = ["pgrep", "-f", "bench.peak"]
    while subprocess.run(pgrep, capture_output=True).returncode == 0:  # noqa: S603, S607
        print("waiting for bench.peak to finish", file=sys.stderr, flush=True)
        await asyncio.sleep(10)


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


async def committed(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP)
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)
        }
    finally:
        await consumer.stop()


def input_ends(orders: list[OrderPlaced]) -> dict[int, int]:
    """Records per partition of orders.v1: where the worker's committed offsets stand
    once it has read everything."""
    ends = dict.fromkeys(range(ORDERS.partitions), 0)
    for o in orders:
        ends[partition_for(o.order_id.encode(), ORDERS.partitions)] += 1
    return ends


async def until(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done in {timeout}s")
        await asyncio.sleep(every)


async def all_committed(bootstrap: str, orders: list[OrderPlaced]) -> bool:
    """The worker's group has committed every input record (shown on stderr). The
    repartition topic's end is read, not derived (orders read again after a crash are
    re-keyed again), and only after orders.v1 is done: its commit follows the flush of
    everything re-keyed."""
    behind = {ORDERS.name: await _behind(bootstrap, ORDERS.name, input_ends(orders))}
    ends = await high_watermarks(bootstrap, KEYED, ORDERS.partitions)
    behind[KEYED] = await _behind(bootstrap, KEYED, ends)
    print(f"  not committed yet: {behind}", file=sys.stderr, flush=True)
    return not any(behind.values())


async def _behind(bootstrap: str, topic: str, ends: dict[int, int]) -> int:
    done = await committed(bootstrap, topic, len(ends))
    return sum(ends.values()) - sum(done.values())


def changelog_truth(records: list[Any]) -> dict[str, int]:
    """The changelog applied as faust's memory store applies it, seals aside."""
    state: dict[tuple[int, bytes], Any] = {}
    for r in records:
        if r.value is None:
            state.pop((r.partition, r.key), None)
        else:
            state[(r.partition, r.key)] = json.loads(r.value)
    real = [r for r in records if r.key != SEAL_KEY]
    return {
        "records": len(real),
        "bytes": sum(len(r.value) + len(r.key) for r in real),
        "buckets": len(state),
        "entries": sum(len(b) for b in state.values()),
    }


def rss_mb(worker: WorkerProcess) -> float:
    assert worker.process is not None
    for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def backlog(n: int, seal: bool, keep: bool, kill_after_s: float | None) -> dict[str, Any]:
    """With `kill_after_s` the worker is SIGKILLed that long into the backlog instead
    of after it, and the counts are checked once the restarted worker has done it all."""
    await quiet_machine()
    tmp = Path(tempfile.mkdtemp(prefix=f"risk-windows-backlog-{n}-"))
    broker = EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log").start()
    # every count told: the counts are checked against the reference, and the first and
    # last of them time the run
    env = {"RISK_WINDOWS_SEAL_CHANGELOG": str(seal).lower(), "RISK_WINDOWS_TELL": "all"}
    worker = WorkerProcess(broker.bootstrap_servers, tmp, env)
    bootstrap = broker.bootstrap_servers
    try:
        base = datetime.now(UTC) - timedelta(hours=3)
        # ~5 orders per key over the span: counts of 1-3 in a 10-minute window
        orders = random_orders(base, n, spacing_s=7200 / n, pool=max(n // 5, 1), seed=n)
        async with Publisher(bootstrap) as publisher:
            for start in range(0, n, 2000):
                chunk = orders[start : start + 2000]
                await publisher.send([(o.order_id, order_message(o)) for o in chunk])
        result: dict[str, Any] = {
            "scenario": "backlog" if kill_after_s is None else f"kill after {kill_after_s}s",
            "orders": n,
            "seal": seal,
            "load": load(),
        }
        began = time.monotonic()
        worker.start()
        await worker.recovered()
        if kill_after_s is None:
            await until(lambda: all_committed(bootstrap, orders), timeout=600, every=2.0)
            result["done_after_start_s"] = round(time.monotonic() - began, 1)
            assert worker.process is not None
            # CPU per order from the worker's start (recovery included): comparable on a
            # busy machine, where orders per second are not
            used = process_cpu_s(worker.process.pid) or 0.0
            result["worker_cpu_ms_per_order"] = round(1000 * used / n, 2)
            result.update(_throughput(await read_told(bootstrap), n))
        else:
            await asyncio.sleep(kill_after_s)
        result["rss_mb_before_kill"] = rss_mb(worker)
        worker.kill()
        truth = changelog_truth(await read_all(bootstrap, CHANGELOG, ORDERS.partitions))
        result["changelog"] = truth
        result["changelog_records_per_order"] = round(truth["records"] / n, 2)
        result["changelog_bytes_per_order"] = round(truth["bytes"] / n)
        result["restart"] = await _restart(worker, truth)
        await until(lambda: all_committed(bootstrap, orders), timeout=600, every=2.0)
        result["counts_off_reference"] = _off(await read_told(bootstrap), orders)
        return result
    finally:
        worker.kill()
        broker.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


async def _restart(worker: WorkerProcess, truth: dict[str, int]) -> dict[str, Any]:
    began = time.monotonic()
    worker.start()
    recovery_s, buckets, entries = await worker.recovered(timeout=600)
    await worker.wait_for(r"\[\^Worker\]: Ready", timeout=600)
    return {
        "recovery_s": recovery_s,
        "start_to_ready_s": round(time.monotonic() - began, 1),
        "buckets": buckets,
        "entries": entries,
        "missing_entries": truth["entries"] - entries,
        "rss_mb": rss_mb(worker),
    }


def _throughput(told: list[Told], n: int) -> dict[str, Any]:
    first = min(t.timestamp_ms for t in told)
    last = max(t.timestamp_ms for t in told)
    span_s = (last - first) / 1000
    return {
        "velocity_messages": len(told),
        "messages_per_order": round(len(told) / n, 2),
        "span_s": round(span_s, 1),
        "orders_per_s": round(n / span_s) if span_s else None,
    }


def _off(told: list[Told], orders: list[OrderPlaced]) -> int:
    expected, got = expected_counts(orders), latest(told)
    return sum(1 for pair, count in expected.items() if got.get(pair) != count)


# -- rebalance -----------------------------------------------------------------------------


async def rebalance(rate: float, seconds: float, keep: bool) -> dict[str, Any]:
    await quiet_machine()
    tmp = Path(tempfile.mkdtemp(prefix="risk-windows-rebalance-"))
    broker = EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log").start()
    bootstrap = broker.bootstrap_servers
    a = WorkerProcess(bootstrap, tmp, name="A")
    b = WorkerProcess(bootstrap, tmp, name="B")
    events: list[tuple[str, float]] = []
    try:
        n = int(rate * seconds)
        orders = random_orders(datetime.now(UTC), n, spacing_s=1 / rate, pool=50, seed=3)
        a.start()
        await a.recovered()
        async with Publisher(bootstrap) as publisher:
            producing = asyncio.create_task(publisher.at_rate(orders, rate))
            began = time.time()
            for at, what, act in (
                (0.15, "B joins", b.start),
                (0.35, "B leaves (SIGTERM)", b.stop),
                (0.55, "B joins again", b.start),
                (0.75, "A killed (SIGKILL)", a.kill),
            ):
                await asyncio.sleep(max(0.0, began + at * seconds - time.time()))
                events.append((what, time.time()))
                await asyncio.to_thread(act)
            await producing
        await until(lambda: all_committed(bootstrap, orders), timeout=300, every=2.0)
        told = await read_told(bootstrap)
        inputs = await read_all(bootstrap, ORDERS.name, ORDERS.partitions)
        return {
            "scenario": "rebalance",
            "rate": rate,
            "orders": n,
            "session_timeout_s": 6,
            "load": load(),
            **_stalls(inputs, told, events, began),
            "counts_off_reference": _off(told, orders),
            "velocity_messages": len(told),
        }
    finally:
        a.kill()
        b.kill()
        broker.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _stalls(
    inputs: list[Any], told: list[Told], events: list[tuple[str, float]], began: float
) -> dict[str, Any]:
    """Each order's wait for its first customer count; per event the longest wait of
    orders published from 2 s before it to the next event, and the longest output gap."""
    published = {json.loads(r.value)["aggregate_id"]: r.timestamp / 1000 for r in inputs}
    first: dict[str, float] = {}
    for t in told:
        if t.dimension == "customer":
            first[t.order_id] = min(first.get(t.order_id, 1e18), t.timestamp_ms / 1000)
    waits = sorted((published[o], first[o] - published[o]) for o in first)
    steady = [w for at, w in waits if at < events[0][1] - 1]
    out = sorted(t.timestamp_ms / 1000 for t in told)
    result: dict[str, Any] = {
        "steady_wait_p50_s": round(statistics.median(steady), 2),
        "steady_wait_p95_s": round(statistics.quantiles(steady, n=20)[-1], 2),
        "events": [],
    }
    bounds = [*(at - 2 for _, at in events[1:]), float("inf")]
    for (what, at), end in zip(events, bounds, strict=True):
        during = [w for t, w in waits if at - 2 <= t < end]
        gaps = [b - a for a, b in zip(out, out[1:], strict=False) if at - 2 <= a < end]
        result["events"].append(
            {
                "event": what,
                "at_s": round(at - began, 1),
                "longest_wait_s": round(max(during), 1) if during else None,
                "longest_output_gap_s": round(max(gaps), 1) if gaps else None,
            }
        )
    return result


# -- a restart onto partitions never committed ---------------------------------------------


async def uncommitted(runs: int, keep: bool) -> dict[str, Any]:
    """The case faust's resume after recovery loses records in (see VelocityTable):
    100 orders on orders.v1 partition 0 only, processed and committed; SIGKILL; 1,200
    more on every partition; restart. Per run: done within 60 s, or stalled."""
    done = stalled = off = 0
    for _ in range(runs):
        finished, wrong = await _uncommitted_once(keep)
        done, stalled, off = done + finished, stalled + (not finished), off + wrong
    return {
        "scenario": "uncommitted",
        "runs": runs,
        "done": done,
        "stalled": stalled,
        "counts_off_reference": off,
        "load": load(),
    }


async def _uncommitted_once(keep: bool) -> tuple[bool, int]:
    await quiet_machine()
    tmp = Path(tempfile.mkdtemp(prefix="risk-windows-uncommitted-"))
    broker = EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log").start()
    bootstrap = broker.bootstrap_servers
    worker = WorkerProcess(bootstrap, tmp)
    try:
        base = datetime.now(UTC) - timedelta(hours=3)
        orders = random_orders(base, 1300, spacing_s=7.2, pool=200, seed=1300)
        first = [o for o in orders if partition_for(o.order_id.encode(), ORDERS.partitions) == 0]
        first = first[:100]
        async with Publisher(bootstrap) as publisher:
            await publisher.send([(o.order_id, order_message(o)) for o in first])
            worker.start()
            await until(lambda: all_committed(bootstrap, first), timeout=60)
            worker.kill()
            rest = [o for o in orders if o not in first]
            await publisher.send([(o.order_id, order_message(o)) for o in rest])
        worker.start()
        await worker.recovered()
        try:
            await until(lambda: all_committed(bootstrap, orders), timeout=60, every=2.0)
        except TimeoutError:
            return False, 0
        return True, _off(await read_told(bootstrap), orders)
    finally:
        worker.kill()
        broker.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("backlog", "rebalance", "uncommitted"))
    parser.add_argument("--orders", default="1000,5000,20000")
    parser.add_argument("--no-seal", action="store_true")
    parser.add_argument("--kill-after", type=float, help="backlog: SIGKILL this long in")
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--runs", type=int, default=10, help="uncommitted: how many")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    if args.scenario == "backlog":
        for n in (int(x) for x in args.orders.split(",")):
            say(await backlog(n, not args.no_seal, args.keep, args.kill_after))
    elif args.scenario == "rebalance":
        say(await rebalance(args.rate, args.seconds, args.keep))
    else:
        say(await uncommitted(args.runs, args.keep))


if __name__ == "__main__":
    asyncio.run(main_async(parse()))
