"""The analytics worker's capacity on the embedded broker: events per second one worker
and two workers apply from a backlog of recorded traffic (the real event mix, about 11
events per order, `analytics.harness.traffic`); the lag while traffic arrives at a steady
rate (`steady`) and the stalls when a second worker joins and leaves (`rebalance`); and the
speed of `python -m analytics rebuild` over a recorded log of at least 1,000,000 events.

Each scenario starts from nothing: a fresh embedded broker, the recorded traffic published
onto the five topics analytics reads (generated once per run, in event-time order), then
the worker(s) as separate processes (`python -m analytics`, session timeout 6 s), timed
from the first worker's start until the workers' /progress counts every message (applied,
repeats and skipped types; nothing is rejected); or `python -m analytics rebuild`, timed
from its start to its exit. No figure is checked here (the tests do that).

Run from the workspace root: `python -m bench.analytics [--scenarios ...] [--orders N]`.
Issue #11's bars: one worker >= 10,000 events/s, lag under 5 s at 1,000 orders/s, rebuild
>= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from analytics.app import PARTITIONS
from analytics.harness import Message, traffic
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.settings import BrokerSettings
from shopfloor_runtime.testing import free_port

from bench.harness import (
    BenchError,
    CpuMeter,
    describe_machine,
    machine,
    source_version,
    utc_stamp,
    write_results,
)

#: the worker's consumer group (its faust app id, generation 0)
GROUP = "analytics"
SCENARIOS = ("one-worker", "two-workers", "steady", "rebalance", "rebuild")
BAR_WORKER = 10_000
BAR_REBUILD = 20_000


async def publish(bootstrap: str, messages: list[Message]) -> float:
    settings = BrokerSettings(bootstrap_servers=bootstrap)
    await brokerlib.ensure_topics(settings, sorted({t for t, _, _ in messages}))
    producer = brokerlib.producer(settings)
    await producer.start()
    began = time.perf_counter()
    try:
        for at in range(0, len(messages), 5000):
            sent = [await producer.send(t, v, key=k) for t, k, v in messages[at : at + 5000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - began


def worker(bootstrap: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "ANALYTICS_BROKER__BOOTSTRAP_SERVERS": bootstrap,
        "ANALYTICS_API__PORT": str(port),
        "ANALYTICS_BROKER__SESSION_TIMEOUT_MS": "6000",
        "ANALYTICS_BROKER__HEARTBEAT_INTERVAL_MS": "1000",
        "ANALYTICS_DATADIR": str(tmp / f"data-{name}"),
    }
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "analytics"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, port


async def counted(client: httpx.AsyncClient, port: int) -> int:
    try:
        p = (await client.get(f"http://127.0.0.1:{port}/progress", timeout=10)).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return int(p["applied"] + p["duplicates"] + p["skipped"] + p["dead_letters"])


async def workers_scenario(n: int, messages: list[Message], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp_dir:
        tmp = Path(tmp_dir)
        with EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log") as broker:
            published_s = await publish(broker.bootstrap_servers, messages)
            started = time.perf_counter()
            running = [worker(broker.bootstrap_servers, tmp, f"worker-{i}") for i in range(n)]
            meter = CpuMeter({f"worker-{i}": p.pid for i, (p, _) in enumerate(running)})
            meter.start()
            first_at = None
            try:
                async with httpx.AsyncClient() as client:
                    while True:
                        done = sum([await counted(client, port) for _, port in running])
                        if done and first_at is None:
                            first_at = time.perf_counter()
                        if done >= len(messages):
                            break
                        if time.perf_counter() - started > timeout:
                            raise BenchError(
                                f"{n} worker(s): {done} of {len(messages)} events after "
                                f"{timeout:.0f}s; logs in {tmp}"
                            )
                        await asyncio.sleep(0.25)
                        print(f"  [{n} worker(s)] {done:>9,} events", end="\r", flush=True)
                finished = time.perf_counter()
                meter.stop()
            finally:
                for process, _ in running:
                    process.terminate()
                for process, _ in running:
                    process.wait(30)
    total = finished - started
    applying = finished - (first_at or started)
    return {
        "scenario": "one-worker" if n == 1 else f"{n}-workers",
        "events": len(messages),
        "published_s": round(published_s, 2),
        "start_to_done_s": round(total, 2),
        "events_per_s_from_start": round(len(messages) / total),
        "events_per_s_applying": round(len(messages) / applying),
        "cpu_cores": meter.cores(),
    }


class Paced:
    """Publishes recorded traffic at a steady rate of orders per second (the traffic's own
    mix of events per order), in ticks of 100 ms, and remembers when each count of
    events had been published, so a worker's count can be turned into a lag in seconds:
    how long ago the newest event it has applied was published."""

    def __init__(self, bootstrap: str, messages: list[Message], events_per_s: float) -> None:
        self.bootstrap, self.messages, self.events_per_s = bootstrap, messages, events_per_s
        self.sent = 0
        self.timeline: list[tuple[int, float]] = [(0, time.perf_counter())]
        self.done = asyncio.Event()

    async def run(self) -> None:
        settings = BrokerSettings(bootstrap_servers=self.bootstrap)
        producer = brokerlib.producer(settings)
        await producer.start()
        began = time.perf_counter()
        try:
            while self.sent < len(self.messages):
                due = min(
                    len(self.messages), int((time.perf_counter() - began) * self.events_per_s)
                )
                if due > self.sent:
                    batch = self.messages[self.sent : due]
                    sent = [await producer.send(t, v, key=k) for t, k, v in batch]
                    await asyncio.gather(*sent)
                    self.sent = due
                    self.timeline.append((due, time.perf_counter()))
                await asyncio.sleep(0.1)
        finally:
            await producer.stop()
            self.done.set()

    def lag_s(self, counted: int, now: float) -> float:
        """Seconds since the `counted`-th event was published (0 when all are counted)."""
        if counted >= self.sent:
            return 0.0
        for published, at in self.timeline:
            if published > counted:
                return now - at
        return 0.0


async def paced_scenario(
    name: str,
    messages: list[Message],
    orders_per_s: float,
    events_per_order: float,
    timeout: float,
    joins: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One worker ready on empty topics, then the traffic published at `orders_per_s`;
    the lag sampled every 0.25 s until the worker has applied everything. `joins`: a
    second worker joins that many seconds in and leaves (SIGTERM) at the second mark;
    the longest time nothing was applied while events waited is the rebalance stall."""
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp_dir:
        tmp = Path(tmp_dir)
        with EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log") as broker:
            bootstrap = broker.bootstrap_servers
            await brokerlib.ensure_topics(
                BrokerSettings(bootstrap_servers=bootstrap), sorted({t for t, _, _ in messages})
            )
            first, port = worker(bootstrap, tmp, "worker-0")
            running = [(first, port)]
            try:
                async with httpx.AsyncClient() as client:
                    await _ready(client, port, timeout)
                    paced = Paced(bootstrap, messages, orders_per_s * events_per_order)
                    publishing = asyncio.create_task(paced.run())
                    began = time.perf_counter()
                    samples: list[tuple[float, int, float]] = []  # (t, counted, lag s)
                    second: tuple[subprocess.Popen[bytes], int] | None = None
                    seen: dict[int, int] = {}
                    ends = _ends(messages)
                    while True:
                        now = time.perf_counter()
                        t = now - began
                        if joins and second is None and t >= joins[0]:
                            second = worker(bootstrap, tmp, "worker-1")
                            running.append(second)
                        if joins and second is not None and t >= joins[1]:
                            second[0].terminate()
                        for _, p in running:
                            # a worker that left keeps the count it reached: what it
                            # applied stays applied
                            seen[p] = max(seen.get(p, 0), await counted(client, p))
                        done = sum(seen.values())
                        samples.append((t, done, paced.lag_s(done, now)))
                        # with a rebalance some events are applied twice (repeats,
                        # changing nothing): done when the group committed them all
                        caught_up = paced.done.is_set() and done >= len(messages)
                        if caught_up and (not joins or await _all_committed(bootstrap, ends)):
                            break
                        if t > timeout:
                            raise BenchError(
                                f"{name}: {done} of {len(messages)} events after "
                                f"{timeout:.0f}s; logs in {tmp}"
                            )
                        print(
                            f"  [{name}] {t:5.1f}s published {paced.sent:>9,} "
                            f"applied {done:>9,} lag {samples[-1][2]:5.1f}s",
                            end="\r",
                            flush=True,
                        )
                        await asyncio.sleep(0.25)
                    await publishing
            finally:
                for process, _ in running:
                    if process.poll() is None:
                        process.terminate()
                for process, _ in running:
                    process.wait(30)
    publish_s = paced.timeline[-1][1] - paced.timeline[0][1]
    lags = sorted(lag for _, _, lag in samples)
    result: dict[str, Any] = {
        "scenario": name,
        "events": len(messages),
        "offered_orders_per_s": orders_per_s,
        "offered_events_per_s": round(orders_per_s * events_per_order),
        "published_events_per_s": round(len(messages) / publish_s),
        "lag_s_p50": round(lags[len(lags) // 2], 2),
        "lag_s_p99": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 2),
        "lag_s_max": round(lags[-1], 2),
        "lag_s_at_end_of_publishing": round(
            max((lag for t, _, lag in samples if t <= publish_s), default=0.0), 2
        ),
        "drained_s_after_publishing": round(samples[-1][0] - publish_s, 2),
    }
    if joins:
        result["joins_at_s"], result["leaves_at_s"] = joins
        join_at, leave_at = joins
        result["longest_stall_s"] = round(_longest_stall(samples), 2)
        result["stall_s_at_join"] = round(
            _longest_stall([x for x in samples if join_at <= x[0] < leave_at]), 2
        )
        result["stall_s_at_leave"] = round(
            _longest_stall([x for x in samples if x[0] >= leave_at]), 2
        )
    return result


def _longest_stall(samples: list[tuple[float, int, float]]) -> float:
    """The longest run of samples in which the count did not move though events waited."""
    longest, since = 0.0, None
    for (t0, c0, lag0), (t1, c1, _) in zip(samples, samples[1:], strict=False):
        if c1 == c0 and lag0 > 0:
            since = t0 if since is None else since
            longest = max(longest, t1 - since)
        else:
            since = None
    return longest


def _ends(messages: list[Message]) -> dict[tuple[str, int], int]:
    """Records per topic partition: where the group's committed offsets stand at the end."""
    ends: dict[tuple[str, int], int] = {}
    for topic, key, _ in messages:
        tp = (topic, partition_for(key, PARTITIONS))
        ends[tp] = ends.get(tp, 0) + 1
    return ends


async def _all_committed(bootstrap: str, ends: dict[tuple[str, int], int]) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP)
    await consumer.start()
    try:
        for (topic, partition), end in ends.items():
            if (await consumer.committed(TopicPartition(topic, partition)) or 0) < end:
                return False
        return True
    finally:
        await consumer.stop()


async def _ready(client: httpx.AsyncClient, port: int, timeout: float) -> None:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        try:
            answer = await client.get(f"http://127.0.0.1:{port}/ready", timeout=5)
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.25)
    raise BenchError(f"worker on port {port} not ready after {timeout:.0f}s")


async def rebuild_scenario(messages: list[Message], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp_dir:
        tmp = Path(tmp_dir)
        with EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log") as broker:
            published_s = await publish(broker.bootstrap_servers, messages)
            env = {**os.environ, "ANALYTICS_BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
            began = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "analytics", "rebuild"],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            took = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"rebuild failed: {done.stderr.strip().splitlines()[-1:]}")
    print("  " + done.stdout.strip().replace("\n", "\n  "))
    return {
        "scenario": "rebuild",
        "events": len(messages),
        "published_s": round(published_s, 2),
        "process_s": round(took, 2),
        "events_per_s": round(len(messages) / took),
        "said": done.stdout.strip().splitlines(),
    }


async def main(args: argparse.Namespace) -> int:
    info = machine()
    print(describe_machine(info))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    results: list[dict[str, Any]] = []
    wanted = args.scenarios.split(",")
    if any(s in wanted for s in ("one-worker", "two-workers")):
        began = time.perf_counter()
        backlog = traffic(args.orders, start, seed=1)
        print(
            f"recorded traffic: {args.orders:,} orders, {len(backlog):,} events "
            f"({time.perf_counter() - began:.1f}s to make)"
        )
        for scenario, n in (("one-worker", 1), ("two-workers", 2)):
            if scenario in wanted:
                result = await workers_scenario(n, backlog, args.timeout)
                print(f"\n{scenario}: {result}")
                results.append(result)
    paced = [s for s in ("steady", "rebalance") if s in wanted]
    if paced:
        seconds = args.steady_seconds
        if "steady" in wanted:
            for rate in (args.rate, args.rate / 2):
                n = int(rate * seconds)
                part = traffic(n, datetime.now(UTC).replace(microsecond=0), seed=3)
                result = await paced_scenario(
                    f"steady {rate:g} orders/s", part, rate, len(part) / n, args.timeout
                )
                print(f"\n{result['scenario']}: {result}")
                results.append(result)
        if "rebalance" in wanted:
            rate = args.rate / 4
            n = int(rate * seconds)
            part = traffic(n, datetime.now(UTC).replace(microsecond=0), seed=4)
            joins = (seconds / 3, 2 * seconds / 3)
            result = await paced_scenario(
                f"rebalance at {rate:g} orders/s", part, rate, len(part) / n, args.timeout, joins
            )
            print(f"\n{result['scenario']}: {result}")
            results.append(result)
    if "rebuild" in wanted:
        began = time.perf_counter()
        log = traffic(args.rebuild_orders, start, seed=2)
        print(f"recorded log: {len(log):,} events ({time.perf_counter() - began:.1f}s to make)")
        result = await rebuild_scenario(log, args.timeout)
        print(f"rebuild: {result}")
        results.append(result)
    print()
    print("| scenario | events | events/s (from start) | events/s (applying) | cores |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        if "lag_s_p50" in r:
            continue
        per_s = r.get("events_per_s_from_start", r.get("events_per_s"))
        print(
            f"| {r['scenario']} | {r['events']:,} | {per_s:,} | "
            f"{r.get('events_per_s_applying', '-')} | {r.get('cpu_cores', '-')} |"
        )
    for r in results:
        if r["scenario"] == "one-worker":
            verdict = "met" if r["events_per_s_applying"] >= BAR_WORKER else "MISSED"
            print(
                f"bar: one worker >= {BAR_WORKER:,} events/s: "
                f"{r['events_per_s_applying']:,} -> {verdict}"
            )
        if r["scenario"] == "rebuild":
            verdict = "met" if r["events_per_s"] >= BAR_REBUILD else "MISSED"
            print(f"bar: rebuild >= {BAR_REBUILD:,} events/s: {r['events_per_s']:,} -> {verdict}")
    lagging = [r for r in results if "lag_s_p50" in r]
    if lagging:
        print()
        print(
            "| scenario | offered events/s | published events/s | lag p50 / p99 / max s "
            "| drained after publishing s | stall s |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for r in lagging:
            print(
                f"| {r['scenario']} | {r['offered_events_per_s']:,} "
                f"| {r['published_events_per_s']:,} | "
                f"{r['lag_s_p50']} / {r['lag_s_p99']} / {r['lag_s_max']} | "
                f"{r['drained_s_after_publishing']} | {r.get('longest_stall_s', '-')} "
                f"(join {r.get('stall_s_at_join', '-')}, leave {r.get('stall_s_at_leave', '-')}) |"
            )
    out = write_results(
        "analytics", utc_stamp(), {"machine": info, "code": source_version(), "results": results}
    )
    print(f"results: {out}")
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--orders", type=int, default=25_000, help="backlog orders (25000)")
    parser.add_argument(
        "--rebuild-orders", type=int, default=128_000, help="orders in the rebuild log (128000)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="steady: orders/s (1000)")
    parser.add_argument(
        "--steady-seconds", type=float, default=60.0, help="steady, rebalance: seconds (60)"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    try:
        return asyncio.run(main(args))
    except BenchError as error:
        print(f"bench.analytics: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
