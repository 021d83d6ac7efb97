"""A peak for fulfilment: a normal rate of confirmed orders, fifteen times that for a
minute, the normal rate again; fulfilment on PostgreSQL as separate worker processes
(one with the outbox relay); how fast orders reach a released wave, how far the consumer
group falls behind and how soon it catches up, what a worker leaving or joining costs,
and whether every order ends in exactly one wave.

Each run starts from nothing: a fresh embedded broker, a fresh PostgreSQL database, the
workers started and in the consumer group before the stream begins. The order and
inventory services are played by `bench.upstream` (no order or inventory service runs).
A consumer without a group reads fulfilment.v1 and stamps when each order first appears
in a WaveReleased. Runs: 1 worker, then 3 workers once per rebalance setting; runs with
more than one worker go on at the normal rate after the three phases until the backlog
has drained, then stop one worker (SIGTERM) and later start a new one.

Run from the workspace root: `python -m bench.peak [--quick]`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shopfloor_contracts.topics import FULFILMENT, INVENTORY, ORDERS, ORDERS_PRIVATE
from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_runtime.settings import BrokerSettings
from shopfloor_runtime.testing import free_port, postgres_database

from bench.harness import (
    BenchError,
    DbMeter,
    Service,
    block_missing_sniffio,
    describe_machine,
    machine,
    machine_busy_s,
    metrics_delta,
    pct,
    postgres_cpu_s,
    postgres_version,
    process_cpu_s,
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
from bench.upstream import WAREHOUSES, Phase, Upstream

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLOT = ROOT / "docs" / "bench" / "peak-lag.png"
INPUTS = (ORDERS, ORDERS_PRIVATE, INVENTORY)
#: The tracked consumer's group id (TrackedConsumer: "<service>.<topic>+<topic>+...")
GROUP = "fulfilment." + "+".join(t.name for t in INPUTS)
MESSAGES_PER_ORDER = 4  # OrderPlaced, OrderRecipientRecorded, OrderConfirmed, StockReserved
BUCKET_S = 5.0
METRICS_EVERY_S = 0.5
LAG_EVERY_S = 0.5
PROGRESS_EVERY_S = 5.0
GROUP_TIMEOUT_S = 90.0
#: A backlogged 5 s bucket: at both its edges the lag is at least this many seconds of the
#: peak's input (so the group works flat out, and what it consumes is its capacity).
BACKLOGGED_S = 5.0
#: Above this many cores busy outside the parts measured, a phase is marked noisy.
NOISY_CORES = 0.25
PHASES = ("normal", "peak", "after")  # every run's; runs with worker changes add "changes"


# -- settings of one run ------------------------------------------------------------------


@dataclass(frozen=True)
class Rebalance:
    """Consumer group timing for every worker of a run: `default` is the service's own
    (BrokerSettings), else session/heartbeat in ms."""

    label: str
    session_ms: int
    heartbeat_ms: int

    @classmethod
    def parse(cls, text: str) -> Rebalance:
        if text == "default":
            base = BrokerSettings()
            return cls("default", base.session_timeout_ms, base.heartbeat_interval_ms)
        session, _, heartbeat = text.partition("/")
        value = cls(text, int(session), int(heartbeat))
        if not 0 < value.heartbeat_ms < value.session_ms:
            raise ValueError(f"{text}: need 0 < heartbeat < session")
        return value

    def describe(self) -> str:
        return f"session {self.session_ms} ms, heartbeat {self.heartbeat_ms} ms"


@dataclass
class Worker:
    name: str
    service: Service
    relay: bool
    started: float  # perf_counter when the process was started
    ready: float = math.nan
    stopped: float = math.nan
    first_applied: float = math.nan
    applied: float = 0.0  # last seen on its /metrics (a counter: it only grows)
    lag_gauge: float = 0.0
    gaps: float = 0.0
    exit_code: int | None = None
    stop_s: float = math.nan
    client: httpx.AsyncClient | None = None

    @property
    def alive(self) -> bool:
        return math.isnan(self.stopped) and self.service.process.poll() is None


@dataclass
class Run:
    label: str
    workers_wanted: int
    rebalance: Rebalance
    phases: list[Phase]
    upstream: Upstream
    t0: float = math.inf
    stream_end: float = math.inf
    status: str = "starting"
    workers: list[Worker] = field(default_factory=list)
    # from fulfilment.v1, each event id once
    event_ids: set[str] = field(default_factory=set)
    copies: int = 0  # messages whose event id was seen before (re-published copies)
    waved_at: dict[str, float] = field(default_factory=dict)  # order -> first wave seen
    waves_of: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wave_sizes: list[int] = field(default_factory=list)
    wave_triggers: Counter[str] = field(default_factory=Counter)
    shipments_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    allocated_seen: list[float] = field(default_factory=list)  # ShipmentAllocated arrivals
    # samples, perf_counter times
    progress: list[tuple[float, float]] = field(default_factory=list)  # group's applied
    lag: list[tuple[float, int]] = field(default_factory=list)  # end - committed, summed
    # per input partition: (time, records acknowledged, committed offset)
    partitions: dict[tuple[str, int], list[tuple[float, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    gauge: list[tuple[float, float]] = field(default_factory=list)  # lag gauges, summed
    group: list[tuple[float, str, int]] = field(default_factory=list)  # state, members
    cpu: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # leave / join
    scraped: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    db: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    group_ready_s: float = math.nan
    stop_at: float = math.inf  # the open-ended last phase ends here (set by the changes)
    drained_before_leave: bool | None = None

    def end_of(self, phase: Phase) -> float:
        """A phase's end as a perf_counter time (an open-ended one ends with the stream)."""
        return min(self.t0 + phase.end_s, self.stream_end)

    def lag_threshold(self) -> int:
        """The normal level of lag: the 95th percentile of the samples in the first phase
        after its first 10 s (or half of it), and never below one order's messages."""
        first = self.phases[0]
        start = self.t0 + min(10.0, first.seconds / 2)
        samples = sorted(v for t, v in self.lag if start <= t < self.t0 + first.end_s)
        return max(pct(samples, 95) or 0, MESSAGES_PER_ORDER)


# -- the running system ---------------------------------------------------------------------


def worker_env(args: argparse.Namespace, rebalance: Rebalance, relay: bool) -> dict[str, str]:
    return {
        "FULFILMENT_RELAY__ENABLED": "true" if relay else "false",  # one relay per service
        "FULFILMENT_RULES__WAVE_WINDOW_S": f"{args.wave_window:g}",
        "FULFILMENT_RULES__WAVE_SIZE": str(args.wave_size),
        # the default 400 shipments a day each would turn the peak away, not measure it
        "FULFILMENT_RULES__WAREHOUSES": json.dumps(
            {code: {"daily_capacity": 10_000_000} for code in WAREHOUSES}
        ),
        "FULFILMENT_BROKER__SESSION_TIMEOUT_MS": str(rebalance.session_ms),
        "FULFILMENT_BROKER__HEARTBEAT_INTERVAL_MS": str(rebalance.heartbeat_ms),
        **dict(args.worker_env),
    }


def launch(
    run: Run, broker: EmbeddedBroker, tmp: Path, dsn: str, args: argparse.Namespace, relay: bool
) -> Worker:
    name = f"fulfilment-{len(run.workers) + 1}"
    service = start_service(
        "fulfilment",
        broker,
        tmp,
        dsn,
        env=worker_env(args, run.rebalance, relay),
        log_name=f"{name}.log",
    )
    worker = Worker(name, service, relay, time.perf_counter())
    worker.client = httpx.AsyncClient(base_url=service.url, timeout=5)
    run.workers.append(worker)
    return worker


async def ready(worker: Worker, label: str) -> None:
    await wait_ready(worker.service, f"{label} {worker.name}")
    worker.ready = time.perf_counter()


async def stop_worker(worker: Worker) -> None:
    worker.stopped = time.perf_counter()
    worker.exit_code, worker.stop_s = await asyncio.to_thread(stop_service, worker.service)
    if worker.client is not None:
        await worker.client.aclose()
        worker.client = None


async def group_state(admin: AIOKafkaAdminClient) -> tuple[str, int]:
    [response] = await admin.describe_consumer_groups([GROUP])
    [described] = response.groups
    state, members = described[2], described[5]
    return str(state), len(members)


async def wait_for_group(admin: AIOKafkaAdminClient, members: int, label: str) -> float:
    """Until the group is Stable with `members` members, twice a second apart (the
    workers' /ready does not wait for the consumer group)."""
    began = time.perf_counter()
    stable_since: float | None = None
    last = ("?", 0)
    while True:
        with contextlib.suppress(Exception):  # the group may not exist yet
            last = await group_state(admin)
        if last == ("Stable", members):
            stable_since = stable_since or time.perf_counter()
            if time.perf_counter() - stable_since >= 1.0:
                return time.perf_counter() - began
        else:
            stable_since = None
        if time.perf_counter() - began > GROUP_TIMEOUT_S:
            raise BenchError(
                f"[{label}] the consumer group {GROUP} was not Stable with {members} members "
                f"within {GROUP_TIMEOUT_S:.0f}s (last: {last[0]} with {last[1]})"
            )
        await asyncio.sleep(0.5)


# -- what the bench watches -----------------------------------------------------------------


async def consume_fulfilment(consumer: AIOKafkaConsumer, run: Run) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                envelope = json.loads(record.value or b"{}")
                kind = envelope.get("event_type")
                if kind not in ("WaveReleased", "ShipmentAllocated"):
                    continue
                if envelope["event_id"] in run.event_ids:
                    run.copies += 1
                    continue
                run.event_ids.add(envelope["event_id"])
                payload = envelope["payload"]
                if kind == "WaveReleased":
                    run.wave_sizes.append(len(payload["order_ids"]))
                    run.wave_triggers[payload["trigger"]] += 1
                    for order_id in payload["order_ids"]:
                        run.waves_of[order_id] += 1
                        run.waved_at.setdefault(order_id, now)
                else:
                    run.allocated_seen.append(now)
                    for order_id in payload["order_ids"]:
                        run.shipments_of[order_id].add(payload["shipment_id"])


def read_metrics(text: str) -> tuple[float, float, float]:
    """From a worker's /metrics: messages its consumer applied, its lag gauges summed, and
    the gaps it met (rewinds)."""
    applied = gauge = gaps = 0.0
    for line in text.splitlines():
        if line.startswith("shopfloor_events_consumed_total{") and 'outcome="applied"' in line:
            applied += float(line.rsplit(" ", 1)[1])
        elif line.startswith("shopfloor_consumer_lag_messages{"):
            gauge += float(line.rsplit(" ", 1)[1])
        elif line.startswith("shopfloor_consumer_gaps_total{"):
            gaps += float(line.rsplit(" ", 1)[1])
    return applied, gauge, gaps


async def sample_metrics(run: Run) -> None:
    """Every 0.5 s: each live worker's applied counter; the group's progress is their sum
    (a stopped worker keeps its last value)."""

    async def one(worker: Worker) -> None:
        if worker.client is None or not worker.alive:
            return
        try:
            response = await worker.client.get("/metrics")
        except (httpx.HTTPError, RuntimeError):  # stopping, or its client closed meanwhile
            return
        applied, gauge, gaps = read_metrics(response.text)
        worker.applied, worker.lag_gauge = max(worker.applied, applied), gauge
        worker.gaps = max(worker.gaps, gaps)
        if applied > 0 and math.isnan(worker.first_applied):
            worker.first_applied = time.perf_counter()

    while True:
        await asyncio.gather(*(one(w) for w in run.workers))
        now = time.perf_counter()
        run.progress.append((now, sum(w.applied for w in run.workers)))
        run.gauge.append((now, sum(w.lag_gauge for w in run.workers if w.alive)))
        await asyncio.sleep(METRICS_EVERY_S)


def cpu_sample(run: Run, broker_pid: int | None) -> dict[str, float]:
    found = {"bench": time.process_time(), "postgres": postgres_cpu_s()}
    found["machine"] = machine_busy_s()
    if broker_pid is not None:
        found["broker"] = process_cpu_s(broker_pid) or math.nan
    for worker in run.workers:
        used = process_cpu_s(worker.service.process.pid)
        if used is not None:
            found[worker.name] = used
    return found


async def sample_lag(
    run: Run, offsets: AIOKafkaConsumer, admin: AIOKafkaAdminClient, broker_pid: int | None
) -> None:
    """Every 0.5 s: the group's lag (the player's acknowledged records per partition,
    which are the end offsets on this fresh broker, minus the group's committed offsets),
    the group's state, and CPU seconds per process."""
    partitions = [TopicPartition(t.name, p) for t in INPUTS for p in range(t.partitions)]
    while True:
        began = time.perf_counter()
        ends = run.upstream.acked_offsets()
        lag = 0
        for tp in partitions:
            committed = await offsets.committed(tp) or 0
            end = ends.get((tp.topic, tp.partition), 0)
            lag += max(end - committed, 0)
            run.partitions[(tp.topic, tp.partition)].append((time.perf_counter(), end, committed))
        run.lag.append((time.perf_counter(), lag))
        with contextlib.suppress(Exception):
            state, members = await group_state(admin)
            run.group.append((time.perf_counter(), state, members))
        run.cpu.append((time.perf_counter(), cpu_sample(run, broker_pid)))
        await asyncio.sleep(max(LAG_EVERY_S - (time.perf_counter() - began), 0.05))


async def report(run: Run) -> None:
    last_sent = last_waved = 0
    last_t = time.perf_counter()
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        now = time.perf_counter()
        sent, waved = len(run.upstream.orders), len(run.waved_at)
        dt = now - last_t
        lag = run.lag[-1][1] if run.lag else 0
        group = f"{run.group[-1][1]}/{run.group[-1][2]}" if run.group else "?"
        live = sum(1 for w in run.workers if w.alive)
        print(
            f"  [{run.label}] {run.status:<9} {now - run.t0:6.1f}s  confirmed {sent:>6} "
            f"({(sent - last_sent) / dt:5.0f}/s)  in waves {waved:>6} "
            f"({(waved - last_waved) / dt:5.0f}/s)  lag {lag:>6} msgs  workers {live}  "
            f"group {group}",
            flush=True,
        )
        last_sent, last_waved, last_t = sent, waved, now


async def sleep_until(run: Run, when: float) -> None:
    """Until `when` (perf_counter) or the end of the stream, whichever comes first."""
    while time.perf_counter() < when and run.stream_end == math.inf:
        await asyncio.sleep(min(0.2, max(when - time.perf_counter(), 0.0)))


async def mark_phases(run: Run, dsn: str) -> None:
    """At each phase boundary: the phase's name, the workers' /metrics, and the database's
    transactions (pg_stat_database, commits and rollbacks: a rollback is mostly a write
    conflict between workers)."""
    db = DbMeter({"fulfilment": dsn})
    await asyncio.to_thread(db.start)
    for phase in run.phases:
        await sleep_until(run, run.t0 + phase.start_s)
        run.status = phase.name
        await snapshot_metrics(run, f"{phase.name}:start")
        await sleep_until(run, run.t0 + phase.end_s)
        await snapshot_metrics(run, f"{phase.name}:end")
        await asyncio.to_thread(db.stop)
        run.db[phase.name] = db.used
        db = DbMeter({"fulfilment": dsn})
        await asyncio.to_thread(db.start)
    run.status = "settling"


async def snapshot_metrics(run: Run, key: str) -> None:
    live = [w for w in run.workers if w.alive]
    found = await asyncio.gather(*(scrape(w.service) for w in live))
    run.scraped[key] = {w.name: f for w, f in zip(live, found, strict=True)}


async def change_workers(
    run: Run, broker: EmbeddedBroker, tmp: Path, dsn: str, args: argparse.Namespace
) -> None:
    """The last phase (normal rate, open-ended): once the peak's backlog has drained, stop
    the newest worker without the relay (SIGTERM), later start a new one, then end the
    stream. A stall measured inside a backlog would mostly measure the backlog."""
    phase = run.phases[-1]
    await asyncio.sleep(max(run.t0 + phase.start_s + args.leave_at - time.perf_counter(), 0))
    threshold, deadline = run.lag_threshold(), time.perf_counter() + args.leave_wait
    while time.perf_counter() < deadline:
        recent = [v for _, v in run.lag[-3:]]
        if len(recent) == 3 and max(recent) <= threshold:
            run.drained_before_leave = True
            break
        await asyncio.sleep(LAG_EVERY_S)
    else:
        run.drained_before_leave = False
        print(f"  [{run.label}] not drained after {args.leave_wait:g}s more; leaving anyway")
    leaving = next(w for w in reversed(run.workers) if not w.relay and w.alive)
    print(f"  [{run.label}] SIGTERM to {leaving.name} (pid {leaving.service.process.pid})")
    leave: dict[str, Any] = {"kind": "leave", "worker": leaving.name, "at": time.perf_counter()}
    run.changes.append(leave)

    async def stop() -> None:
        await stop_worker(leaving)
        leave["stop_s"], leave["exit_code"] = round(leaving.stop_s, 2), leaving.exit_code
        print(
            f"  [{run.label}] {leaving.name} exited ({leaving.exit_code}) "
            f"{leaving.stop_s:.1f}s after SIGTERM"
        )

    stopping = asyncio.create_task(stop())  # the join does not wait for it
    await asyncio.sleep(max(leave["at"] + args.join_after - time.perf_counter(), 0))
    joining = launch(run, broker, tmp, dsn, args, relay=False)
    print(f"  [{run.label}] started {joining.name} (pid {joining.service.process.pid})")
    join: dict[str, Any] = {"kind": "join", "worker": joining.name, "at": joining.started}
    run.changes.append(join)
    run.stop_at = joining.started + args.stall_window
    await ready(joining, run.label)
    join["ready_s"] = round(joining.ready - joining.started, 2)
    await stopping


# -- one run -----------------------------------------------------------------------------------


async def bench_run(
    label: str, workers: int, rebalance: Rebalance, args: argparse.Namespace
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"shopfloor-bench-peak-{label}-"))
    ok = False
    tasks: list[asyncio.Task[None]] = []
    consumers: list[AIOKafkaConsumer] = []
    with contextlib.ExitStack() as exits:
        broker = EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log")
        try:
            broker.start()
        except BrokerError as error:
            raise BenchError(f"{error}; see {tmp / 'tansu.log'}") from None
        exits.callback(broker.stop)
        dsn = exits.enter_context(postgres_database("sf_bench_fulfilment"))
        settings = BrokerSettings(bootstrap_servers=broker.bootstrap_servers)
        changes = workers > 1 and not args.no_changes
        run = Run(
            label, workers, rebalance, phases(args, changes), Upstream(settings, seed=args.seed)
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            await run.upstream.start()  # the topics, with the contracts' partitions
            await admin.start()
            for n in range(workers):
                launch(run, broker, tmp, dsn, args, relay=n == 0)
            print(
                f"[{label}] {workers} fulfilment worker(s) "
                f"({', '.join(str(w.service.process.pid) for w in run.workers)}), "
                f"{rebalance.describe()}, broker {broker.bootstrap_servers}, logs in {tmp}",
                flush=True,
            )
            began = time.perf_counter()
            await asyncio.gather(*(ready(w, label) for w in run.workers))
            run.group_ready_s = await wait_for_group(admin, workers, label)
            waves = await start_consumer(broker.bootstrap_servers, FULFILMENT)
            consumers.append(waves)
            offsets = AIOKafkaConsumer(
                bootstrap_servers=broker.bootstrap_servers, group_id=GROUP, enable_auto_commit=False
            )
            await offsets.start()
            consumers.append(offsets)
            # assigned, never fetched from: only to read the group's committed offsets
            offsets.assign([TopicPartition(t.name, p) for t in INPUTS for p in range(t.partitions)])
            print(
                f"[{label}] ready after {time.perf_counter() - began:.1f}s (group Stable with "
                f"{workers} after {run.group_ready_s:.1f}s more); stream: "
                + ", ".join(
                    f"{p.name} {p.rate:g}/s "
                    + (f"for {p.seconds:g}s" if p.seconds < math.inf else "until the join is seen")
                    for p in run.phases
                ),
                flush=True,
            )
            run.t0 = time.perf_counter() + 0.5
            broker_pid = broker.process.pid if broker.process is not None else None
            tasks += [
                asyncio.create_task(consume_fulfilment(waves, run)),
                asyncio.create_task(sample_metrics(run)),
                asyncio.create_task(sample_lag(run, offsets, admin, broker_pid)),
                asyncio.create_task(report(run)),
            ]
            marking = asyncio.create_task(mark_phases(run, dsn))
            changing = (
                asyncio.create_task(change_workers(run, broker, tmp, dsn, args))
                if changes
                else None
            )
            await run.upstream.play(run.phases, run.t0, lambda: run.stop_at)
            run.stream_end = time.perf_counter()
            await marking
            if changing is not None:
                await changing
            expected = {o for o, s in run.upstream.orders.items() if s.ok}
            deadline = time.perf_counter() + args.settle_timeout
            while time.perf_counter() < deadline and not expected <= run.waved_at.keys():
                await asyncio.sleep(0.2)
            await asyncio.sleep(args.grace)  # a late second wave for an order would show here
            run.status = "done"
            await snapshot_metrics(run, "end")
            ok = True
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            with contextlib.suppress(Exception):
                await admin.close()
            with contextlib.suppress(Exception):
                await run.upstream.stop()
            for worker in run.workers:
                if worker.alive:
                    await stop_worker(worker)
            if not ok:
                print(f"[{label}] logs kept: {tmp}", flush=True)
    for worker in run.workers:
        if worker.exit_code is not None and not stopped_cleanly(worker.exit_code):
            print(f"[{label}] {worker.name}: exit code {worker.exit_code}", flush=True)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return summarize(run, args)


def phases(args: argparse.Namespace, changes: bool) -> list[Phase]:
    """Normal, peak, normal again; with worker changes, a fourth phase at the normal rate
    that lasts until the join has been watched for `--stall-window` seconds."""
    normal, peak = args.normal_seconds, args.peak_seconds
    found = [
        Phase("normal", 0.0, normal, args.rate),
        Phase("peak", normal, peak, args.rate * args.peak_factor),
        Phase("after", normal + peak, normal, args.rate),
    ]
    if changes:
        found.append(Phase("changes", 2 * normal + peak, math.inf, args.rate))
    return found


# -- the numbers ----------------------------------------------------------------------------


def at_or_before(series: list[tuple[float, Any]], t: float) -> Any:
    """The last sampled value at or before t (the first one if none)."""
    found = series[0][1] if series else 0
    for when, value in series:
        if when > t:
            break
        found = value
    return found


def longest_gap(times: list[float], start: float, end: float) -> float | None:
    """The longest time in [start, end] with no event (a pause under way at `start` counts
    from `start`: what happened before a change is not the change's); None with no events
    at all up to `end`."""
    if not any(t <= end for t in times):
        return None
    points = [start, *sorted(t for t in times if start < t <= end), end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def increases(series: list[tuple[float, float]]) -> list[float]:
    """Sample times at which the value grew."""
    return [t for (_, a), (t, b) in zip(series, series[1:], strict=False) if b > a]


def latency_stats(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)
    found = {f"p{p}": rnd(pct(values, p), 2) for p in (50, 95, 99)}
    return found | {"max": rnd(values[-1] if values else None, 2), "count": len(values)}


def cpu_between(run: Run, start: float, end: float) -> dict[str, float]:
    """Average cores busy per part between two times, from the per-second samples (a
    worker that stopped counts until its last sample)."""
    inside = [(t, s) for t, s in run.cpu if start <= t <= end]
    if len(inside) < 2:
        return {}
    (t_a, a), (t_b, b) = inside[0], inside[-1]
    wall = t_b - t_a
    found: dict[str, float] = {}
    for name in b:
        if name in a:
            found[name] = round((b[name] - a[name]) / wall, 2)
        elif name.startswith("fulfilment-"):  # started inside the interval
            began = next(s[name] for _, s in inside if name in s)
            found[name] = round((b[name] - began) / wall, 2)
    for name in a:  # stopped inside the interval: up to its last sample
        if name not in b and name.startswith("fulfilment-"):
            last = [s[name] for _, s in inside if name in s][-1]
            found[name] = round((last - a[name]) / wall, 2)
    workers = sum(v for k, v in found.items() if k.startswith("fulfilment-"))
    found["workers"] = round(workers, 2)
    parts = workers + sum(found.get(k, 0.0) for k in ("broker", "postgres", "bench"))
    found["other"] = round(found.get("machine", math.nan) - parts, 2)
    return found


def batches_between(run: Run, start_key: str, end_key: str) -> dict[str, Any]:
    """Per worker, from /metrics: consumer polls applied, messages per poll, ms per poll.
    The runtime observes a poll's time once per topic in it, so the topic with the most
    observations stands for the polls (a lower bound when a poll lacks that topic)."""
    found: dict[str, Any] = {}
    before, after = run.scraped.get(start_key, {}), run.scraped.get(end_key, {})
    for name in after:
        if name not in before:
            continue
        delta = metrics_delta(before[name], after[name])

        def per_topic(prefix: str, delta: dict[str, float] = delta) -> list[float]:
            return [v for k, v in delta.items() if k.startswith(prefix)]

        polls = max(per_topic("shopfloor_batch_processing_seconds_count"), default=0.0)
        busy = max(per_topic("shopfloor_batch_processing_seconds_sum"), default=0.0)
        messages = sum(per_topic("shopfloor_events_consumed_total"))
        found[name] = {
            "polls": int(polls),
            "messages": int(messages),
            "messages_per_poll": round(messages / polls, 1) if polls else None,
            "ms_per_poll": round(busy * 1000 / polls, 1) if polls else None,
            "applying_s": round(busy, 2),
            "published": int(sum(per_topic("shopfloor_events_published_total"))),
        }
    return found


def partition_stall(run: Run, start: float, end: float) -> tuple[float | None, str | None]:
    """The longest time in [start, end] that one input partition with records waiting went
    without the group's committed offset on it moving, and which partition."""
    worst: float | None = None
    which: str | None = None
    for (topic, partition), samples in run.partitions.items():
        fine = [t for t, e, c in samples[:1] if e <= c]  # moving, or nothing waiting
        for (_, _, c0), (t1, e1, c1) in zip(samples, samples[1:], strict=False):
            if c1 > c0 or e1 <= c1:
                fine.append(t1)
        gap = longest_gap(fine, start, end)
        if gap is not None and (worst is None or gap > worst):
            worst, which = gap, f"{topic}#{partition}"
    return worst, which


def summarize(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    t0, orders = run.t0, run.upstream.orders
    expected = {o for o, s in orders.items() if s.ok}
    by_phase: dict[str, dict[str, Any]] = {}
    for phase in run.phases:
        start, end = t0 + phase.start_s, run.end_of(phase)
        seconds = end - start
        mine = [(o, s) for o, s in orders.items() if s.phase == phase.name]
        late = sorted(s.sent - s.due for _, s in mine)
        latencies = [run.waved_at[o] - s.sent for o, s in mine if o in run.waved_at]
        waved = sum(1 for t in run.waved_at.values() if start <= t < end)
        lags = [v for t, v in run.lag if start <= t < end]
        by_phase[phase.name] = {
            "offered_per_s": phase.rate,
            "seconds": round(seconds, 1),
            "published": sum(1 for _, s in mine if s.ok),
            "published_per_s": round(sum(1 for _, s in mine if s.ok) / seconds, 1),
            "send_lateness_ms": {
                "p99": rnd(pct(late, 99) * 1000 if late else None),
                "max": rnd(late[-1] * 1000 if late else None),
            },
            "in_waves_per_s": round(waved / seconds, 1),
            "confirmed_to_wave_s": latency_stats(latencies),
            "lag_max": max(lags, default=None),
            "lag_median": statistics.median(lags) if lags else None,
            "cpu_cores": cpu_between(run, start, end),
            "db": run.db.get(phase.name, {}).get("fulfilment"),
            "consumer_batches": batches_between(run, f"{phase.name}:start", f"{phase.name}:end"),
        }
    first, peak = run.phases[:2]
    peak_end = t0 + peak.end_s
    # (c) the normal level of lag, and the drain
    normal_lags = sorted(
        v for t, v in run.lag if t0 + min(10.0, first.seconds / 2) <= t < t0 + first.end_s
    )
    baseline = pct(normal_lags, 95) or 0
    threshold = run.lag_threshold()
    drained_at = next((t for t, v in run.lag if t >= peak_end and v <= threshold), None)
    drain_s = None if drained_at is None else drained_at - peak_end
    # (a) 5 s buckets
    end = max([run.lag[-1][0] if run.lag else t0, *run.waved_at.values(), run.stream_end])
    buckets = []
    for n in range(math.ceil((end - t0) / BUCKET_S)):
        a, b = t0 + n * BUCKET_S, t0 + (n + 1) * BUCKET_S
        applied = at_or_before(run.progress, b) - at_or_before(run.progress, a)
        buckets.append(
            {
                "t": n * BUCKET_S,
                "confirmed_per_s": round(
                    sum(1 for s in orders.values() if a <= s.sent < b) / BUCKET_S, 1
                ),
                "in_waves_per_s": round(
                    sum(1 for t in run.waved_at.values() if a <= t < b) / BUCKET_S, 1
                ),
                "consumed_orders_per_s": round(applied / MESSAGES_PER_ORDER / BUCKET_S, 1),
                "lag_at_end": at_or_before(run.lag, b),
                "backlogged": min(at_or_before(run.lag, a), at_or_before(run.lag, b))
                >= BACKLOGGED_S * peak.rate * MESSAGES_PER_ORDER,
            }
        )
    backlogged = [b for b in buckets if b["backlogged"]]
    # (e) joins and leaves: the longest pause in the group's progress after each
    progress_times = increases(run.progress)
    quiet = longest_gap(progress_times, t0 + min(10.0, first.seconds / 2), t0 + first.end_s)
    quiet_alloc = longest_gap(
        run.allocated_seen, t0 + min(10.0, first.seconds / 2), t0 + first.end_s
    )
    quiet_partition, _ = partition_stall(run, t0 + min(10.0, first.seconds / 2), t0 + first.end_s)
    changes = []
    for index, change in enumerate(run.changes):
        at = change["at"]
        # a leave until the join; a join until the end of the stream
        later = run.changes[index + 1]["at"] if index + 1 < len(run.changes) else math.inf
        window_end = min(later, run.stream_end)
        states = [(t, s, m) for t, s, m in run.group if at <= t <= window_end]
        worst, where = partition_stall(run, at, window_end)
        changes.append(
            {
                **{k: v for k, v in change.items() if k != "at"},
                "at_s": round(at - t0, 2),
                "window_s": round(window_end - at, 1),
                "stall_s": rnd(longest_gap(progress_times, at, window_end), 2),
                "partition_stall_s": rnd(worst, 2),
                "partition": where,
                "allocation_gap_s": rnd(longest_gap(run.allocated_seen, at, window_end), 2),
                "group_not_stable_samples": sum(1 for _, s, _ in states if s != "Stable"),
            }
        )
    for worker in run.workers:
        for change in changes:
            if change["kind"] == "join" and change["worker"] == worker.name:
                change["first_applied_s"] = rnd(worker.first_applied - worker.started, 2)
    # group: every time it left Stable during the stream
    unstable = [
        round(t - t0, 1)
        for (_, s0, _), (t, s1, _) in zip(run.group, run.group[1:], strict=False)
        if s0 == "Stable" and s1 != "Stable"
    ]
    # correctness
    missing = sorted(expected - run.waved_at.keys())
    doubled = {o: n for o, n in run.waves_of.items() if n > 1}
    shipments = Counter(len(run.shipments_of.get(o, ())) for o in expected)
    player_cpu = run.upstream.build_cpu_s
    stream_s = run.stream_end - t0
    return derive(
        {
            "label": run.label,
            "workers": run.workers_wanted,
            "rebalance": {
                "label": run.rebalance.label,
                "session_timeout_ms": run.rebalance.session_ms,
                "heartbeat_interval_ms": run.rebalance.heartbeat_ms,
            },
            "group_ready_s": rnd(run.group_ready_s, 2),
            "orders_published": len(expected),
            "player": {
                "failed_sends": run.upstream.failed,
                "unacked_orders": len(orders) - len(expected),
                "build_cpu_cores": round(player_cpu / stream_s, 3) if stream_s else None,
                "rounds": run.upstream.rounds,
            },
            "phases": by_phase,
            "lag_definition": "sum over the 18 partitions of orders.v1, orders.private.v1 and "
            "inventory.v1 of (records the player had acknowledged) - (the group's committed "
            "offset), sampled every 0.5 s",
            "lag_normal_p95": baseline,
            "drain_threshold": threshold,
            "drain_s": rnd(drain_s, 1),
            "drained": drain_s is not None,
            "drained_before_leave": run.drained_before_leave,
            "backlogged_buckets": len(backlogged),
            "lag_at_end": run.lag[-1][1] if run.lag else None,
            "quiet_progress_gap_s": rnd(quiet, 2),
            "quiet_allocation_gap_s": rnd(quiet_alloc, 2),
            "quiet_partition_stall_s": rnd(quiet_partition, 2),
            "gaps_met": sum(w.gaps for w in run.workers),
            "changes": changes,
            "group_left_stable_at_s": unstable,
            "waves": {
                "released": len(run.wave_sizes),
                "orders_per_wave_median": statistics.median(run.wave_sizes)
                if run.wave_sizes
                else None,
                "triggers": dict(run.wave_triggers),
            },
            "republished_copies": run.copies,
            "missing": len(missing),
            "missing_examples": missing[:5],
            "doubled": len(doubled),
            "duplicate_waves": sum(n - 1 for n in doubled.values()),
            "doubled_examples": list(doubled)[:5],
            "shipments_per_order": {str(k): v for k, v in sorted(shipments.items())},
            "lost_or_doubled": bool(missing or doubled),
            "workers_exit": {w.name: w.exit_code for w in run.workers},
            "buckets": buckets,
            "series": {
                "lag": [(round(t - t0, 2), v) for t, v in run.lag],
                "gauge_sum": [(round(t - t0, 2), v) for t, v in run.gauge[::2]],
                "progress": [(round(t - t0, 2), v) for t, v in run.progress],
                "group": [(round(t - t0, 2), s, m) for t, s, m in run.group],
            },
            "phase_bounds_s": [
                (p.name, p.start_s, round(run.end_of(p) - t0, 2)) for p in run.phases
            ],
            "change_times_s": [(c["kind"], round(c["at"] - t0, 2)) for c in run.changes],
        }
    )


def derive(result: dict[str, Any]) -> dict[str, Any]:
    """The capacity figures, from the 5 s buckets: what the group consumed (and put in
    waves) while it was backlogged, in the peak and after it. Also used by `--render`."""
    bounds = {name: (start, end) for name, start, end in result["phase_bounds_s"]}
    peak_start, peak_end = bounds["peak"]

    def median(key: str, keep: Any) -> float | None:
        found = [b[key] for b in result["buckets"] if b["backlogged"] and keep(b["t"])]
        return rnd(statistics.median(found)) if found else None

    in_peak = lambda t: peak_start <= t and t + BUCKET_S <= peak_end  # noqa: E731
    after = lambda t: t >= peak_end  # noqa: E731
    result["capacity_consumed_orders_per_s"] = median("consumed_orders_per_s", lambda t: True)
    result["capacity_in_peak"] = median("consumed_orders_per_s", in_peak)
    result["capacity_after_peak"] = median("consumed_orders_per_s", after)
    result["capacity_in_waves_per_s"] = median("in_waves_per_s", lambda t: True)
    return result


# -- output ----------------------------------------------------------------------------------


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| run | player orders/s (normal / peak / after) | in waves/s in the peak | "
        "consumed orders/s while backlogged, in / after the peak (median) | lag max msgs | "
        "drain s | "
        "leave stall s (group / partition) | join stall s (group / partition) | lost | doubled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ph = r["phases"]
        names = list(PHASES)
        stalls = {c["kind"]: c for c in r["changes"]}

        def stall(kind: str, stalls: dict[str, Any] = stalls) -> str:
            c = stalls.get(kind)
            if c is None:
                return "-"
            return f"{num(c['stall_s'])} / {num(c['partition_stall_s'])}"

        drain = num(r["drain_s"]) if r["drained"] else "not drained"
        if r["capacity_in_peak"] is None and r["capacity_after_peak"] is None:
            capacity = "kept up"
        else:
            capacity = f"{num(r['capacity_in_peak'])} / {num(r['capacity_after_peak'])}"
        rows.append(
            f"| {r['label']} | "
            + " / ".join(num(ph[n]["published_per_s"]) for n in names)
            + f" | {num(ph[names[1]]['in_waves_per_s'])} | {capacity}"
            + f" | {max((p['lag_max'] or 0) for p in ph.values())} | {drain} | "
            f"{stall('leave')} | {stall('join')} | {r['missing']} | {r['doubled']} |"
        )
    return "\n".join(rows)


def latency_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| run | " + " | ".join(f"{n} p50 / p95 / p99 s" for n in PHASES) + " |",
        "|---|" + "---:|" * len(PHASES),
    ]
    for r in results:
        cells = []
        for name in PHASES:
            lat = r["phases"][name]["confirmed_to_wave_s"]
            cells.append(f"{num(lat['p50'])} / {num(lat['p95'])} / {num(lat['p99'])}")
        rows.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


CPU_PARTS = ("workers", "broker", "postgres", "bench", "other", "machine")


def cpu_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| run | phase | per worker | " + " | ".join(CPU_PARTS) + " | DB commits / rollbacks |",
        "|---|---|---|" + "---:|" * (len(CPU_PARTS) + 1),
    ]
    for r in results:
        for name, phase in r["phases"].items():
            cores = phase["cpu_cores"]
            each = " + ".join(
                f"{v:.2f}" for k, v in sorted(cores.items()) if k.startswith("fulfilment-")
            )
            db = phase["db"] or {}
            rows.append(
                f"| {r['label']} | {name} | {each or '-'} | "
                + " | ".join(num(cores.get(p), 2) for p in CPU_PARTS)
                + f" | {db.get('commits', '-')} / {db.get('rollbacks', '-')} |"
            )
    return "\n".join(rows)


def change_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        base = (
            f"[{r['label']}] quiet normal phase: longest pause in the group's progress "
            f"{num(r['quiet_progress_gap_s'], 2)} s, on one partition with records waiting "
            f"{num(r['quiet_partition_stall_s'], 2)} s, between ShipmentAllocated arrivals "
            f"{num(r['quiet_allocation_gap_s'], 2)} s"
        )
        lines.append(base)
        for c in r["changes"]:
            extra = ""
            if c["kind"] == "leave":
                extra = f", the worker took {c.get('stop_s')} s to exit ({c.get('exit_code')})"
            else:
                extra = (
                    f", ready {c.get('ready_s')} s and first message applied "
                    f"{c.get('first_applied_s')} s after its start"
                )
            lines.append(
                f"[{r['label']}] {c['kind']} ({c['worker']}) at {c['at_s']} s, over the next "
                f"{c['window_s']} s: longest pause in the group's progress "
                f"{num(c['stall_s'], 2)} s, on one partition with records waiting "
                f"{num(c['partition_stall_s'], 2)} s ({c['partition']}), between "
                f"ShipmentAllocated arrivals {num(c['allocation_gap_s'], 2)} s{extra}"
            )
        if r.get("drained_before_leave") is False:
            lines.append(
                f"[{r['label']}] the backlog had NOT drained before the leave: its partition "
                "stalls are mostly the backlog's (partitions waiting for the slow workers), "
                "the group's pause is the rebalance"
            )
        if r["group_left_stable_at_s"]:
            lines.append(
                f"[{r['label']}] the group left Stable at "
                + ", ".join(f"{t:g}" for t in r["group_left_stable_at_s"])
                + " s"
            )
    return lines


def verdicts(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = []
    for r in results:
        drained = r["drained"] and r["drain_s"] <= args.drain_target
        lines.append(
            f"[{r['label']}] backlog drained within {args.drain_target:g} s of the peak's end: "
            + (f"{num(r['drain_s'])} s" if r["drained"] else "never")
            + f" -> {'met' if drained else 'MISSED'}"
        )
        lines.append(
            f"[{r['label']}] nothing lost or doubled: {r['missing']} lost, {r['doubled']} "
            f"doubled -> {'met' if not r['lost_or_doubled'] else 'MISSED'}"
        )
        for c in r["changes"]:
            worst = c["partition_stall_s"]
            ok = worst is not None and worst <= args.stall_target
            lines.append(
                f"[{r['label']}] a {c['kind']} stalls consumption at most {args.stall_target:g} "
                f"s (the longest pause of any partition with records waiting): "
                f"{num(worst, 2)} s -> {'met' if ok else 'MISSED'}"
            )
    for r in results:
        noisy = {
            name: phase["cpu_cores"].get("other", 0.0)
            for name, phase in r["phases"].items()
            if phase["cpu_cores"].get("other", 0.0) > NOISY_CORES
        }
        if noisy:
            lines.append(
                f"[{r['label']}] NOISY: other processes used "
                + ", ".join(f"{v:.2f} cores in {k}" for k, v in noisy.items())
            )
    one = next((r for r in results if r["workers"] == 1), None)
    for r in results:
        if one is None or r is one:
            continue
        a, b = one["phases"]["peak"]["in_waves_per_s"], r["phases"]["peak"]["in_waves_per_s"]
        line = (
            f"throughput {r['label']} / {one['label']}, orders in waves per second of the "
            f"peak: {b:.1f} / {a:.1f} = {b / a:.2f}"
            if a
            else "throughput: no waves"
        )
        ca, cb = one["capacity_in_peak"], r["capacity_in_peak"]
        if ca and cb:
            line += f"; consumed while backlogged in the peak {cb:.1f} / {ca:.1f} = {cb / ca:.2f}"
        elif cb:
            line += (
                f"; {r['label']} consumed {cb:.1f}/s while backlogged in the peak, "
                f"{one['label']} kept up (so its capacity is above {a:.1f}/s)"
            )
        lines.append(line)
    return lines


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.2 * len(results)), sharex=True)
    axes = [axes] if len(results) == 1 else list(axes)
    for ax, r in zip(axes, results, strict=True):
        for name, start, end in r["phase_bounds_s"]:
            shade = {"peak": "#f4a261", "changes": "#dbe7f5"}.get(name, "#e9f5db")
            ax.axvspan(start, end, color=shade, alpha=0.35)
        lag = r["series"]["lag"]
        ax.plot([t for t, _ in lag], [v for _, v in lag], color="#c1121f", lw=1.4, label="lag")
        gauge = r["series"]["gauge_sum"]
        ax.plot(
            [t for t, _ in gauge],
            [v for _, v in gauge],
            color="#c1121f",
            lw=0.8,
            ls=":",
            label="lag gauges summed (/metrics)",
        )
        ax.set_ylabel("lag (messages)", color="#c1121f")
        ax.set_ylim(bottom=0)
        right = ax.twinx()
        buckets = r["buckets"]
        xs = [b["t"] for b in buckets]
        right.step(
            xs,
            [b["confirmed_per_s"] for b in buckets],
            where="post",
            color="#555",
            ls="--",
            lw=1,
            label="confirmed/s (player)",
        )
        right.step(
            xs,
            [b["in_waves_per_s"] for b in buckets],
            where="post",
            color="#1d3557",
            lw=1.2,
            label="orders in waves/s",
        )
        right.set_ylabel("orders/s (5 s buckets)", color="#1d3557")
        right.set_ylim(bottom=0)
        for kind, t in r["change_times_s"]:
            ax.axvline(t, color="#6a4c93", ls=":", lw=1.2)
            ax.text(
                t, 0.03, f" {kind}", color="#6a4c93", fontsize=8, transform=ax.get_xaxis_transform()
            )
        drain = f"drained {r['drain_s']:g} s after the peak" if r["drained"] else "not drained"
        ax.set_title(f"{r['label']}: {drain}; lost {r['missing']}, doubled {r['doubled']}")
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(
            lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7, framealpha=0.8
        )
    axes[-1].set_xlabel("seconds since the stream started")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the command ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peak",
        description="A 15x peak of confirmed orders through fulfilment workers on "
        "PostgreSQL: orders/s to a released wave, consumer lag and its drain, the stall of a "
        "worker leaving and joining, and every order in exactly one wave.",
    )
    add = parser.add_argument
    add("--rate", type=float, default=8.0, help="normal confirmed orders/s (8)")
    add("--peak-factor", type=float, default=15.0, help="the peak is this times --rate (15)")
    add("--normal-seconds", type=float, default=60.0, help="each normal phase (60)")
    add("--peak-seconds", type=float, default=60.0, help="the peak (60)")
    add("--workers", default="1,3", help="worker counts, one run each (1,3)")
    add(
        "--rebalance",
        default="default,3000/500",
        help="session/heartbeat ms for runs with more than one worker, one run each; "
        "'default' is the service's own (10000/2000); the 1-worker run uses the first "
        "(default,3000/500)",
    )
    add("--wave-size", type=int, default=50, help="orders per wave (50)")
    add("--wave-window", type=float, default=20.0, help="seconds a wave stays open (20)")
    add(
        "--leave-at",
        type=float,
        default=5.0,
        help="runs with more than one worker: SIGTERM to one this many s into the phase after "
        "the second normal one, once the lag is back to normal (5)",
    )
    add("--leave-wait", type=float, default=120.0, help="wait at most this for that (120)")
    add("--join-after", type=float, default=20.0, help="a new worker this long after (20)")
    add("--stall-window", type=float, default=20.0, help="then watch it this long (20)")
    add("--no-changes", action="store_true", help="no leave or join")
    add("--settle-timeout", type=float, default=180.0, help="wait for the last waves (180)")
    add("--grace", type=float, default=3.0, help="then wait this long for late copies (3)")
    add("--drain-target", type=float, default=120.0, help="the bar for the drain, s (120)")
    add("--stall-target", type=float, default=5.0, help="the bar for a stall, s (5)")
    add(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one more variable for every worker, e.g. FULFILMENT_CONSUMER__BATCH_SIZE=50 "
        "(repeatable)",
    )
    add("--seed", type=int, default=8, help="of the order mix (8)")
    add("--plot", type=Path, default=None, help=f"the PNG (default {DEFAULT_PLOT})")
    add("--no-plot", action="store_true", help="write no PNG")
    add(
        "--quick",
        action="store_true",
        help="~1.5 min smoke run: one run of 2 workers, 3000/500, phases of 15 s, a 5 s "
        "wave window, a leave and a join 8 s apart; its PNG goes to bench/results/",
    )
    add("--keep", action="store_true", help="keep the temporary directories (worker logs)")
    add(
        "--render",
        type=Path,
        metavar="FILE",
        help="run nothing: print the tables and verdicts and draw the plot from a results file",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.normal_seconds = args.peak_seconds = 15.0
        args.workers, args.rebalance = "2", "3000/500"
        args.wave_window, args.leave_at, args.leave_wait = 5.0, 1.0, 20.0
        args.join_after, args.stall_window, args.settle_timeout = 8.0, 8.0, 60.0
    pairs = [item.partition("=") for item in args.worker_env]
    if any(not name.startswith("FULFILMENT_") or not sep for name, sep, _ in pairs):
        parser.error("--worker-env: NAME=VALUE with a FULFILMENT_ name")
    args.worker_env = [(name, value) for name, _, value in pairs]
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
        args.rebalance = [Rebalance.parse(s.strip()) for s in args.rebalance.split(",") if s]
    except ValueError as error:
        parser.error(f"--workers / --rebalance: {error}")
    if not args.workers or min(args.workers) < 1 or not args.rebalance:
        parser.error("--workers: counts >= 1; --rebalance: at least one setting")
    if args.rate <= 0 or args.peak_factor <= 0 or min(args.normal_seconds, args.peak_seconds) <= 0:
        parser.error("--rate, --peak-factor and the phase lengths must be > 0")
    if min(args.leave_at, args.leave_wait, args.join_after, args.stall_window) < 0:
        parser.error("--leave-at, --leave-wait, --join-after, --stall-window: >= 0")
    if args.plot is None:
        args.plot = (
            Path(__file__).resolve().parent / "results" / "peak-lag-quick.png"
            if args.quick
            else DEFAULT_PLOT
        )
    return args


def runs(args: argparse.Namespace) -> list[tuple[str, int, Rebalance]]:
    found = []
    for workers in args.workers:
        settings = args.rebalance if workers > 1 else args.rebalance[:1]
        for setting in settings:
            tag = "" if workers == 1 else f"-{setting.label.replace('/', '-')}"
            found.append((f"w{workers}{tag}", workers, setting))
    return found


def show(results: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, list, list]:
    """Print the tables, the stall lines and the verdicts; returns them."""
    text = "\n\n".join(
        [
            main_table(results),
            "Confirmed -> in a released wave, by the phase the order was confirmed in:\n\n"
            + latency_table(results),
            "CPU, average cores busy per phase (workers: all fulfilment processes):\n\n"
            + cpu_table(results),
        ]
    )
    print()
    print(text)
    print()
    notes = change_lines(results)
    for line in notes:
        print(line)
    print()
    judged = verdicts(results, args)
    for line in judged:
        print(line)
    return text, notes, judged


def render(args: argparse.Namespace) -> int:
    """`--render FILE`: the tables, verdicts and plot again from a results file."""
    payload = json.loads(Path(args.render).read_text())
    results = [derive(r) for r in payload["results"]]
    print(f"from {args.render} (commit {payload['source']['at_start']['commit']})")
    show(results, args)
    if not args.no_plot:
        print(f"plot: {plot(results, args.plot)}")
    return 3 if any(r["lost_or_doubled"] for r in results) else 0


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    info["postgres"] = postgres_version()
    print(describe_machine(info))
    source = source_version()
    changed = f", {len(source['changed'])} files changed since" if source["changed"] else ""
    print(f"code: commit {source['commit']}{changed}")
    print(
        f"note: this process (the upstream player and the observers), the fulfilment "
        f"workers, the broker and PostgreSQL all share these {info['cpu_count']} cores",
        flush=True,
    )
    before = machine_busy_s()
    await asyncio.sleep(3.0)
    busy = (machine_busy_s() - before) / 3.0
    info["busy_before_cores"] = round(busy, 2)
    if busy > NOISY_CORES:
        print(
            f"WARNING: the machine was already {busy:.2f} cores busy before the run "
            "(something else is running); the numbers will show it in 'other'",
            flush=True,
        )
    results: list[dict[str, Any]] = []
    for label, workers, rebalance in runs(args):
        try:
            result = await bench_run(label, workers, rebalance, args)
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr, flush=True)
            return 1
        results.append(result)
        print()
        print(main_table([result]))
        print()
    text, notes, judged = show(results, args)
    stamp = utc_stamp()
    settings = {
        k: (v if not isinstance(v, Path) else str(v))
        for k, v in vars(args).items()
        if k != "rebalance"
    }
    settings["rebalance"] = [r.label for r in args.rebalance]
    settings["worker_env"] = dict(args.worker_env)
    payload = {
        "benchmark": "peak",
        "started_at": stamp,
        "settings": settings,
        "machine": info,
        "source": {"at_start": source, "at_end": source_version()},
        "results": results,
        "stalls": notes,
        "verdicts": judged,
        "table_markdown": text,
    }
    out = write_results("peak", stamp, payload)
    print(f"results: {out}")
    if not args.no_plot:
        print(f"plot: {plot(results, args.plot)}")
    if any(r["lost_or_doubled"] for r in results):
        print("WARNING: orders lost or in more than one wave", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args)
    block_missing_sniffio()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
