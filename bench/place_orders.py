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
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from shopfloor_contracts.topics import ORDERS
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.testing import free_port, postgres_database

from bench.harness import (
    PROGRESS_EVERY_S,
    BenchError,
    Service,
    describe_machine,
    machine,
    pct,
    postgres_version,
    stop_service,
    stopped_cleanly,
    utc_stamp,
    wait_ready,
    write_results,
)
from bench.harness import rnd as _r
from bench.harness import start_consumer as _start_consumer
from bench.harness import start_service as _start_service
from bench.loadgen import Pool, TransportError

STORES = ("sqlite", "postgres")
REQUEST_TIMEOUT_S = 30.0  # one POST /orders: connect, send, read the whole response


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
    reconnects: int = 0  # connections to the order API opened again (closed, or an error)


# -- the order service as a separate process, and the consumer of orders.v1 -----------------


def start_service(store: str, broker: EmbeddedBroker, tmp: Path, dsn: str | None) -> Service:
    return _start_service("order", broker, tmp, dsn)


async def start_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return await _start_consumer(bootstrap, ORDERS)


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


async def drive(pool: Pool, run: Run, concurrency: int) -> None:
    """`concurrency` workers, each sending its next order as soon as its last one is
    answered, over a pool of as many keep-alive connections (`bench.loadgen`)."""

    async def worker(w: int) -> None:
        n = 0
        while True:
            sent = time.perf_counter()
            if sent >= run.measure_to:
                return
            n += 1
            body = json.dumps(order_body(run, w, n), separators=(",", ":")).encode()
            try:
                status, answer = await pool.post("/orders", body)
            except TransportError as error:
                run.errors[error.kind] += 1
                await asyncio.sleep(0.05)  # do not spin on a dead connection
                continue
            done = time.perf_counter()
            if status == 201:
                measured = sent >= run.measure_from and done <= run.measure_to
                run.accepted.append(Accepted(json.loads(answer)["id"], sent, done, measured))
            else:
                run.errors[f"HTTP {status}"] += 1

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
        try:
            async with Pool(service.url, args.concurrency, timeout=REQUEST_TIMEOUT_S) as pool:
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
                await drive(pool, run, args.concurrency)
            run.reconnects = pool.reconnects
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
    note = "" if stopped_cleanly(exit_code) else f" (exit code {exit_code}; log {service.log_path})"
    print(f"[{store}] done: service stopped in {stop_s:.1f}s{note}", flush=True)
    return result


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
        "reconnects": run.reconnects,
        "missing_events": len(missing),
        "missing_examples": missing[:5],
        "drain_s": round(drained, 2),
    }


# -- output ---------------------------------------------------------------------------------


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
    print(describe_machine(info))
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
    stamp = utc_stamp()
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
    out = write_results("place_orders", stamp, payload)
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
