"""The analytics worker's capacity on the embedded broker: events per second one worker
and two workers apply from a backlog of recorded traffic (the real event mix, about 11
events per order, `analytics.harness.traffic`), and the speed of `python -m analytics
rebuild` over a recorded log of at least 1,000,000 events.

Each scenario starts from nothing: a fresh embedded broker, the recorded traffic published
onto the five topics analytics reads (generated once per run, in event-time order), then
the worker(s) as separate processes (`python -m analytics`, session timeout 6 s), timed
from the first worker's start until the workers' /progress counts every message (applied,
repeats and skipped types; nothing is rejected); or `python -m analytics rebuild`, timed
from its start to its exit. No figure is checked here (the tests do that).

Run from the workspace root: `python -m bench.analytics [--scenarios ...] [--orders N]`.
Issue #11's bars: one worker >= 10,000 events/s, rebuild >= 20,000 events/s.
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
from analytics.harness import Message, traffic
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
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

SCENARIOS = ("one-worker", "two-workers", "rebuild")
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
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    try:
        return asyncio.run(main(args))
    except BenchError as error:
        print(f"bench.analytics: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
