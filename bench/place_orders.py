"""Orders per second through the order service's API, and with the OrderPlaced event
published on `orders.v1`, for each event store (SQLite, PostgreSQL).

Per store: a fresh embedded broker, a fresh store (a temporary SQLite directory or a
fresh PostgreSQL database), the order service as a separate process (`python -m order`),
a consumer on every partition of `orders.v1`, then POST /orders at a fixed concurrency
for a fixed time after a short warm-up. See bench/README.md for how to read the table.

Run from the workspace root: `python -m bench.place_orders [--seconds 20] [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shopfloor_contracts.topics import ORDERS

# Imported for its side effect too: aiokafka then never creates a topic by looking it up,
# so this consumer cannot create orders.v1 with the wrong partition count before the relay.
from shopfloor_runtime import broker as _brokerlib  # noqa: F401
from shopfloor_runtime.launcher import EmbeddedBroker
from shopfloor_runtime.testing import PG_ADMIN_DSN, free_port, postgres_database

STORES = ("sqlite", "postgres")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
READY_TIMEOUT_S = 60.0
TOPIC_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
PROGRESS_EVERY_S = 2.0


class BenchError(Exception):
    """A failure that ends the run with one readable line."""


@dataclass
class Accepted:
    order_id: str
    sent: float  # perf_counter when the request was started
    done: float  # perf_counter when the 201 response was read
    measured: bool  # started and finished inside the measured window


@dataclass
class Run:
    store: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    accepted: list[Accepted] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seen: dict[str, float] = field(default_factory=dict)  # order id -> perf_counter received
    started: float = 0.0
    measure_from: float = math.inf
    measure_to: float = math.inf
    phase: str = "starting"


# -- the order service as a separate process -----------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(store: str, broker: EmbeddedBroker, tmp: Path, dsn: str | None) -> Service:
    port = free_port()
    # Settings come only from here: no ORDER_* variable of the caller leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_")}
    env.update(
        ORDER_API__PORT=str(port),
        ORDER_BROKER__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        ORDER_BROKER__SESSION_TIMEOUT_MS="6000",
        PYTHONUNBUFFERED="1",
    )
    if dsn is None:
        env["ORDER_STORE__DATA_DIR"] = str(tmp / "data")
    else:
        env["ORDER_STORE__DSN"] = dsn
    log_path = tmp / "order.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "order"],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Service(process, port, log_path)


async def wait_ready(service: Service, store: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        while True:
            code = service.process.poll()
            if code is not None:
                raise BenchError(
                    f"the order service ({store}) exited with code {code} before it was "
                    f"ready; see its log: {service.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the order service ({store}) did not answer GET /ready with 200 within "
                    f"{READY_TIMEOUT_S:.0f}s; see its log: {service.log_path}"
                )
            await asyncio.sleep(0.2)


def stop_service(service: Service) -> tuple[int | None, float]:
    """SIGTERM, wait, SIGKILL if it hangs. Returns (exit code, seconds it took)."""
    began = time.monotonic()
    process = service.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(
                f"  order service did not stop in {STOP_TIMEOUT_S:.0f}s after SIGTERM; killing it",
                flush=True,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, time.monotonic() - began


# -- the consumer that sees OrderPlaced on orders.v1 -----------------------------------------


async def wait_for_topic(bootstrap: str) -> list[int]:
    """The relay creates orders.v1 once it is up; /ready does not wait for that."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        found: list[int] = []
        while True:
            if ORDERS.name in await admin.list_topics():
                [described] = await admin.describe_topics([ORDERS.name])
                found = sorted(p["partition"] for p in described["partitions"])
                if len(found) == ORDERS.partitions:
                    return found
            if time.monotonic() > deadline:
                raise BenchError(
                    f"topic {ORDERS.name} did not appear with {ORDERS.partitions} partitions "
                    f"within {TOPIC_TIMEOUT_S:.0f}s (found {len(found)})"
                )
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def start_consumer(bootstrap: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=25,
        max_partition_fetch_bytes=4 << 20,
    )
    partitions = await wait_for_topic(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(ORDERS.name, p) for p in partitions]
        consumer.assign(tps)
        # A fresh broker: the beginning is "before the first order", and reading from it
        # cannot miss an event published while the consumer was being positioned.
        await consumer.seek_to_beginning(*tps)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def consume(consumer: AIOKafkaConsumer, run: Run) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                envelope = json.loads(record.value or b"{}")
                if envelope.get("event_type") == "OrderPlaced":
                    run.seen.setdefault(envelope["aggregate_id"], now)


# -- the load ---------------------------------------------------------------------------------


def order_body(run: Run, worker: int, n: int) -> dict[str, Any]:
    """Distinct per request: a unique customer, so no duplicate-order folding applies."""
    return {
        "customer_id": f"bench-{run.store}-{run.tag}-{worker}-{n}",
        "channel": "shop",
        "lines": [
            {"sku": f"SKU-{(worker * 7 + n) % 500:04d}", "qty": 1 + n % 3, "unit_price": "19.90"},
            {"sku": "SKU-GIFTWRAP", "qty": 1, "unit_price": "2.50"},
        ],
        "shipping_address": {
            "name": f"Bench Customer {worker}-{n}",
            "line1": "Musterstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
    }


async def drive(client: httpx.AsyncClient, run: Run, concurrency: int) -> None:
    async def worker(w: int) -> None:
        n = 0
        while True:
            sent = time.perf_counter()
            if sent >= run.measure_to:
                return
            n += 1
            try:
                response = await client.post("/orders", json=order_body(run, w, n))
            except httpx.HTTPError as error:
                run.errors[type(error).__name__] += 1
                await asyncio.sleep(0.05)  # do not spin on a dead connection
                continue
            done = time.perf_counter()
            if response.status_code == 201:
                measured = sent >= run.measure_from and done <= run.measure_to
                run.accepted.append(Accepted(response.json()["id"], sent, done, measured))
            else:
                run.errors[f"HTTP {response.status_code}"] += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


async def progress(run: Run) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        published = sum(1 for a in run.accepted if a.order_id in run.seen)
        print(
            f"  [{run.store}] {run.phase:<8} {time.perf_counter() - run.started:5.1f}s  "
            f"orders accepted {len(run.accepted):>6}  published {published:>6}  "
            f"errors {sum(run.errors.values())}",
            flush=True,
        )


# -- one store ----------------------------------------------------------------------------


async def bench_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    run = Run(store)
    tmp = Path(tempfile.mkdtemp(prefix=f"shopfloor-bench-{store}-"))
    ok = False
    with contextlib.ExitStack() as stack:
        broker = EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log")
        broker.start()
        stack.callback(broker.stop)
        dsn = stack.enter_context(postgres_database("sf_bench")) if store == "postgres" else None
        service = start_service(store, broker, tmp, dsn)
        stopped: list[tuple[int | None, float]] = []
        stack.callback(lambda: stopped.append(stop_service(service)))
        print(
            f"[{store}] order service pid {service.process.pid} on {service.url}, "
            f"broker {broker.bootstrap_servers}, log {service.log_path}",
            flush=True,
        )
        began = time.monotonic()
        await wait_ready(service, store)
        try:
            consumer = await start_consumer(broker.bootstrap_servers)
        except BenchError as error:
            raise BenchError(f"{error}; see the service log: {service.log_path}") from None
        print(
            f"[{store}] ready after {time.monotonic() - began:.1f}s; "
            f"{args.warmup:g}s warm-up, then {args.seconds:g}s measured, "
            f"{args.concurrency} requests in flight",
            flush=True,
        )
        consuming = asyncio.create_task(consume(consumer, run))
        reporting = asyncio.create_task(progress(run))
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        try:
            async with httpx.AsyncClient(
                base_url=service.url, limits=limits, timeout=httpx.Timeout(30.0)
            ) as client:
                run.started = time.perf_counter()
                run.measure_from = run.started + args.warmup
                run.measure_to = run.measure_from + args.seconds
                run.phase = "warm-up"
                loop = asyncio.get_running_loop()
                loop.call_at(loop.time() + args.warmup, setattr, run, "phase", "measure")
                # After the window: no new requests; the ones in flight are finishing.
                loop.call_at(
                    loop.time() + args.warmup + args.seconds, setattr, run, "phase", "closing"
                )
                await drive(client, run, args.concurrency)
            load_ended = time.perf_counter()
            run.phase = "drain"
            # Bounded wait for the events of every accepted order (warm-up ones included).
            deadline = load_ended + args.drain_timeout
            while time.perf_counter() < deadline and any(
                a.order_id not in run.seen for a in run.accepted
            ):
                await asyncio.sleep(0.05)
            drained = time.perf_counter() - load_ended
            ok = True
        finally:
            for task in (consuming, reporting):
                task.cancel()
            await asyncio.gather(consuming, reporting, return_exceptions=True)
            await consumer.stop()
            if not ok:
                print(f"[{store}] service log kept: {service.log_path}", flush=True)
        stack.close()  # SIGTERM the service, stop the broker, drop the database
    exit_code, stop_s = stopped[0] if stopped else (None, 0.0)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    result = summarize(run, drained, args)
    result["service_exit_code"], result["service_stop_s"] = exit_code, round(stop_s, 2)
    # uvicorn re-raises the SIGTERM it handled, so a clean stop exits with -SIGTERM.
    clean = exit_code in (0, -signal.SIGTERM)
    note = "" if clean else f" (exit code {exit_code}; log {service.log_path})"
    print(f"[{store}] done: service stopped in {stop_s:.1f}s{note}", flush=True)
    return result


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def summarize(run: Run, drained: float, args: argparse.Namespace) -> dict[str, Any]:
    window = run.measure_to - run.measure_from
    measured = [a for a in run.accepted if a.measured]
    latencies = sorted((a.done - a.sent) * 1000 for a in measured)
    arrived = [a for a in measured if a.order_id in run.seen]
    lags = sorted((run.seen[a.order_id] - a.done) * 1000 for a in arrived)
    in_window = [a for a in arrived if run.seen[a.order_id] <= run.measure_to]
    missing = [a.order_id for a in run.accepted if a.order_id not in run.seen]
    return {
        "store": run.store,
        "window_s": round(window, 3),
        "concurrency": args.concurrency,
        "orders_accepted_total": len(run.accepted),
        "orders_accepted_in_window": len(measured),
        "api_orders_per_s": round(len(measured) / window, 1),
        "api_latency_ms": {f"p{p}": _r(pct(latencies, p)) for p in (50, 95, 99)}
        | {"max": _r(latencies[-1] if latencies else None)},
        "orders_published_in_window": len(in_window),
        "published_orders_per_s": round(len(in_window) / window, 1),
        "publish_lag_ms": {f"p{p}": _r(pct(lags, p)) for p in (50, 95, 99)}
        | {"max": _r(lags[-1] if lags else None)},
        "errors": sum(run.errors.values()),
        "errors_by_kind": dict(run.errors),
        "missing_events": len(missing),
        "missing_examples": missing[:5],
        "drain_s": round(drained, 2),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- output ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    return info


def postgres_version() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except psycopg.Error:
        return None


def table(results: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        "| store | API orders/s | p50 ms | p95 ms | p99 ms | published orders/s "
        "| publish lag p50/p95/p99 ms | errors | missing events |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat, lag = r["api_latency_ms"], r["publish_lag_ms"]
        rows.append(
            f"| {r['store']} | {r['api_orders_per_s']:.1f} | {ms(lat['p50'])} | "
            f"{ms(lat['p95'])} | {ms(lat['p99'])} | {r['published_orders_per_s']:.1f} | "
            f"{ms(lag['p50'])} / {ms(lag['p95'])} / {ms(lag['p99'])} | {r['errors']} | "
            f"{r['missing_events']} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.place_orders",
        description="Orders/s through POST /orders, and with OrderPlaced published on "
        "orders.v1, per event store.",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up before it (3)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    parser.add_argument(
        "--stores", default=",".join(STORES), help="comma-separated, from: sqlite,postgres"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="how long to wait for outstanding events after the load (30)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5 s measured after 1 s warm-up"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directories (service and broker logs)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 5.0, 1.0
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = [s for s in args.stores if s not in STORES]
    if unknown or not args.stores:
        parser.error(f"--stores: unknown {unknown or 'nothing'}; choose from {','.join(STORES)}")
    if args.seconds <= 0 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --concurrency >= 1")
    return args


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    if "postgres" in args.stores:
        info["postgres"] = postgres_version()
    print(
        f"machine: {info['cpu_count']} cores ({info.get('cpu_model', 'unknown CPU')}), "
        f"{info.get('memory_gb', '?')} GB, Python {info['python']}"
        + (f", PostgreSQL {info['postgres']}" if info.get("postgres") else "")
    )
    parts = (
        "the order service, the broker and PostgreSQL"
        if "postgres" in args.stores
        else "the order service and the broker"
    )
    print(
        f"note: this load generator, {parts} all share these {info['cpu_count']} cores", flush=True
    )
    results = []
    for store in args.stores:
        try:
            results.append(await bench_store(store, args))
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr, flush=True)
            return 1
    text = table(results)
    print()
    print(text)
    print()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"place_orders-{stamp}.json"
    payload = {
        "benchmark": "place_orders",
        "started_at": stamp,
        "settings": {
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "drain_timeout_s": args.drain_timeout,
            "stores": args.stores,
        },
        "machine": info,
        "results": results,
        "table_markdown": text,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results: {out}")
    missing = sum(r["missing_events"] for r in results)
    if missing:
        print(
            f"WARNING: {missing} accepted orders never had their OrderPlaced event seen on "
            f"{ORDERS.name} within {args.drain_timeout:g}s",
            file=sys.stderr,
        )
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
