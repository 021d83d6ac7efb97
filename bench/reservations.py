"""Orders per second from placement to the inventory decision, and the latency from
`POST /orders` to the `StockReserved` event, on the embedded broker with PostgreSQL.

Every scenario starts from nothing: a fresh embedded broker, two fresh PostgreSQL
databases, the order and inventory services as separate processes, stock received for
every SKU through the inventory API, and a consumer on every partition of `inventory.v1`
that stamps the time each order's decision (StockReserved or ReservationRejected)
arrives. Then:

- `<mix>-fixed`: open loop, orders sent at a fixed rate (`--rate`, 100/s) whatever the
  responses do;
- `<mix>-sat`: closed loop, `--concurrency` (32) requests always in flight: saturation;
- `<mix>-backlog`: the inventory service stopped, `--backlog-orders` (10,000) orders placed
  and published on `orders.v1`, then inventory started again and timed while it decides
  the backlog: the reservation path's own capacity, without the HTTP cost.

Mixes: `uniform` (two lines on two of `--skus` (200) SKUs) and `flash` (90% of orders
take one unit of one of 5 hot SKUs, the rest are uniform orders).

Run from the workspace root: `python -m bench.reservations [--seconds 30] [--quick]`.
See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from shopfloor_contracts.topics import INVENTORY, ORDERS
from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_runtime.testing import free_port, postgres_database

from bench.harness import (
    PROGRESS_EVERY_S,
    BenchError,
    CpuMeter,
    DbMeter,
    Service,
    block_missing_sniffio,
    describe_machine,
    machine,
    metrics_delta,
    ms,
    pct,
    postgres_version,
    rnd,
    scrape,
    source_version,
    start_consumer,
    start_service,
    stop_service,
    stopped_cleanly,
    utc_stamp,
    wait_ready,
    write_results,
)
from bench.loadgen import Pool, TransportError

SCENARIOS = (
    "uniform-fixed",
    "uniform-sat",
    "flash-fixed",
    "flash-sat",
    "uniform-backlog",
    "flash-backlog",
)
DECISIONS = ("StockReserved", "ReservationRejected")
#: this bench measures inventory's path; risk's own stage is bench/risk_stage.py
INVENTORY_CHECK_ONLY = {"ORDER_RULES__REQUIRED_CHECKS": '["inventory"]'}
WAREHOUSE = "WH-BENCH"
TARGET_DECISIONS_PER_S = 500.0
TARGET_P99_MS = 250.0
MAX_IN_FLIGHT = 2000  # open loop: beyond this many unanswered requests, sends are skipped
REQUEST_TIMEOUT_S = 60.0  # one POST /orders: connect, send, read the whole response
#: From POST /orders to the decision received, in four legs (see bench/README.md).
STAGES = ("api", "order_relay", "inventory_decides", "inventory_relay")
# Events carry wall-clock times (occurred_at); this turns them into perf_counter times.
EPOCH_MINUS_PERF = time.time() - time.perf_counter()


def perf_time(occurred_at: str) -> float:
    return datetime.fromisoformat(occurred_at).timestamp() - EPOCH_MINUS_PERF


# -- what is ordered ------------------------------------------------------------------------


class Mix:
    """Order bodies for one mix; every order has its own customer (no duplicate folding,
    no purchase limit in play)."""

    def __init__(self, name: str, args: argparse.Namespace, tag: str) -> None:
        self.name, self.tag = name, tag
        self.cold = [f"BENCH-{i:04d}" for i in range(args.skus)]
        self.hot = [f"HOT-{i}" for i in range(args.hot_skus)] if name == "flash" else []
        self.hot_share = args.hot_share
        self.random = random.Random(args.seed)

    def stock(self, args: argparse.Namespace) -> list[tuple[str, int]]:
        return [(sku, args.units) for sku in self.cold] + [(s, args.hot_units) for s in self.hot]

    def lines(self) -> list[dict[str, Any]]:
        if self.hot and self.random.random() < self.hot_share:
            return [{"sku": self.random.choice(self.hot), "qty": 1, "unit_price": "49.00"}]
        return [
            {"sku": sku, "qty": self.random.randint(1, 3), "unit_price": "19.90"}
            for sku in self.random.sample(self.cold, 2)
        ]

    def body(self, n: int) -> bytes:
        return json.dumps(
            {
                "customer_id": f"bench-{self.tag}-{n}",
                "channel": "shop",
                "lines": self.lines(),
                "shipping_address": {
                    "name": f"Bench Customer {n}",
                    "line1": "Musterstrasse 1",
                    "city": "Berlin",
                    "postal_code": "10115",
                    "country": "DE",
                },
            },
            separators=(",", ":"),
        ).encode()


# -- one run's observations ------------------------------------------------------------------


@dataclass
class Placed:
    sent: float  # perf_counter when the request was started
    done: float  # perf_counter when the 201 response was read


@dataclass
class Run:
    label: str
    mix: Mix
    placed: dict[str, Placed] = field(default_factory=dict)
    decided: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (time, kind)
    # OrderPlaced seen on orders.v1: id -> (its occurred_at, time received), perf_counter
    published: dict[str, tuple[float, float]] = field(default_factory=dict)
    decided_at: dict[str, float] = field(default_factory=dict)  # decision's occurred_at
    repeated_decisions: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)  # open loop: sent - scheduled, s
    skipped: int = 0  # open loop: sends skipped because MAX_IN_FLIGHT were unanswered
    reconnects: int = 0  # connections to the order API opened again (closed, or an error)
    in_flight: int = 0
    sent_count: int = 0
    started: float = 0.0
    measure_from: float = math.inf
    measure_to: float = math.inf
    phase: str = "starting"

    def rejected(self) -> int:
        return sum(1 for _, kind in self.decided.values() if kind == "ReservationRejected")


# -- the running system ------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    broker: EmbeddedBroker
    order: Service
    inventory: Service
    order_dsn: str
    inventory_dsn: str
    run: Run
    stopped: dict[str, tuple[int | None, float]] = field(default_factory=dict)

    def pids(self) -> dict[str, int | None]:
        broker = self.broker.process
        return {
            "order": self.order.process.pid,
            "inventory": self.inventory.process.pid,
            "broker": broker.pid if broker is not None else None,
        }

    def databases(self) -> DbMeter:
        return DbMeter({"order": self.order_dsn, "inventory": self.inventory_dsn})

    def stop(self, service: Service) -> None:
        self.stopped[service.log_path.name] = stop_service(service)


@contextlib.asynccontextmanager
async def stack(run: Run, args: argparse.Namespace) -> AsyncIterator[Stack]:
    """Broker, two databases, both services, stock received, and the consumers of
    decisions on inventory.v1 and of OrderPlaced on orders.v1."""
    tmp = Path(tempfile.mkdtemp(prefix=f"shopfloor-bench-{run.label}-"))
    ok = False
    consumers: list[AIOKafkaConsumer] = []
    tasks: list[asyncio.Task[None]] = []
    with contextlib.ExitStack() as exits:
        broker = EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log")
        try:
            broker.start()
        except BrokerError as error:
            raise BenchError(f"{error}; see {tmp / 'tansu.log'}") from None
        exits.callback(broker.stop)
        order_dsn = exits.enter_context(postgres_database("sf_bench_order"))
        inventory_dsn = exits.enter_context(postgres_database("sf_bench_inventory"))
        order = start_service("order", broker, tmp, order_dsn, env=INVENTORY_CHECK_ONLY)
        inventory = start_service("inventory", broker, tmp, inventory_dsn)
        running = Stack(tmp, broker, order, inventory, order_dsn, inventory_dsn, run)
        # On the way out (last in, first out): the services before the broker and databases.
        exits.callback(lambda: running.stop(running.inventory))
        exits.callback(lambda: running.stop(running.order))
        print(
            f"[{run.label}] order pid {order.process.pid} {order.url}, inventory pid "
            f"{inventory.process.pid} {inventory.url}, broker {broker.bootstrap_servers}, "
            f"logs in {tmp}",
            flush=True,
        )
        try:
            began = time.monotonic()
            await asyncio.gather(wait_ready(order, run.label), wait_ready(inventory, run.label))
            try:
                decisions = await start_consumer(broker.bootstrap_servers, INVENTORY)
                consumers.append(decisions)
                tasks.append(asyncio.create_task(consume_decisions(decisions, run)))
                placements = await start_consumer(broker.bootstrap_servers, ORDERS)
                consumers.append(placements)
                tasks.append(asyncio.create_task(consume_placements(placements, run)))
            except BenchError as error:
                raise BenchError(f"{error}; see the service logs in {tmp}") from None
            await receive_stock(inventory, run.mix.stock(args))
            print(
                f"[{run.label}] ready after {time.monotonic() - began:.1f}s with stock for "
                f"{len(run.mix.stock(args))} SKUs",
                flush=True,
            )
            yield running
            ok = True
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for consumer in consumers:
                await consumer.stop()
            if not ok:
                print(f"[{run.label}] logs kept: {tmp}", flush=True)
    for name, (code, took) in running.stopped.items():
        if not stopped_cleanly(code):
            print(f"[{run.label}] {name}: exit code {code} after {took:.1f}s", flush=True)
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


async def receive_stock(inventory: Service, stock: list[tuple[str, int]]) -> None:
    queue = iter(stock)
    async with httpx.AsyncClient(base_url=inventory.url, timeout=30) as client:

        async def receiver() -> None:
            for sku, qty in queue:
                body = {"sku": sku, "warehouse": WAREHOUSE, "qty": qty}
                response = await client.post("/stock/receipts", json=body)
                if response.status_code != 201:
                    raise BenchError(
                        f"POST /stock/receipts {sku}: HTTP {response.status_code} "
                        f"{response.text[:200]}; see {inventory.log_path}"
                    )

        await asyncio.gather(*(receiver() for _ in range(8)))


async def consume_decisions(consumer: AIOKafkaConsumer, run: Run) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                envelope = json.loads(record.value or b"{}")
                kind = envelope.get("event_type")
                if kind not in DECISIONS:
                    continue
                order_id = envelope["payload"]["order_id"]
                if order_id in run.decided:
                    run.repeated_decisions += 1
                else:
                    run.decided[order_id] = (now, kind)
                    run.decided_at[order_id] = perf_time(envelope["occurred_at"])


async def consume_placements(consumer: AIOKafkaConsumer, run: Run) -> None:
    """OrderPlaced on orders.v1: where the time goes, and the backlog test waits for all
    of them before inventory starts again."""
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                envelope = json.loads(record.value or b"{}")
                if envelope.get("event_type") == "OrderPlaced":
                    occurred = perf_time(envelope["occurred_at"])
                    run.published.setdefault(envelope["aggregate_id"], (occurred, now))


# -- the load ---------------------------------------------------------------------------------


async def place(connections: Pool, run: Run, n: int, due: float | None = None) -> bool:
    """One POST /orders on a free connection of the pool (`bench.loadgen`: one request per
    connection, so requests wait for a connection here, in the bench). The clock starts
    when the order is `due` (open loop: its place in the schedule, so a late generator or
    a wait for a free connection counts), else now."""
    sent = time.perf_counter() if due is None else due
    body = run.mix.body(n)
    run.in_flight += 1
    run.sent_count += 1
    try:
        status, answer = await connections.post("/orders", body)
    except TransportError as error:
        run.errors[error.kind] += 1
        return False
    finally:
        run.in_flight -= 1
    done = time.perf_counter()
    if status != 201:
        run.errors[f"HTTP {status}"] += 1
        return False
    run.placed[json.loads(answer)["id"]] = Placed(sent, done)
    return True


async def open_loop(connections: Pool, run: Run, rate: float) -> None:
    """One order due every 1/rate s from `run.started` to `run.measure_to`, each in its own
    task: a slow answer does not delay the next send."""
    pending: set[asyncio.Task[bool]] = set()
    n = 0
    while True:
        scheduled = run.started + n / rate
        if scheduled >= run.measure_to:
            break
        wait = scheduled - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        n += 1
        if run.in_flight >= MAX_IN_FLIGHT:
            run.skipped += 1
            continue
        run.lateness.append(time.perf_counter() - scheduled)
        task = asyncio.create_task(place(connections, run, n, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def closed_loop(connections: Pool, run: Run, concurrency: int) -> None:
    counter = iter(range(1, 1 << 62))

    async def worker() -> None:
        while time.perf_counter() < run.measure_to:
            if not await place(connections, run, next(counter)):
                await asyncio.sleep(0.05)  # do not spin on a dead connection

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def progress(run: Run) -> None:
    last = (time.perf_counter(), len(run.placed), len(run.decided), time.process_time())
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = (time.perf_counter(), len(run.placed), len(run.decided), time.process_time())
        dt = now[0] - last[0]
        print(
            f"  [{run.label}] {run.phase:<8} {now[0] - run.started:6.1f}s  placed {now[1]:>6} "
            f"({(now[1] - last[1]) / dt:5.0f}/s)  decided {now[2]:>6} "
            f"({(now[2] - last[2]) / dt:5.0f}/s)  rejected {run.rejected():>5}  "
            f"in flight {run.in_flight:>4}  errors {sum(run.errors.values())}  "
            f"bench CPU {(now[3] - last[3]) / dt:4.0%}",
            flush=True,
        )
        last = now


async def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- the scenarios ----------------------------------------------------------------------------


async def load_scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    mix_name, kind = name.split("-")
    run = Run(name, Mix(mix_name, args, uuid.uuid4().hex[:8]))
    rate = args.rate if kind == "fixed" else None
    async with stack(run, args) as system:
        connections = args.connections if rate is not None else args.concurrency
        offered = f"{rate:g}/s open loop" if rate else f"closed loop, {args.concurrency} in flight"
        print(
            f"[{name}] {args.warmup:g}s warm-up, then {args.seconds:g}s measured; {offered}",
            flush=True,
        )
        meter, db = CpuMeter(system.pids()), system.databases()
        services = (system.order, system.inventory)
        scraped: list[list[dict[str, float]]] = []

        async def window() -> None:
            """Marks the measured window: phase, CPU meter, the services' metrics."""
            await asyncio.sleep(max(run.measure_from - time.perf_counter(), 0))
            run.phase = "measure"
            meter.start()
            await asyncio.to_thread(db.start)
            scraped.append(list(await asyncio.gather(*map(scrape, services))))
            await asyncio.sleep(max(run.measure_to - time.perf_counter(), 0))
            run.phase = "closing"
            meter.stop()
            await asyncio.to_thread(db.stop)
            scraped.append(list(await asyncio.gather(*map(scrape, services))))

        reporting = asyncio.create_task(progress(run))
        try:
            async with Pool(system.order.url, connections, timeout=REQUEST_TIMEOUT_S) as pool:
                run.started = time.perf_counter()
                run.measure_from = run.started + args.warmup
                run.measure_to = run.measure_from + args.seconds
                run.phase = "warm-up"
                marking = asyncio.create_task(window())
                if rate is not None:
                    await open_loop(pool, run, rate)
                else:
                    await closed_loop(pool, run, args.concurrency)
                await marking
            run.reconnects = pool.reconnects
            load_ended = time.perf_counter()
            run.phase = "drain"
            await wait_until(
                lambda: all(order in run.decided for order in run.placed), args.drain_timeout
            )
            drained = time.perf_counter() - load_ended
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
    result = summarize_load(run, rate, args, drained, meter)
    result["consumers"] = consumers(services, scraped[0], scraped[1], meter.wall_s)
    result["db_transactions"] = db_transactions(db, result["decisions_in_window"])
    print()
    print(load_table([result]))
    print()
    print(stages_table([result]))
    print(cpu_line(result))
    print(consumers_line(result))
    print()
    return result


async def backlog_scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    mix_name = name.split("-")[0]
    run = Run(name, Mix(mix_name, args, uuid.uuid4().hex[:8]))
    total = args.backlog_orders
    async with stack(run, args) as system:
        system.stop(system.inventory)
        print(
            f"[{name}] inventory stopped; placing {total} orders with {args.concurrency} in flight",
            flush=True,
        )
        reporting = asyncio.create_task(progress(run))
        try:
            run.started = time.perf_counter()
            run.phase = "filling"
            queue = iter(range(1, total + 1))
            async with Pool(system.order.url, args.concurrency, timeout=REQUEST_TIMEOUT_S) as pool:

                async def worker() -> None:
                    for n in queue:
                        await place(pool, run, n)

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            run.reconnects = pool.reconnects
            filled = time.perf_counter() - run.started
            run.phase = "publish"
            if not await wait_until(
                lambda: all(o in run.published for o in run.placed), args.drain_timeout
            ):
                missing = sum(1 for o in run.placed if o not in run.published)
                raise BenchError(
                    f"{missing} placed orders never appeared on {ORDERS.name}; see "
                    f"{system.order.log_path}"
                )
            early = len(run.decided)
            run.phase = "decide"
            system.inventory = start_service(
                "inventory",
                system.broker,
                system.tmp,
                system.inventory_dsn,
                log_name="inventory-2.log",
            )
            meter, db = CpuMeter(system.pids()), system.databases()
            meter.start()
            await asyncio.to_thread(db.start)
            before = [await scrape(system.order), {}]  # inventory counts from zero
            restarted = time.perf_counter()
            await wait_ready(system.inventory, name)
            ready = time.perf_counter()
            complete = await wait_until(
                lambda: all(o in run.decided for o in run.placed),
                args.backlog_timeout,
            )
            meter.stop()
            await asyncio.sleep(1.0)  # pg_stat_database lags
            await asyncio.to_thread(db.stop)
            services = (system.order, system.inventory)
            after = list(await asyncio.gather(*map(scrape, services)))
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
    result = summarize_backlog(run, filled, early, restarted, ready, complete, meter)
    result["consumers"] = consumers(services, before, after, meter.wall_s)
    result["db_transactions"] = db_transactions(db, len(run.placed))
    print()
    print(backlog_table([result]))
    print(cpu_line(result))
    print(consumers_line(result))
    print()
    return result


# -- the numbers ------------------------------------------------------------------------------


def _latency(values: list[float]) -> dict[str, float | None]:
    values.sort()
    return {f"p{p}": rnd(pct(values, p)) for p in (50, 95, 99)} | {
        "max": rnd(values[-1] if values else None),
        "count": len(values),
    }


def summarize_load(
    run: Run, rate: float | None, args: argparse.Namespace, drained: float, meter: CpuMeter
) -> dict[str, Any]:
    lo, hi = run.measure_from, run.measure_to
    window = hi - lo
    completed = sum(1 for p in run.placed.values() if lo <= p.done <= hi)
    decisions = [(t, kind) for t, kind in run.decided.values() if lo <= t <= hi]
    sent_in_window = {o: p for o, p in run.placed.items() if lo <= p.sent <= hi}
    reserved_ms, all_ms, api_ms = [], [], []
    for order_id, p in sent_in_window.items():
        api_ms.append((p.done - p.sent) * 1000)
        found = run.decided.get(order_id)
        if found is None:
            continue
        all_ms.append((found[0] - p.sent) * 1000)
        if found[1] == "StockReserved":
            reserved_ms.append((found[0] - p.sent) * 1000)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for order_id, p in sent_in_window.items():
        found, published = run.decided.get(order_id), run.published.get(order_id)
        decided_at = run.decided_at.get(order_id)
        if found is None or published is None or decided_at is None:
            continue
        occurred, seen = published
        for stage, (a, b) in zip(
            STAGES,
            ((p.sent, p.done), (occurred, seen), (seen, decided_at), (decided_at, found[0])),
            strict=True,
        ):
            stages[stage].append((b - a) * 1000)
    undecided = [o for o in run.placed if o not in run.decided]
    late = sorted(run.lateness)
    return {
        "scenario": run.label,
        "mix": run.mix.name,
        "mode": "open loop" if rate else "closed loop",
        "offered_per_s": rate,
        "concurrency": None if rate else args.concurrency,
        "window_s": round(window, 3),
        "orders_sent": run.sent_count,
        "orders_placed": len(run.placed),
        "placements_per_s": round(completed / window, 1),
        "decisions_in_window": len(decisions),
        "decisions_per_s": round(len(decisions) / window, 1),
        "reserved_per_s": round(sum(k == "StockReserved" for _, k in decisions) / window, 1),
        "stock_reserved_latency_ms": _latency(reserved_ms),
        "decision_latency_ms": _latency(all_ms),
        "api_latency_ms": _latency(api_ms),
        "stages_ms": {stage: _latency(values) for stage, values in stages.items()},
        "rejections": run.rejected(),
        "errors": sum(run.errors.values()),
        "errors_by_kind": dict(run.errors),
        "reconnects": run.reconnects,
        "undecided": len(undecided),
        "undecided_examples": undecided[:5],
        "repeated_decisions": run.repeated_decisions,
        "open_loop_lateness_ms": {
            "p99": rnd(late[math.ceil(0.99 * len(late)) - 1] * 1000 if late else None),
            "max": rnd(late[-1] * 1000 if late else None),
        },
        "open_loop_skipped": run.skipped,
        "drain_s": round(drained, 2),
        "cpu_s": meter.used,
        "cpu_cores": meter.cores(),
    }


def summarize_backlog(
    run: Run,
    filled: float,
    early: int,
    restarted: float,
    ready: float,
    complete: bool,
    meter: CpuMeter,
) -> dict[str, Any]:
    times = sorted(t for o, (t, _) in run.decided.items() if o in run.placed)
    n = len(times)
    first, last = (times[0], times[-1]) if times else (math.nan, math.nan)
    span = last - first
    # The middle 80%: without the first fetch and the last stragglers.
    lo, hi = times[n // 10] if n else math.nan, times[(n * 9) // 10 - 1] if n >= 10 else math.nan
    steady = (n * 9 // 10 - n // 10 - 1) / (hi - lo) if n >= 10 and hi > lo else None
    return {
        "scenario": run.label,
        "mix": run.mix.name,
        "orders": len(run.placed),
        "fill_s": round(filled, 2),
        "fill_placements_per_s": round(len(run.placed) / filled, 1) if filled else None,
        "decided_before_restart": early,
        "inventory_ready_s": round(ready - restarted, 2),
        "first_decision_after_start_s": rnd(first - restarted, 2),
        "all_decided_after_start_s": rnd(last - restarted, 2),
        "decisions_per_s": round((n - 1) / span, 1) if n > 1 and span > 0 else None,
        "steady_decisions_per_s": rnd(steady),
        "rejections": run.rejected(),
        "errors": sum(run.errors.values()),
        "errors_by_kind": dict(run.errors),
        "reconnects": run.reconnects,
        "undecided": sum(1 for o in run.placed if o not in run.decided),
        "complete": complete,
        "repeated_decisions": run.repeated_decisions,
        "cpu_s": meter.used,
        "cpu_cores": meter.cores(),
    }


def db_transactions(db: DbMeter, decisions: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for label, counts in db.used.items():
        per = round(counts["commits"] / decisions, 1) if decisions else None
        found[label] = {**counts, "per_decision": per}
    return found


def consumers(
    services: tuple[Service, ...],
    before: list[dict[str, float]],
    after: list[dict[str, float]],
    wall_s: float,
) -> dict[str, Any]:
    """Per service, from its /metrics over the window: the tracked consumer's batches
    (count, messages, time applying them), and events its relay published."""
    found: dict[str, Any] = {}
    for service, b, a in zip(services, before, after, strict=True):
        delta = metrics_delta(b, a)

        def total(prefix: str, delta: dict[str, float] = delta) -> float:
            return sum(v for k, v in delta.items() if k.startswith(prefix))

        batches = total("shopfloor_batch_processing_seconds_count")
        busy = total("shopfloor_batch_processing_seconds_sum")
        handled = total("shopfloor_events_consumed_total")
        found[service.name] = {
            "batches": int(batches),
            "messages": int(handled),
            "messages_per_batch": round(handled / batches, 1) if batches else None,
            "ms_per_batch": round(busy * 1000 / batches, 1) if batches else None,
            "applying_share_of_window": round(busy / wall_s, 2) if wall_s else None,
            "published": int(total("shopfloor_events_published_total")),
            "metrics_delta": delta,
        }
    return found


# -- output ---------------------------------------------------------------------------------


def load_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | offered | placements/s | decisions/s | StockReserved p50 / p95 / p99 ms "
        "| all decisions p99 ms | API p99 ms | rejections | errors | undecided | bench CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r["stock_reserved_latency_ms"]
        offered = (
            f"{r['offered_per_s']:g}/s"
            if r["offered_per_s"]
            else f"saturation ({r['concurrency']})"
        )
        rows.append(
            f"| {r['scenario']} | {offered} | {r['placements_per_s']:.1f} | "
            f"{r['decisions_per_s']:.1f} | {ms(lat['p50'])} / {ms(lat['p95'])} / "
            f"{ms(lat['p99'])} | {ms(r['decision_latency_ms']['p99'])} | "
            f"{ms(r['api_latency_ms']['p99'])} | {r['rejections']} | {r['errors']} | "
            f"{r['undecided']} | {r['cpu_cores'].get('bench', math.nan):.2f} |"
        )
    return "\n".join(rows)


def backlog_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | orders | decisions/s (first to last) | steady decisions/s (middle 80%) "
        "| start to first / last decision s | rejections | errors | undecided |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r['scenario']} | {r['orders']} | {ms(r['decisions_per_s'])} | "
            f"{ms(r['steady_decisions_per_s'])} | {r['first_decision_after_start_s']} / "
            f"{r['all_decided_after_start_s']} | {r['rejections']} | {r['errors']} | "
            f"{r['undecided']} |"
        )
    return "\n".join(rows)


CPU_PARTS = ("bench", "order", "inventory", "broker", "postgres", "machine")


def stages_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | " + " | ".join(f"{s} p50 / p99 ms" for s in STAGES) + " |",
        "|---|" + "---:|" * len(STAGES),
    ]
    for r in results:
        cells = [f"{ms(r['stages_ms'][s]['p50'])} / {ms(r['stages_ms'][s]['p99'])}" for s in STAGES]
        rows.append(f"| {r['scenario']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cpu_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | " + " | ".join(CPU_PARTS) + " |",
        "|---|" + "---:|" * len(CPU_PARTS),
    ]
    for r in results:
        cores = r["cpu_cores"]
        rows.append(
            f"| {r['scenario']} | "
            + " | ".join(f"{cores.get(p, math.nan):.2f}" for p in CPU_PARTS)
            + " |"
        )
    return "\n".join(rows)


def consumers_line(result: dict[str, Any]) -> str:
    parts = []
    for name, c in result["consumers"].items():
        if c["batches"]:
            parts.append(
                f"{name} consumer {c['batches']} batches of {c['messages_per_batch']} messages, "
                f"{c['ms_per_batch']} ms each (applying {c['applying_share_of_window']:.0%} "
                "of the time)"
            )
    db = result.get("db_transactions") or {}
    if db:
        parts.append(
            "PostgreSQL commits per decision: "
            + ", ".join(f"{label} {c['per_decision']}" for label, c in db.items())
        )
    return "; ".join(parts) or "consumers: no batches seen in /metrics"


def cpu_line(result: dict[str, Any]) -> str:
    cores = result["cpu_cores"]
    return "cores busy: " + ", ".join(f"{p} {cores.get(p, math.nan):.2f}" for p in CPU_PARTS)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    sat = [r for r in results if r.get("mode") == "closed loop"]
    for r in sat:
        ok = r["decisions_per_s"] >= TARGET_DECISIONS_PER_S
        lines.append(
            f"target >= {TARGET_DECISIONS_PER_S:g} decisions/s sustained, {r['scenario']}: "
            f"{r['decisions_per_s']:.1f}/s -> {'met' if ok else 'MISSED'}"
        )
    fixed = [r for r in results if r.get("mode") == "open loop"]
    for r in fixed:
        p99 = r["stock_reserved_latency_ms"]["p99"]
        ok = p99 is not None and p99 < TARGET_P99_MS and r["offered_per_s"] == 100
        lines.append(
            f"target p99 < {TARGET_P99_MS:g} ms at 100/s, {r['scenario']} "
            f"({r['offered_per_s']:g}/s): {ms(p99)} ms -> {'met' if ok else 'MISSED'}"
        )
    for r in results:
        if "steady_decisions_per_s" in r:
            rate = r["steady_decisions_per_s"]
            ok = rate is not None and rate >= TARGET_DECISIONS_PER_S
            lines.append(
                f"inventory alone (backlog), {r['scenario']}: {ms(rate)} decisions/s -> "
                f"{'above' if ok else 'BELOW'} {TARGET_DECISIONS_PER_S:g}/s"
            )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reservations",
        description="Orders/s from POST /orders to the inventory decision, and the latency "
        "to StockReserved, at a fixed rate and at saturation, for a uniform and a flash-sale "
        "mix; and the inventory consumer alone on a backlog.",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up before it (5)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {','.join(SCENARIOS)} (all)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="fixed offered rate (100/s)")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for the fixed rate (16)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="requests in flight at saturation and while filling the backlog (32)",
    )
    parser.add_argument(
        "--backlog-orders", type=int, default=10_000, help="orders in the backlog test (10000)"
    )
    parser.add_argument("--skus", type=int, default=200, help="SKUs of the uniform mix (200)")
    parser.add_argument("--hot-skus", type=int, default=5, help="hot SKUs of the flash mix (5)")
    parser.add_argument(
        "--hot-share", type=float, default=0.9, help="share of flash orders on hot SKUs (0.9)"
    )
    parser.add_argument("--units", type=int, default=100_000, help="units per SKU (100000)")
    parser.add_argument(
        "--hot-units", type=int, default=1_000_000, help="units per hot SKU (1000000)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="wait for outstanding decisions after the load (60)",
    )
    parser.add_argument(
        "--backlog-timeout", type=float, default=300.0, help="wait for the backlog (300)"
    )
    parser.add_argument("--seed", type=int, default=7, help="of the order mix (7)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5 s measured after 2 s warm-up, 1000 backlog orders",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directories (service logs)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.backlog_orders = 5.0, 2.0, 1000
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        parser.error(
            f"--scenarios: unknown {unknown or 'nothing'}; choose from {','.join(SCENARIOS)}"
        )
    if args.seconds <= 0 or args.warmup < 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be > 0, --warmup >= 0")
    if min(args.concurrency, args.connections, args.backlog_orders, args.skus) < 1:
        parser.error("--concurrency, --connections, --backlog-orders, --skus must be >= 1")
    if args.skus < 2 or args.hot_skus < 1 or not 0 <= args.hot_share <= 1:
        parser.error("--skus >= 2, --hot-skus >= 1, 0 <= --hot-share <= 1")
    if not (1 <= args.units <= 1_000_000 and 1 <= args.hot_units <= 1_000_000):
        parser.error("--units and --hot-units: 1 to 1000000 (one receipt each)")
    return args


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    info["postgres"] = postgres_version()
    print(describe_machine(info))
    source = source_version()
    changed = f", {len(source['changed'])} files changed since" if source["changed"] else ""
    print(f"code: commit {source['commit']}{changed}")
    print(
        f"note: this load generator, the order and inventory services, the broker and "
        f"PostgreSQL all share these {info['cpu_count']} cores; 'bench CPU' is this "
        "process's own share (time.process_time)",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for name in args.scenarios:
        try:
            if name.endswith("-backlog"):
                results.append(await backlog_scenario(name, args))
            else:
                results.append(await load_scenario(name, args))
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr, flush=True)
            return 1
    load = [r for r in results if "mode" in r]
    backlog = [r for r in results if "mode" not in r]
    parts = []
    if load:
        parts.append(load_table(load))
        parts.append("Where the time goes, orders sent in the window:\n\n" + stages_table(load))
    if backlog:
        parts.append(backlog_table(backlog))
    parts.append("CPU, average cores busy (measured window; backlog: from restart to done):\n\n")
    parts[-1] += cpu_table(results)
    text = "\n\n".join(parts)
    print()
    print(text)
    print()
    for line in verdicts(results):
        print(line)
    stamp = utc_stamp()
    payload = {
        "benchmark": "reservations",
        "started_at": stamp,
        "settings": dict(vars(args)),
        "machine": info,
        "source": {"at_start": source, "at_end": source_version()},
        "results": results,
        "verdicts": verdicts(results),
        "table_markdown": text,
    }
    out = write_results("reservations", stamp, payload)
    print(f"results: {out}")
    undecided = sum(r["undecided"] for r in results)
    if undecided:
        print(
            f"WARNING: {undecided} accepted orders never had their decision seen on "
            f"{INVENTORY.name}",
            file=sys.stderr,
        )
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    block_missing_sniffio()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
