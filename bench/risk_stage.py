"""The risk stage: orders per second assessed and the latency from `OrderPlaced` to
`OrderAssessed`, at a fixed rate and at saturation; and placed -> confirmed throughput
with risk in the path against the same without it, as a ratio in one run. On the
embedded broker with PostgreSQL.

Every scenario starts from nothing: a fresh embedded broker, fresh PostgreSQL databases,
the order, inventory and (with risk) risk services as separate processes plus the risk
velocity worker (`python -m risk.windows`, faust), stock received for every SKU through
the inventory API, consumers on every partition of `orders.v1`, `risk.v1` and
`risk.velocity.v1` stamping the time each order's events arrive, and one probe order
through the whole path before the clock starts. Then:

- `assess-fixed`: open loop, orders placed at `--rate` (100/s) whatever the responses do;
- `assess-sat`: closed loop, `--concurrency` (32) requests always in flight;
- `confirm-without-risk` / `confirm-with-risk`: closed loop over the whole path, each
  order placed and then paid; the order service's required checks are ["inventory"]
  (risk not running) or ["inventory", "risk"] (risk and its worker running). Run
  `--repeats` (2) times, alternating; the ratio is of the medians;
- `assess-backlog`: the risk service stopped, `--backlog-orders` (5,000) orders placed,
  published and counted by the velocity worker, then risk started again and timed while
  it assesses the backlog: risk's own capacity, without the HTTP cost.

Every order is a clean one risk clears: its own customer, device and street address
(velocity counts stay at 1), a valid German address, a total far below the large-order
limit. The run counts flagged and held orders all the same, and fails (exit code 3) if
there are any.

Run from the workspace root: `python -m bench.risk_stage [--seconds 20] [--quick]`.
See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from risk.windows.app import TABLE
from risk.windows.harness import WorkerProcess
from shopfloor_contracts.topics import ORDERS, RISK, RISK_VELOCITY, Topic
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
from bench.reservations import consumers, db_transactions, receive_stock, wait_until

SCENARIOS = (
    "assess-fixed",
    "assess-sat",
    "confirm-without-risk",
    "confirm-with-risk",
    "assess-backlog",
)
CONFIRM = ("confirm-without-risk", "confirm-with-risk")
TARGET_P99_MS = 250.0  # OrderPlaced -> OrderAssessed at 100/s
TARGET_COST = 0.25  # risk in the path costs at most this share of placed -> confirmed/s
DIMENSIONS = 3  # velocity counts per order: customer, address, device
#: the velocity table's changelog (faust: <app id>-<table>-changelog, the table's
#: partitions, which are the repartition topic's: orders.v1's)
CHANGELOG = Topic(f"risk-windows-{TABLE}-changelog", ORDERS.partitions, "table key", "faust")
MAX_IN_FLIGHT = 2000  # open loop: beyond this many unanswered requests, sends are skipped
REQUEST_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 120.0  # the first order through the whole path, faust's start included
WORKER_READY_TIMEOUT_S = 120.0
#: From OrderPlaced to OrderAssessed, in legs (see bench/README.md).
STAGES = ("api", "order_relay", "risk_decides", "risk_relay")
CPU_PARTS = ("bench", "order", "inventory", "risk", "risk-windows", "broker", "postgres", "machine")
# Events carry wall-clock times (occurred_at); this turns them into perf_counter times.
EPOCH_MINUS_PERF = time.time() - time.perf_counter()


def steal_s() -> float:
    """CPU seconds the hypervisor gave other guests, all cores, since boot (/proc/stat):
    counted as busy by the machine figure, so part of `other`."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


class StealMeter:
    def __init__(self) -> None:
        self.began = (steal_s(), time.perf_counter())
        self.cores = math.nan

    def start(self) -> None:
        self.began = (steal_s(), time.perf_counter())

    def stop(self) -> float:
        wall = time.perf_counter() - self.began[1]
        self.cores = round((steal_s() - self.began[0]) / wall, 2) if wall > 0 else math.nan
        return self.cores


def perf_time(occurred_at: str) -> float:
    return datetime.fromisoformat(occurred_at).timestamp() - EPOCH_MINUS_PERF


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "fixed", "sat" or "backlog"
    risk: bool  # risk service and velocity worker running; risk a required check
    pay: bool  # each order paid after its 201 (confirmation needs payment)
    repeat: int = 1

    @property
    def label(self) -> str:
        return f"{self.name}#{self.repeat}" if self.name in CONFIRM else self.name

    @property
    def target(self) -> str:
        """What the run waits for per order: 'assessed' (risk.v1) or 'confirmed'."""
        return "confirmed" if self.pay else "assessed"

    @property
    def checks(self) -> list[str]:
        return ["inventory", "risk"] if self.risk else ["inventory"]


def scenario_of(name: str, repeat: int = 1) -> Scenario:
    if name == "assess-fixed":
        return Scenario(name, "fixed", risk=True, pay=False)
    if name == "assess-sat":
        return Scenario(name, "sat", risk=True, pay=False)
    if name == "assess-backlog":
        return Scenario(name, "backlog", risk=True, pay=False)
    return Scenario(name, "sat", risk=name == "confirm-with-risk", pay=True, repeat=repeat)


# -- what is ordered ------------------------------------------------------------------------


class Shoppers:
    """Clean orders: each its own customer, device, IP and street address (so no velocity
    window counts more than one), a valid German address, two lines of one unit at
    19.90 (a total of 39.80, far below the 1,000 large-order limit)."""

    def __init__(self, tag: str, skus: int) -> None:
        self.tag = tag
        self.skus = [f"RISK-{i:03d}" for i in range(skus)]

    def body(self, n: int, who: str = "c") -> bytes:
        first, second = n % len(self.skus), (n * 7 + 1) % len(self.skus)
        if second == first:
            second = (first + 1) % len(self.skus)
        return json.dumps(
            {
                "customer_id": f"rb-{self.tag}-{who}{n}",
                "channel": "shop",
                "lines": [
                    {"sku": self.skus[first], "qty": 1, "unit_price": "19.90"},
                    {"sku": self.skus[second], "qty": 1, "unit_price": "19.90"},
                ],
                "shipping_address": {
                    "name": f"Bench Customer {who}{n}",
                    "line1": f"Musterstrasse {who}{n}",
                    "city": "Berlin",
                    "postal_code": "10115",
                    "country": "DE",
                },
                "payment_method": "card",
                "device_id": f"dev-{self.tag}-{who}{n}",
                "client_ip": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def payment(order_id: str, total: Any) -> bytes:
        body = {"amount": total, "method": "card", "reference": f"bench-{order_id}"}
        return json.dumps(body, separators=(",", ":")).encode()


# -- one run's observations ------------------------------------------------------------------


@dataclass
class Placed:
    sent: float  # perf_counter when POST /orders was started (open loop: when it was due)
    done: float  # perf_counter when its 201 response was read
    paid: float | None = None  # when the payment's 200 was read


@dataclass
class Counts:
    """The velocity worker's counts for one order, as seen on risk.velocity.v1."""

    by_dimension: dict[str, int] = field(default_factory=dict)
    complete: float | None = None  # perf_counter when the last dimension's first arrived


@dataclass
class Assessed:
    seen: float  # the first OrderAssessed received here (perf_counter)
    occurred: float  # its occurred_at (perf_counter): risk's handler made it
    outcome: str
    hold: bool
    counts_here: bool  # all three velocity counts had arrived here before it


@dataclass
class Run:
    scenario: Scenario
    shoppers: Shoppers
    placed: dict[str, Placed] = field(default_factory=dict)
    # OrderPlaced seen on orders.v1: id -> (its occurred_at, time received), perf_counter
    published: dict[str, tuple[float, float]] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    highest_count: int = 0
    #: order id -> the velocity table keys (one per dimension) whose changelog holds it
    tabled: dict[str, set[bytes]] = field(default_factory=dict)
    assessed: dict[str, Assessed] = field(default_factory=dict)
    #: the latest assessment per order: (assessment number, outcome, hold, rules)
    latest: dict[str, tuple[int, str, bool, tuple[str, ...]]] = field(default_factory=dict)
    confirmed: dict[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # OrderHeld on orders.v1
    cancelled: dict[str, str] = field(default_factory=dict)  # OrderCancelled: reason
    finished: int = 0  # placed orders whose target event arrived
    errors: Counter[str] = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)
    skipped: int = 0
    reconnects: int = 0
    in_flight: int = 0
    sent_count: int = 0
    throttled_s: float = 0.0  # closed loop: worker-seconds waiting for --max-pending
    pending_at_end: int | None = None  # placed orders without their target event then
    started: float = 0.0
    measure_from: float = math.inf
    measure_to: float = math.inf
    phase: str = "starting"

    @property
    def label(self) -> str:
        return self.scenario.label

    def target(self) -> dict[str, Any]:
        return self.confirmed if self.scenario.target == "confirmed" else self.assessed

    def pending(self) -> int:
        return len(self.placed) - self.finished

    def done(self, order_id: str) -> None:
        """The target event of `order_id` arrived (called once per order)."""
        if order_id in self.placed:
            self.finished += 1


# -- the running system ------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    broker: EmbeddedBroker
    order: Service
    inventory: Service
    risk: Service | None
    worker: WorkerProcess | None
    dsns: dict[str, str]
    run: Run
    stopped: dict[str, tuple[int | None, float]] = field(default_factory=dict)

    def services(self) -> tuple[Service, ...]:
        return (self.order, self.inventory) + ((self.risk,) if self.risk else ())

    def pids(self) -> dict[str, int | None]:
        broker = self.broker.process
        pids: dict[str, int | None] = {s.name: s.process.pid for s in self.services()}
        if self.worker is not None and self.worker.process is not None:
            pids["risk-windows"] = self.worker.process.pid
        pids["broker"] = broker.pid if broker is not None else None
        return pids

    def databases(self) -> DbMeter:
        return DbMeter(self.dsns)

    def stop(self, service: Service) -> None:
        self.stopped[service.log_path.name] = stop_service(service)

    def stop_risk(self) -> None:
        if self.risk is not None:
            self.stop(self.risk)

    def stop_worker(self) -> None:
        worker = self.worker
        if worker is None or worker.process is None:
            return
        began = time.monotonic()
        worker.stop()
        self.stopped[worker.log_path.name] = (worker.process.returncode, time.monotonic() - began)


@contextlib.asynccontextmanager
async def stack(run: Run, args: argparse.Namespace) -> AsyncIterator[Stack]:
    """Broker, databases, the services (and with risk the velocity worker), stock
    received, the consumers, and one probe order through the whole path."""
    scenario = run.scenario
    tmp = Path(tempfile.mkdtemp(prefix=f"shopfloor-bench-{scenario.label.replace('#', '-')}-"))
    ok = False
    listeners: list[AIOKafkaConsumer] = []
    tasks: list[asyncio.Task[None]] = []
    with contextlib.ExitStack() as exits:
        broker = EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log")
        try:
            broker.start()
        except BrokerError as error:
            raise BenchError(f"{error}; see {tmp / 'tansu.log'}") from None
        exits.callback(broker.stop)
        dsns = {"order": exits.enter_context(postgres_database("sf_bench_order"))}
        dsns["inventory"] = exits.enter_context(postgres_database("sf_bench_inventory"))
        if scenario.risk:
            dsns["risk"] = exits.enter_context(postgres_database("sf_bench_risk"))
        checks = {"ORDER_RULES__REQUIRED_CHECKS": json.dumps(scenario.checks)}
        order = start_service("order", broker, tmp, dsns["order"], env=checks)
        inventory = start_service("inventory", broker, tmp, dsns["inventory"])
        risk = start_service("risk", broker, tmp, dsns["risk"]) if scenario.risk else None
        running = Stack(tmp, broker, order, inventory, risk, None, dsns, run)
        # On the way out (last in, first out): the worker, the services, then the broker
        # and databases.
        exits.callback(running.stop_risk)
        exits.callback(lambda: running.stop(running.inventory))
        exits.callback(lambda: running.stop(running.order))
        exits.callback(running.stop_worker)
        print(
            f"[{scenario.label}] "
            + ", ".join(f"{s.name} pid {s.process.pid} {s.url}" for s in running.services())
            + f", broker {broker.bootstrap_servers}, required checks {scenario.checks}, "
            f"logs in {tmp}",
            flush=True,
        )
        try:
            began = time.monotonic()
            await asyncio.gather(*(wait_ready(s, scenario.label) for s in running.services()))
            bootstrap = broker.bootstrap_servers
            if scenario.risk:
                running.worker = WorkerProcess(bootstrap, tmp, name="risk-windows").start()
            try:
                placements = await start_consumer(bootstrap, ORDERS)
                listeners.append(placements)
                tasks.append(asyncio.create_task(consume_orders(placements, run)))
                if scenario.risk:
                    assessments = await start_consumer(bootstrap, RISK)
                    listeners.append(assessments)
                    tasks.append(asyncio.create_task(consume_assessments(assessments, run)))
                    velocity = await start_consumer(bootstrap, RISK_VELOCITY)
                    listeners.append(velocity)
                    tasks.append(asyncio.create_task(consume_velocity(velocity, run)))
            except BenchError as error:
                raise BenchError(f"{error}; see the logs in {tmp}") from None
            await receive_stock(inventory, [(sku, args.units) for sku in run.shoppers.skus])
            if running.worker is not None:
                try:
                    await running.worker.recovered(WORKER_READY_TIMEOUT_S)
                except AssertionError as error:
                    raise BenchError(f"the velocity worker is not ready: {error}") from None
                worker_ready = time.monotonic() - began
            await probe(running, run)
            print(
                f"[{scenario.label}] ready after {time.monotonic() - began:.1f}s "
                + (f"(velocity worker ready after {worker_ready:.1f}s) " if scenario.risk else "")
                + f"with stock for {len(run.shoppers.skus)} SKUs, a probe order through",
                flush=True,
            )
            yield running
            ok = True
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for listener in listeners:
                await listener.stop()
            if not ok:
                print(f"[{scenario.label}] logs kept: {tmp}", flush=True)
    for name, (code, took) in running.stopped.items():
        if not stopped_cleanly(code):
            print(f"[{scenario.label}] {name}: exit code {code} after {took:.1f}s", flush=True)
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


async def probe(system: Stack, run: Run) -> None:
    """One order through the whole path (placed, paid if the scenario pays, its target
    event received) before the clock starts; not counted. The velocity worker tells
    nothing about a clean order (only counts over the limit), so it was waited for by its
    table's recovery (its partitions assigned)."""
    target = run.target()
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=system.order.url, timeout=30) as client:
        response = await client.post(
            "/orders", content=run.shoppers.body(1, "probe"), headers=headers
        )
        if response.status_code != 201:
            raise BenchError(
                f"probe order: HTTP {response.status_code} {response.text[:200]}; see "
                f"{system.order.log_path}"
            )
        order = response.json()
        order_id = str(order["id"])
        if run.scenario.pay:
            paid = await client.post(
                f"/orders/{order_id}/payments",
                content=Shoppers.payment(order_id, order["total"]),
                headers=headers,
            )
            if paid.status_code != 200:
                raise BenchError(
                    f"probe payment: HTTP {paid.status_code} {paid.text[:200]}; see "
                    f"{system.order.log_path}"
                )
        if not await wait_until(lambda: order_id in target, PROBE_TIMEOUT_S):
            what = "OrderConfirmed" if run.scenario.pay else "OrderAssessed"
            raise BenchError(
                f"probe order {order_id}: no {what} within {PROBE_TIMEOUT_S:.0f}s of the "
                f"start; see the logs in {system.tmp}"
            )


# -- the consumers ----------------------------------------------------------------------------

_ORDER_EVENTS = (b"OrderPlaced", b"OrderConfirmed", b"OrderHeld", b"OrderCancelled")


def _event_type(value: bytes) -> bytes:
    """The envelope's event_type without parsing it (the relay writes compact JSON);
    b"" when not found, and the caller then parses the whole message."""
    at = value.find(b'"event_type":"')
    if at < 0:
        return b""
    start = at + len(b'"event_type":"')
    return value[start : value.find(b'"', start)]


async def consume_orders(consumer: AIOKafkaConsumer, run: Run) -> None:
    """OrderPlaced (where the clock starts), OrderConfirmed, OrderHeld, OrderCancelled."""
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                value = record.value or b"{}"
                kind = _event_type(value)
                if kind and kind not in _ORDER_EVENTS:
                    continue
                envelope = json.loads(value)
                kind_s = envelope.get("event_type")
                order_id = envelope.get("aggregate_id")
                if kind_s == "OrderPlaced":
                    if order_id not in run.published:
                        run.published[order_id] = (perf_time(envelope["occurred_at"]), now)
                elif kind_s == "OrderConfirmed":
                    if order_id not in run.confirmed:
                        run.confirmed[order_id] = now
                        if run.scenario.target == "confirmed":
                            run.done(order_id)
                elif kind_s == "OrderHeld":
                    run.held.add(order_id)
                elif kind_s == "OrderCancelled":
                    run.cancelled[order_id] = envelope["payload"].get("reason", "?")


async def consume_assessments(consumer: AIOKafkaConsumer, run: Run) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                value = record.value or b"{}"
                kind = _event_type(value)
                if kind and kind != b"OrderAssessed":
                    continue
                envelope = json.loads(value)
                if envelope.get("event_type") != "OrderAssessed":
                    continue
                payload = envelope["payload"]
                order_id = payload["order_id"]
                number = int(payload["assessment"])
                rules = tuple(r["rule"] for r in payload.get("reasons") or [])
                known = run.latest.get(order_id)
                if known is None or number > known[0]:
                    run.latest[order_id] = (number, payload["outcome"], payload["hold"], rules)
                if order_id not in run.assessed:
                    counts = run.counts.get(order_id)
                    run.assessed[order_id] = Assessed(
                        seen=now,
                        occurred=perf_time(envelope["occurred_at"]),
                        outcome=payload["outcome"],
                        hold=bool(payload["hold"]),
                        counts_here=counts is not None and counts.complete is not None,
                    )
                    if run.scenario.target == "assessed":
                        run.done(order_id)


async def consume_velocity(consumer: AIOKafkaConsumer, run: Run) -> None:
    """VelocityObserved: one per order and dimension (more if a count is told again)."""
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                envelope = json.loads(record.value or b"{}")
                if envelope.get("event_type") != "VelocityObserved":
                    continue
                payload = envelope["payload"]
                counts = run.counts.setdefault(payload["order_id"], Counts())
                for count in payload["counts"]:
                    counts.by_dimension.setdefault(count["dimension"], int(count["count"]))
                    run.highest_count = max(run.highest_count, int(count["count"]))
                if counts.complete is None and len(counts.by_dimension) >= DIMENSIONS:
                    counts.complete = now


async def consume_changelog(consumer: AIOKafkaConsumer, run: Run) -> None:
    """The velocity table's changelog: each record a bucket's whole content, so an order
    is counted in a dimension once a record of that key's bucket holds it (the worker
    tells nothing about a clean order)."""
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        for records in batches.values():
            for record in records:
                if record.value is None or record.key is None:
                    continue  # a seal
                for order_id in json.loads(record.value):
                    run.tabled.setdefault(order_id, set()).add(record.key)


# -- the load ---------------------------------------------------------------------------------


async def place(connections: Pool, run: Run, n: int, due: float | None = None) -> bool:
    """POST /orders (then, if the scenario pays, POST /orders/{id}/payments with the
    total), each on a free connection of the pool. The clock starts when the order is
    `due` (open loop), else now."""
    sent = time.perf_counter() if due is None else due
    run.in_flight += 1
    run.sent_count += 1
    try:
        status, answer = await connections.post("/orders", run.shoppers.body(n))
    except TransportError as error:
        run.errors[f"place {error.kind}"] += 1
        return False
    finally:
        run.in_flight -= 1
    done = time.perf_counter()
    if status != 201:
        run.errors[f"place HTTP {status}"] += 1
        return False
    order = json.loads(answer)
    order_id = str(order["id"])
    placed = Placed(sent, done)
    run.placed[order_id] = placed
    if order_id in run.target():  # its event came before this response was read
        run.finished += 1
    if not run.scenario.pay:
        return True
    run.in_flight += 1
    try:
        path = f"/orders/{order_id}/payments"
        status, answer = await connections.post(path, Shoppers.payment(order_id, order["total"]))
    except TransportError as error:
        run.errors[f"pay {error.kind}"] += 1
        return False
    finally:
        run.in_flight -= 1
    if status != 200:
        run.errors[f"pay HTTP {status}"] += 1
        return False
    placed.paid = time.perf_counter()
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


async def closed_loop(
    connections: Pool, run: Run, concurrency: int, max_pending: int, until: float
) -> None:
    """`concurrency` workers, each placing (and paying) one order after the other; a
    worker waits while `max_pending` placed orders still lack their target event."""
    counter = iter(range(1, 1 << 62))

    async def worker() -> None:
        while time.perf_counter() < until:
            if run.pending() >= max_pending:
                began = time.perf_counter()
                while run.pending() >= max_pending and time.perf_counter() < until:
                    await asyncio.sleep(0.01)
                run.throttled_s += time.perf_counter() - began
                continue
            if not await place(connections, run, next(counter)):
                await asyncio.sleep(0.05)  # do not spin on a dead connection

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def progress(run: Run) -> None:
    def sample() -> tuple[float, int, int, int, float]:
        return (
            time.perf_counter(),
            len(run.placed),
            len(run.assessed),
            len(run.confirmed),
            time.process_time(),
        )

    last = sample()
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = sample()
        dt = now[0] - last[0]
        held = sum(1 for o in run.placed if run.latest.get(o, (0, "", False))[2])
        print(
            f"  [{run.label}] {run.phase:<8} {now[0] - run.started:6.1f}s  placed {now[1]:>6} "
            f"({(now[1] - last[1]) / dt:5.0f}/s)  assessed {now[2]:>6} "
            f"({(now[2] - last[2]) / dt:5.0f}/s)  confirmed {now[3]:>6} "
            f"({(now[3] - last[3]) / dt:5.0f}/s)  held {held}  pending {run.pending():>5}  "
            f"in flight {run.in_flight:>4}  errors {sum(run.errors.values())}  "
            f"bench CPU {(now[4] - last[4]) / dt:4.0%}",
            flush=True,
        )
        last = now


# -- the scenarios ----------------------------------------------------------------------------


async def exception_counts(system: Stack) -> dict[str, int] | None:
    """The risk service's own view: GET /exceptions/counts (eventually current)."""
    if system.risk is None:
        return None
    try:
        async with httpx.AsyncClient(base_url=system.risk.url, timeout=10) as client:
            response = await client.get("/exceptions/counts")
            return dict(response.json()) if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def alive(system: Stack) -> list[str]:
    """Processes that exited while they should be running."""
    gone = [
        f"{s.name} (exit code {s.process.poll()})"
        for s in system.services()
        if s.process.poll() is not None
    ]
    worker = system.worker
    if worker is not None and worker.process is not None and worker.process.poll() is not None:
        gone.append(f"risk-windows (exit code {worker.process.poll()})")
    return gone


async def load_scenario(scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    run = Run(scenario, Shoppers(uuid.uuid4().hex[:8], args.skus))
    rate = args.rate if scenario.kind == "fixed" else None
    async with stack(run, args) as system:
        connections = args.connections if rate is not None else args.concurrency
        offered = (
            f"{rate:g}/s open loop"
            if rate
            else f"closed loop, {args.concurrency} in flight, at most {args.max_pending} pending"
        )
        steps = "placed and paid" if scenario.pay else "placed"
        print(
            f"[{scenario.label}] {args.warmup:g}s warm-up, then {args.seconds:g}s measured; "
            f"{offered}; orders {steps}",
            flush=True,
        )
        meter, db, steal = CpuMeter(system.pids()), system.databases(), StealMeter()
        services = system.services()
        scraped: list[list[dict[str, float]]] = []

        async def window() -> None:
            await asyncio.sleep(max(run.measure_from - time.perf_counter(), 0))
            run.phase = "measure"
            meter.start()
            steal.start()
            await asyncio.to_thread(db.start)
            scraped.append(list(await asyncio.gather(*map(scrape, services))))
            await asyncio.sleep(max(run.measure_to - time.perf_counter(), 0))
            run.phase = "closing"
            run.pending_at_end = run.pending()
            meter.stop()
            steal.stop()
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
                    await closed_loop(pool, run, args.concurrency, args.max_pending, run.measure_to)
                await marking
            run.reconnects = pool.reconnects
            load_ended = time.perf_counter()
            run.phase = "drain"
            target = run.target()
            await wait_until(lambda: all(o in target for o in run.placed), args.drain_timeout)
            drained = time.perf_counter() - load_ended
            await asyncio.sleep(0.5)  # late assessments and holds
            risk_view = await exception_counts(system)
            gone = alive(system)
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
    result = summarize_load(run, rate, args, drained, meter)
    result["cpu_cores"]["steal"] = steal.cores
    result["risk_exception_counts"] = risk_view
    result["exited_during_run"] = gone
    result["consumers"] = consumers(services, scraped[0], scraped[1], meter.wall_s)
    done = (
        result["assessed_in_window"]
        if scenario.target == "assessed"
        else (result["confirmed_in_window"])
    )
    result["db_transactions"] = db_transactions(db, done)
    print()
    print(load_table([result]) if not scenario.pay else confirm_table([result]))
    if scenario.risk:
        print()
        print(stages_table([result]))
    print(cpu_line(result))
    print(consumers_line(result))
    print(checks_line(result))
    print()
    return result


async def backlog_scenario(scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    run = Run(scenario, Shoppers(uuid.uuid4().hex[:8], args.skus))
    total = args.backlog_orders
    async with stack(run, args) as system:
        assert system.risk is not None
        system.stop(system.risk)
        print(
            f"[{scenario.label}] risk stopped (the velocity worker runs on); placing {total} "
            f"orders with {args.concurrency} in flight",
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
            run.phase = "counting"
            # every order published and counted (in the velocity table's changelog), so
            # risk restarts onto all of its input and the worker is idle while it works
            changelog = await start_consumer(system.broker.bootstrap_servers, CHANGELOG)
            tabling = asyncio.create_task(consume_changelog(changelog, run))
            try:
                if not await wait_until(
                    lambda: all(
                        o in run.published and len(run.tabled.get(o, ())) >= DIMENSIONS
                        for o in run.placed
                    ),
                    args.drain_timeout,
                ):
                    missing = sum(1 for o in run.placed if o not in run.published)
                    uncounted = sum(
                        1 for o in run.placed if len(run.tabled.get(o, ())) < DIMENSIONS
                    )
                    raise BenchError(
                        f"of {len(run.placed)} placed orders, {missing} never appeared on "
                        f"{ORDERS.name} and {uncounted} were not in the velocity table's "
                        f"changelog within {args.drain_timeout:g}s; see the logs in "
                        f"{system.tmp}"
                    )
            finally:
                tabling.cancel()
                await asyncio.gather(tabling, return_exceptions=True)
                await changelog.stop()
            counted = time.perf_counter() - run.started
            early = len([o for o in run.placed if o in run.assessed])
            run.phase = "assess"
            assert system.risk is not None
            system.risk = start_service(
                "risk", system.broker, system.tmp, system.dsns["risk"], log_name="risk-2.log"
            )
            meter, db, steal = CpuMeter(system.pids()), system.databases(), StealMeter()
            meter.start()
            steal.start()
            await asyncio.to_thread(db.start)
            before = [await scrape(system.order), await scrape(system.inventory), {}]
            restarted = time.perf_counter()
            await wait_ready(system.risk, scenario.label)
            ready = time.perf_counter()
            complete = await wait_until(
                lambda: all(o in run.assessed for o in run.placed), args.backlog_timeout
            )
            meter.stop()
            steal.stop()
            await asyncio.sleep(1.0)  # pg_stat_database lags
            await asyncio.to_thread(db.stop)
            services = system.services()
            after = list(await asyncio.gather(*map(scrape, services)))
            risk_view = await exception_counts(system)
            gone = alive(system)
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
    result = summarize_backlog(run, filled, counted, early, restarted, ready, complete, meter)
    result["cpu_cores"]["steal"] = steal.cores
    result["risk_exception_counts"] = risk_view
    result["exited_during_run"] = gone
    result["consumers"] = consumers(services, before, after, meter.wall_s)
    result["db_transactions"] = db_transactions(db, len(run.placed))
    print()
    print(backlog_table([result]))
    print(cpu_line(result))
    print(consumers_line(result))
    print(checks_line(result))
    print()
    return result


# -- the numbers ------------------------------------------------------------------------------


def latency(values: list[float]) -> dict[str, float | None]:
    values.sort()
    return {f"p{p}": rnd(pct(values, p)) for p in (50, 95, 99)} | {
        "max": rnd(values[-1] if values else None),
        "count": len(values),
    }


def verdict_counts(run: Run) -> dict[str, Any]:
    """What risk said of the run's orders (their latest assessment), and what the order
    service did: cleared, flagged, held, the rules that fired."""
    outcomes: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    held = 0
    reassessed = 0
    for order_id in run.placed:
        latest = run.latest.get(order_id)
        if latest is None:
            continue
        number, outcome, hold, fired = latest
        outcomes[outcome] += 1
        held += hold
        reassessed += number > 1
        rules.update(fired)
    return {
        "cleared": outcomes["cleared"],
        "flagged": outcomes["flagged"],
        "held": held,
        "order_held_events": sum(1 for o in run.placed if o in run.held),
        "cancelled": sum(1 for o in run.placed if o in run.cancelled),
        "cancel_reasons": dict(Counter(run.cancelled[o] for o in run.placed if o in run.cancelled)),
        "rules_fired": dict(rules),
        "reassessed": reassessed,
        "told_counts": sum(1 for o in run.placed if o in run.counts),
        "highest_velocity_count": run.highest_count,
    }


def summarize_load(
    run: Run, rate: float | None, args: argparse.Namespace, drained: float, meter: CpuMeter
) -> dict[str, Any]:
    lo, hi = run.measure_from, run.measure_to
    window = hi - lo
    scenario = run.scenario
    completed = sum(1 for p in run.placed.values() if lo <= p.done <= hi)
    paid = sum(1 for p in run.placed.values() if p.paid is not None and lo <= p.paid <= hi)
    assessed_in = sum(1 for a in run.assessed.values() if lo <= a.seen <= hi)
    confirmed_in = sum(1 for t in run.confirmed.values() if lo <= t <= hi)
    sent_in_window = {o: p for o, p in run.placed.items() if lo <= p.sent <= hi}
    assess_ms, assess_api_ms, confirm_ms, api_ms, pay_ms = [], [], [], [], []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for order_id, p in sent_in_window.items():
        api_ms.append((p.done - p.sent) * 1000)
        if p.paid is not None:
            pay_ms.append((p.paid - p.done) * 1000)
        published = run.published.get(order_id)
        assessed = run.assessed.get(order_id)
        if assessed is not None:
            assess_api_ms.append((assessed.seen - p.sent) * 1000)
            if published is not None:
                assess_ms.append((assessed.seen - published[1]) * 1000)
        confirmed = run.confirmed.get(order_id)
        if confirmed is not None:
            confirm_ms.append((confirmed - p.sent) * 1000)
        if published is None or assessed is None:
            continue
        occurred, seen = published
        legs = (
            (p.sent, p.done),
            (occurred, seen),
            (seen, assessed.occurred),
            (assessed.occurred, assessed.seen),
        )
        for stage, (a, b) in zip(STAGES, legs, strict=True):
            stages[stage].append((b - a) * 1000)
    target = run.target()
    undone = [o for o in run.placed if o not in target]
    late = sorted(run.lateness)
    return {
        "scenario": scenario.name,
        "label": scenario.label,
        "repeat": scenario.repeat,
        "mode": "open loop" if rate else "closed loop",
        "required_checks": scenario.checks,
        "paid": scenario.pay,
        "offered_per_s": rate,
        "concurrency": None if rate else args.concurrency,
        "max_pending": None if rate else args.max_pending,
        "window_s": round(window, 3),
        "orders_sent": run.sent_count,
        "orders_placed": len(run.placed),
        "placements_per_s": round(completed / window, 1),
        "payments_per_s": round(paid / window, 1) if scenario.pay else None,
        "assessed_in_window": assessed_in,
        "assessed_per_s": round(assessed_in / window, 1) if scenario.risk else None,
        "confirmed_in_window": confirmed_in,
        "confirmed_per_s": round(confirmed_in / window, 1) if scenario.pay else None,
        "assess_latency_ms": latency(assess_ms),  # OrderPlaced received -> OrderAssessed
        "assess_from_post_ms": latency(assess_api_ms),  # POST sent -> OrderAssessed
        "confirm_latency_ms": latency(confirm_ms),  # POST sent -> OrderConfirmed
        "api_latency_ms": latency(api_ms),  # POST /orders
        "pay_latency_ms": latency(pay_ms),  # POST /orders/{id}/payments
        "stages_ms": {stage: latency(values) for stage, values in stages.items()},
        **verdict_counts(run),
        "errors": sum(run.errors.values()),
        "errors_by_kind": dict(run.errors),
        "reconnects": run.reconnects,
        "undone": len(undone),
        "undone_examples": undone[:5],
        "waiting_for": scenario.target,
        "pending_at_window_end": run.pending_at_end,
        "throttled_share": round(run.throttled_s / (args.concurrency * (hi - run.started)), 3)
        if not rate
        else None,
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
    counted: float,
    early: int,
    restarted: float,
    ready: float,
    complete: bool,
    meter: CpuMeter,
) -> dict[str, Any]:
    times = sorted(a.seen for o, a in run.assessed.items() if o in run.placed)
    n = len(times)
    first, last = (times[0], times[-1]) if times else (math.nan, math.nan)
    span = last - first
    lo, hi = times[n // 10] if n else math.nan, times[(n * 9) // 10 - 1] if n >= 10 else math.nan
    steady = (n * 9 // 10 - n // 10 - 1) / (hi - lo) if n >= 10 and hi > lo else None
    return {
        "scenario": run.scenario.name,
        "label": run.scenario.label,
        "orders": len(run.placed),
        "fill_s": round(filled, 2),
        "fill_placements_per_s": round(len(run.placed) / filled, 1) if filled else None,
        "published_and_counted_s": round(counted, 2),
        "assessed_before_restart": early,
        "risk_ready_s": round(ready - restarted, 2),
        "first_assessed_after_start_s": rnd(first - restarted, 2),
        "all_assessed_after_start_s": rnd(last - restarted, 2),
        "assessed_per_s": round((n - 1) / span, 1) if n > 1 and span > 0 else None,
        "steady_assessed_per_s": rnd(steady),
        **verdict_counts(run),
        "errors": sum(run.errors.values()),
        "errors_by_kind": dict(run.errors),
        "reconnects": run.reconnects,
        "undone": sum(1 for o in run.placed if o not in run.assessed),
        "waiting_for": "assessed",
        "complete": complete,
        "cpu_s": meter.used,
        "cpu_cores": meter.cores(),
    }


# -- output ---------------------------------------------------------------------------------


def _offered(r: dict[str, Any]) -> str:
    return f"{r['offered_per_s']:g}/s" if r["offered_per_s"] else f"saturation ({r['concurrency']})"


def _verdicts_cell(r: dict[str, Any]) -> str:
    return f"{r['cleared']} / {r['flagged']} / {r['held']}"


def load_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | offered | placements/s | assessed/s | OrderPlaced -> OrderAssessed "
        "p50 / p95 / p99 ms | from POST p99 ms | API p99 ms | cleared / flagged / held "
        "| counts told | pending at end | errors | unassessed | bench CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r["assess_latency_ms"]
        rows.append(
            f"| {r['label']} | {_offered(r)} | {r['placements_per_s']:.1f} | "
            f"{r['assessed_per_s']:.1f} | {ms(lat['p50'])} / {ms(lat['p95'])} / "
            f"{ms(lat['p99'])} | {ms(r['assess_from_post_ms']['p99'])} | "
            f"{ms(r['api_latency_ms']['p99'])} | {_verdicts_cell(r)} | "
            f"{r['told_counts']} | {r['pending_at_window_end']} | "
            f"{r['errors']} | {r['undone']} | {r['cpu_cores'].get('bench', math.nan):.2f} |"
        )
    return "\n".join(rows)


def confirm_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | required checks | paid/s | confirmed/s | placed -> confirmed "
        "p50 / p95 / p99 ms | place / pay API p99 ms | OrderPlaced -> OrderAssessed p99 ms "
        "| cleared / flagged / held | pending at end | throttled | errors | unconfirmed "
        "| bench CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r["confirm_latency_ms"]
        risk = r["assessed_per_s"] is not None
        rows.append(
            f"| {r['label']} | {', '.join(r['required_checks'])} | {r['payments_per_s']:.1f} | "
            f"{r['confirmed_per_s']:.1f} | {ms(lat['p50'])} / {ms(lat['p95'])} / "
            f"{ms(lat['p99'])} | {ms(r['api_latency_ms']['p99'])} / "
            f"{ms(r['pay_latency_ms']['p99'])} | "
            f"{ms(r['assess_latency_ms']['p99']) if risk else '-'} | "
            f"{_verdicts_cell(r) if risk else '-'} | {r['pending_at_window_end']} | "
            f"{r['throttled_share']:.0%} | {r['errors']} | {r['undone']} | "
            f"{r['cpu_cores'].get('bench', math.nan):.2f} |"
        )
    return "\n".join(rows)


def backlog_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | orders | risk ready s | assessed/s (first to last) | steady assessed/s "
        "(middle 80%) | start to first / last assessed s | cleared / flagged / held "
        "| counts told | unassessed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r['label']} | {r['orders']} | {r['risk_ready_s']} | {ms(r['assessed_per_s'])} | "
            f"{ms(r['steady_assessed_per_s'])} | {r['first_assessed_after_start_s']} / "
            f"{r['all_assessed_after_start_s']} | {_verdicts_cell(r)} | "
            f"{r['told_counts']} | {r['undone']} |"
        )
    return "\n".join(rows)


def stages_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| scenario | " + " | ".join(f"{s} p50 / p99 ms" for s in STAGES) + " |",
        "|---|" + "---:|" * len(STAGES),
    ]
    for r in results:
        cells = [f"{ms(r['stages_ms'][s]['p50'])} / {ms(r['stages_ms'][s]['p99'])}" for s in STAGES]
        rows.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _with_other(cores: dict[str, float]) -> dict[str, float]:
    """`other`: the machine's busy cores minus every part measured: anything else that ran,
    and the hypervisor's steal (also shown alone, as `steal`)."""
    parts = sum(v for k, v in cores.items() if k not in ("machine", "steal") and not math.isnan(v))
    if "machine" not in cores or math.isnan(cores["machine"]):
        return cores
    return {**cores, "other": round(cores["machine"] - parts, 2)}


def cpu_table(results: list[dict[str, Any]]) -> str:
    columns = (*CPU_PARTS, "other", "steal")
    rows = [
        "| scenario | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for r in results:
        cores = _with_other(r["cpu_cores"])
        cells = [f"{cores[p]:.2f}" if p in cores else "-" for p in columns]
        rows.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cpu_line(result: dict[str, Any]) -> str:
    cores = _with_other(result["cpu_cores"])
    return "cores busy: " + ", ".join(
        f"{p} {cores[p]:.2f}" for p in (*CPU_PARTS, "other", "steal") if p in cores
    )


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
        what = "assessed" if result["waiting_for"] == "assessed" else "confirmed"
        parts.append(
            f"PostgreSQL commits per order {what}: "
            + ", ".join(f"{label} {c['per_decision']}" for label, c in db.items())
        )
    return "; ".join(parts) or "consumers: no batches seen in /metrics"


def checks_line(result: dict[str, Any]) -> str:
    line = (
        f"risk's word on the run's orders: {result['cleared']} cleared, {result['flagged']} "
        f"flagged, {result['held']} held (OrderHeld {result['order_held_events']}), "
        f"{result['cancelled']} cancelled, {result['reassessed']} assessed more than once, "
        f"{result['told_counts']} with velocity counts told (only counts over the limit are), "
        f"highest velocity count {result['highest_velocity_count']}"
    )
    if result["rules_fired"]:
        line += f"; rules fired: {result['rules_fired']}"
    if result.get("risk_exception_counts") is not None:
        line += f"; GET /exceptions/counts: {result['risk_exception_counts']}"
    if result.get("exited_during_run"):
        line += f"; EXITED during the run: {', '.join(result['exited_during_run'])}"
    return line


def confirm_ratio(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    without = [r["confirmed_per_s"] for r in results if r["scenario"] == "confirm-without-risk"]
    with_risk = [r["confirmed_per_s"] for r in results if r["scenario"] == "confirm-with-risk"]
    if not without or not with_risk:
        return None
    base, risky = statistics.median(without), statistics.median(with_risk)
    ratio = risky / base if base else None
    pairs = [round(w / b, 3) if b else None for b, w in zip(without, with_risk, strict=False)]
    return {
        "without_risk_confirmed_per_s": without,
        "with_risk_confirmed_per_s": with_risk,
        "median_without": round(base, 1),
        "median_with": round(risky, 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "cost": None if ratio is None else round(1 - ratio, 3),
        "ratio_per_pair": pairs,
        "held": ratio is not None and 1 - ratio <= TARGET_COST,
    }


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        if r.get("mode") == "open loop":
            p99 = r["assess_latency_ms"]["p99"]
            ok = p99 is not None and p99 < TARGET_P99_MS and r["offered_per_s"] == 100
            lines.append(
                f"bar: OrderPlaced -> OrderAssessed p99 < {TARGET_P99_MS:g} ms at 100/s, "
                f"{r['label']} ({r['offered_per_s']:g}/s): {ms(p99)} ms -> "
                f"{'met' if ok else 'MISSED'}"
            )
    ratio = confirm_ratio(results)
    if ratio is not None and ratio["ratio"] is not None:
        lines.append(
            f"bar: risk in the path costs at most {TARGET_COST:.0%} of placed -> confirmed/s: "
            f"{ratio['median_with']:g}/s with risk against {ratio['median_without']:g}/s "
            f"without (medians of {len(ratio['with_risk_confirmed_per_s'])}; ratio "
            f"{ratio['ratio']:.2f}, per pair {ratio['ratio_per_pair']}), a cost of "
            f"{ratio['cost']:.0%} -> {'met' if ratio['held'] else 'MISSED'}"
        )
    for r in results:
        if r.get("mode") == "closed loop" and r["scenario"] == "assess-sat":
            lines.append(
                f"info: {r['label']}: {r['assessed_per_s']:.1f} orders/s assessed at saturation, "
                f"p99 {ms(r['assess_latency_ms']['p99'])} ms"
            )
        if "steady_assessed_per_s" in r:
            lines.append(
                f"info: risk alone on a backlog of {r['orders']}: "
                f"{ms(r['steady_assessed_per_s'])} orders/s assessed (steady)"
            )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.risk_stage",
        description="Orders/s assessed by risk and the latency OrderPlaced -> OrderAssessed "
        "at a fixed rate and at saturation; placed -> confirmed throughput with and without "
        "risk in the path, as a ratio; and risk alone on a backlog.",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (20)")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up before it (10)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {','.join(SCENARIOS)} (all)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs of each confirm scenario, alternating without/with risk (2)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="fixed offered rate (100/s)")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for the fixed rate (16)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="orders in flight at saturation and while filling the backlog (32)",
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=500,
        help="closed loop: placed orders still waiting for their OrderAssessed / "
        "OrderConfirmed beyond which the load waits (500)",
    )
    parser.add_argument(
        "--backlog-orders", type=int, default=5000, help="orders in the backlog test (5000)"
    )
    parser.add_argument("--skus", type=int, default=50, help="SKUs ordered from (50)")
    parser.add_argument("--units", type=int, default=1_000_000, help="units per SKU (1000000)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="wait for outstanding assessments / confirmations after the load (120)",
    )
    parser.add_argument(
        "--backlog-timeout", type=float, default=300.0, help="wait for the backlog (300)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (~2 min): 5 s measured after 2 s warm-up, one repeat, 1000 backlog orders",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directories (service logs)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.repeats, args.backlog_orders = 5.0, 2.0, 1, 1000
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        parser.error(
            f"--scenarios: unknown {unknown or 'nothing'}; choose from {','.join(SCENARIOS)}"
        )
    if args.seconds <= 0 or args.warmup < 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be > 0, --warmup >= 0")
    if min(args.concurrency, args.connections, args.backlog_orders, args.repeats) < 1:
        parser.error("--concurrency, --connections, --backlog-orders, --repeats must be >= 1")
    if args.skus < 2 or args.max_pending < 1:
        parser.error("--skus >= 2, --max-pending >= 1")
    if not 1 <= args.units <= 1_000_000:
        parser.error("--units: 1 to 1000000 (one receipt each)")
    return args


def plan(args: argparse.Namespace) -> list[Scenario]:
    """The scenarios in the order given; the confirm ones, where the first of them
    stands, `--repeats` times, alternating."""
    found: list[Scenario] = []
    confirm = [s for s in args.scenarios if s in CONFIRM]
    for name in args.scenarios:
        if name not in CONFIRM:
            found.append(scenario_of(name))
        elif name == confirm[0]:
            for k in range(1, args.repeats + 1):
                found.extend(scenario_of(c, k) for c in confirm)
    return found


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    info["postgres"] = postgres_version()
    print(describe_machine(info))
    source = source_version()
    changed = f", {len(source['changed'])} files changed since" if source["changed"] else ""
    print(f"code: commit {source['commit']}{changed}")
    print(
        f"note: this load generator, the services, the velocity worker, the broker and "
        f"PostgreSQL all share these {info['cpu_count']} cores; 'bench CPU' is this "
        "process's own share (time.process_time)",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for scenario in plan(args):
        try:
            if scenario.kind == "backlog":
                results.append(await backlog_scenario(scenario, args))
            else:
                results.append(await load_scenario(scenario, args))
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr, flush=True)
            return 1
    assess = [r for r in results if "mode" in r and not r["paid"]]
    confirm = [r for r in results if "mode" in r and r["paid"]]
    backlog = [r for r in results if "mode" not in r]
    risky = [r for r in results if "mode" in r and r["assessed_per_s"] is not None]
    parts = []
    if assess:
        parts.append(assess_header() + load_table(assess))
    if confirm:
        parts.append(confirm_header() + confirm_table(confirm))
    if risky:
        parts.append("Where the time goes, orders sent in the window:\n\n" + stages_table(risky))
    if backlog:
        parts.append(backlog_table(backlog))
    parts.append("CPU, average cores busy (measured window; backlog: from restart to done):\n\n")
    parts[-1] += cpu_table(results)
    text = "\n\n".join(parts)
    print()
    print(text)
    print()
    lines = verdicts(results)
    for line in lines:
        print(line)
    stamp = utc_stamp()
    payload = {
        "benchmark": "risk_stage",
        "started_at": stamp,
        "settings": dict(vars(args)),
        "machine": info,
        "source": {"at_start": source, "at_end": source_version()},
        "results": results,
        "confirm_ratio": confirm_ratio(results),
        "verdicts": lines,
        "table_markdown": text,
    }
    out = write_results("risk_stage", stamp, payload)
    print(f"results: {out}")
    code = 0
    undone = sum(r["undone"] for r in results)
    if undone:
        print(
            f"WARNING: {undone} accepted orders never had their OrderAssessed / OrderConfirmed "
            "seen within the drain timeout",
            file=sys.stderr,
        )
        code = 3
    unclean = sum(r["flagged"] + r["held"] for r in results)
    if unclean:
        print(
            f"WARNING: risk flagged or held {unclean} of the bench's clean orders (see "
            "rules_fired in the JSON): the run does not measure what it says",
            file=sys.stderr,
        )
        code = 3
    return code


def assess_header() -> str:
    return "Assessment: OrderPlaced received on orders.v1 -> OrderAssessed received on risk.v1\n\n"


def confirm_header() -> str:
    return "Placed -> confirmed: POST /orders sent -> OrderConfirmed received on orders.v1\n\n"


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
