"""The service desk: tickets opened per second from a backlog of delivery failures, and
the queue view's latency with 100,000 tickets in the store, on PostgreSQL.

- `backlog`: a fresh embedded broker and database; `--backlog` (10,000) orders placed
  (OrderPlaced on orders.v1) and as many DeliveryFailed on fulfilment.v1, all published
  before the desk starts. Then the desk (`python -m service_desk`, its own process)
  starts and is timed from ready until its queue view counts every ticket: the consumer
  (one ticket per failure, each with its thread, order record and customer) and the read
  model together.
- `queue-view`: `--tickets` (100,000) tickets written through the desk's own domain code
  (tickets from delivery failures, late shipments, refunds and risk holds on 100,000
  orders; 70 % of them resolved), stored in batches by the application, projected by the
  desk's projector; then the desk starts on that store and `GET /tickets?queue=...&
  status=open` (first page, 50 rows) is timed, closed loop, one connection and then
  `--concurrency` (8), for `--requests` (2,000) each, across the queues; also the
  customer view (`?customer=`).

Run from the workspace root: `python -m bench.desk [--quick]`. Bar (issue #10): the
queue view answers in under 50 ms p99 at 100,000 tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from service_desk.application import DeskApplication
from service_desk.bootstrap import DeskService
from service_desk.domain import Thread, Ticket
from service_desk.settings import Settings
from shopfloor_contracts.fulfilment import DeliveryFailed
from shopfloor_contracts.orders import OrderLine, OrderPlaced
from shopfloor_contracts.topics import TOPICS
from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.testing import free_port, postgres_database

from bench.harness import (
    PROGRESS_EVERY_S,
    BenchError,
    block_missing_sniffio,
    describe_machine,
    machine,
    ms,
    pct,
    postgres_version,
    rnd,
    source_version,
    start_service,
    stop_service,
    utc_stamp,
    wait_ready,
    write_results,
)
from bench.loadgen import Pool
from bench.upstream import ServiceProducer

QUEUES = ("logistics", "after-sales", "risk-desk")
KINDS = (
    ("delivery", "delivery-failed"),
    ("delivery", "delayed"),
    ("refund", "refund"),
    ("risk_hold", "risk-hold"),
)


def placed(order_id: str, customer: str, now: datetime) -> OrderPlaced:
    price = Decimal("25.00")
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        channel="shop",
        lines=[OrderLine(sku="TEE-M", qty=2, unit_price=price)],
        currency="EUR",
        subtotal=price * 2,
        discount=Decimal("0.00"),
        total=price * 2,
        payment_method="card",
        placed_at=now,
        payment_reminder_at=now + timedelta(minutes=15),
        payment_due_at=now + timedelta(minutes=30),
        required_checks=["inventory"],
    )


async def counts(client: httpx.AsyncClient) -> dict[str, int]:
    found = await client.get("/tickets/counts")
    return dict(found.json()) if found.status_code == 200 else {}


# -- backlog ------------------------------------------------------------------------------


async def backlog(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.backlog
    with (
        EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log") as broker,
        postgres_database("bench_desk") as dsn,
    ):
        settings = Settings(broker={"bootstrap_servers": broker.bootstrap_servers}).broker
        orders, fulfilment = (
            ServiceProducer(settings, "order"),
            ServiceProducer(settings, "fulfilment"),
        )
        await orders.producer.start()
        await fulfilment.producer.start()
        try:
            await brokerlib.ensure_topics(settings, TOPICS)
            now = datetime.now(UTC)
            sends = []
            for i in range(n):
                order_id = f"order-{i:06d}"
                sends.append(
                    await orders.send(
                        orders.message(placed(order_id, f"cust-{i % 5000}", now), order_id)
                    )
                )
                failure = DeliveryFailed(
                    shipment_id=f"shp-{i:06d}",
                    order_ids=[order_id],
                    tracking_number=f"T{i:08d}",
                    place="Berlin depot",
                    attempt=1,
                    at=now,
                )
                sends.append(await fulfilment.send(fulfilment.message(failure, order_id)))
            await asyncio.gather(*sends)
        finally:
            await orders.producer.stop()
            await fulfilment.producer.stop()
        print(
            f"backlog: {n} OrderPlaced + {n} DeliveryFailed published; starting the desk",
            flush=True,
        )
        desk = start_service("service_desk", broker, tmp, dsn)
        try:
            await wait_ready(desk, "backlog")
            started = time.perf_counter()
            last_print, seen = started, 0
            async with httpx.AsyncClient(base_url=desk.url, timeout=10) as client:
                while True:
                    seen = sum(
                        v
                        for k, v in (await counts(client)).items()
                        if k in ("open", "waiting_customer", "resolved")
                    )
                    now_t = time.perf_counter()
                    if seen >= n:
                        break
                    if now_t - started > args.timeout:
                        raise BenchError(
                            f"backlog: only {seen} of {n} tickets after {args.timeout:.0f}s; "
                            f"see {desk.log_path}"
                        )
                    if now_t - last_print >= PROGRESS_EVERY_S:
                        print(f"  {now_t - started:5.1f}s  {seen}/{n} tickets", flush=True)
                        last_print = now_t
                    await asyncio.sleep(0.25)
            took = time.perf_counter() - started
        finally:
            stop_service(desk)
    return {
        "tickets": n,
        "events": 2 * n,
        "seconds": rnd(took, 2),
        "tickets_per_s": rnd(n / took),
        "events_per_s": rnd(2 * n / took),
    }


# -- queue view ---------------------------------------------------------------------------


def populate(app: DeskApplication, n: int, batch: int = 500, resolved: float = 0.7) -> None:
    """`n` tickets through the desk's own use cases, saved `batch` orders at a time."""
    rng = random.Random(11)  # noqa: S311 - test data
    started, done = time.perf_counter(), 0
    last = started
    while done < n:
        aggregates: dict[Any, Any] = {}
        for i in range(done, min(n, done + batch)):
            uow = UnitOfWork(app)
            order_id, customer = f"order-{i:07d}", f"cust-{i % 20000}"
            lines: dict[str, list[str | int]] = {"TEE-M": [2, "25.00"]}
            app.order_placed(uow, order_id, customer, lines, Decimal("50.00"), app.clock.now())
            kind, source = KINDS[i % len(KINDS)]
            app.ticket_from_event(
                uow, order_id, kind, f"{source}:{i}", f"{source} on order {order_id}"
            )
            for aggregate in uow.aggregates:
                aggregates[aggregate.id] = aggregate
                if isinstance(aggregate, Ticket) and rng.random() < resolved:
                    aggregate.resolve("bench", "", app.clock.now())
                    thread = uow.get(UUID(aggregate.thread), Thread)
                    assert thread is not None
                    thread.closed(aggregate.id)
        app.record(list(aggregates.values()))
        done = min(n, done + batch)
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            rate = done / (time.perf_counter() - started)
            print(f"  {done}/{n} tickets written ({rate:.0f}/s)", flush=True)
            last = time.perf_counter()


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii")


async def timed(pool: Pool, requests: list[bytes], concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue = list(requests)

    async def worker() -> None:
        nonlocal errors
        while queue:
            raw = queue.pop()
            t0 = time.perf_counter()
            status, _ = await pool.request(raw)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += status != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies), errors


async def queue_view(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with (
        EmbeddedBroker(port=free_port(), log_path=tmp / "tansu-q.log") as broker,
        postgres_database("bench_desk_q") as dsn,
    ):
        settings = Settings(
            broker={"bootstrap_servers": broker.bootstrap_servers},
            store={"dsn": dsn},
            relay={"enabled": False},
            consumer={"enabled": False},
        )
        service = DeskService(settings)
        try:
            t0 = time.perf_counter()
            print(
                f"queue-view: writing {args.tickets} tickets through the desk's domain", flush=True
            )
            populate(service.app, args.tickets)
            written = time.perf_counter() - t0
            t1 = time.perf_counter()
            projected = service.catch_up()
            projecting = time.perf_counter() - t1
            print(
                f"  written in {written:.0f}s, {projected} events projected in {projecting:.0f}s",
                flush=True,
            )
        finally:
            service.close()
        desk = start_service("service_desk", broker, tmp, dsn, log_name="desk-q.log")
        results: dict[str, Any] = {
            "tickets": args.tickets,
            "write_s": rnd(written),
            "project_s": rnd(projecting),
        }
        try:
            await wait_ready(desk, "queue view")
            host = f"127.0.0.1:{desk.port}"
            async with Pool(desk.url, args.concurrency) as pool:
                views = {
                    "queue open, first page": [
                        get(f"/tickets?queue={QUEUES[i % 3]}&status=open&limit=50", host)
                        for i in range(args.requests)
                    ],
                    "customer's tickets": [
                        get(f"/tickets?customer=cust-{i % 20000}", host)
                        for i in range(args.requests)
                    ],
                }
                for name, requests in views.items():
                    await timed(pool, requests[:100], 1)  # warm-up
                    for concurrency in (1, args.concurrency):
                        t0 = time.perf_counter()
                        latencies, errors = await timed(pool, requests, concurrency)
                        took = time.perf_counter() - t0
                        results[f"{name} @{concurrency}"] = {
                            "requests": len(latencies),
                            "per_s": rnd(len(latencies) / took),
                            "p50_ms": rnd(pct(latencies, 50), 2),
                            "p95_ms": rnd(pct(latencies, 95), 2),
                            "p99_ms": rnd(pct(latencies, 99), 2),
                            "errors": errors,
                        }
        finally:
            stop_service(desk)
    return results


# -- the run ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.desk", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--backlog", type=int, default=10_000, help="delivery failures in the backlog (10000)"
    )
    parser.add_argument(
        "--tickets",
        type=int,
        default=100_000,
        help="tickets in the store for the queue view (100000)",
    )
    parser.add_argument(
        "--requests", type=int, default=2_000, help="timed requests per view and concurrency (2000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="connections for the second round (8)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up on the backlog after this (600 s)"
    )
    parser.add_argument(
        "--scenarios", default="backlog,queue-view", help="comma-separated (backlog,queue-view)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 failures, 10,000 tickets, 300 requests"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.backlog, args.tickets, args.requests = 1_000, 10_000, 300
    if min(args.backlog, args.tickets, args.requests, args.concurrency) < 1:
        parser.error("counts must be positive")
    return args


async def amain(args: argparse.Namespace) -> int:
    info = {**machine(), "postgres": postgres_version()}
    print(describe_machine(info), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    results: dict[str, Any] = {}
    try:
        wanted = args.scenarios.split(",")
        if "backlog" in wanted:
            results["backlog"] = await backlog(args, tmp)
        if "queue-view" in wanted:
            results["queue_view"] = await queue_view(args, tmp)
    except (BenchError, BrokerError) as error:
        print(f"bench.desk: {error}", file=sys.stderr)
        return 1
    print()
    if "backlog" in results:
        b = results["backlog"]
        print(_row("backlog", "tickets", "seconds", "tickets/s", "events/s"))
        print(_row(*["---"] * 5))
        print(_row(f"{b['tickets']} delivery failures", *(b[k] for k in BACKLOG_COLUMNS)))
    if "queue_view" in results:
        q = results["queue_view"]
        print(
            f"\nqueue view with {q['tickets']} tickets (written in {q['write_s']} s, "
            f"projected in {q['project_s']} s)\n"
        )
        print(_row("view @ connections", "requests/s", "p50 ms", "p95 ms", "p99 ms", "errors"))
        print(_row(*["---"] * 6))
        for name, row in q.items():
            if isinstance(row, dict):
                figures = [ms(row[k]) for k in ("p50_ms", "p95_ms", "p99_ms")]
                print(_row(name, row["per_s"], *figures, row["errors"]))
    out = write_results(
        "desk",
        utc_stamp(),
        {"machine": info, "source": source_version(), "args": vars(args), "results": results},
    )
    print(f"\nresults: {out}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


BACKLOG_COLUMNS = ("tickets", "seconds", "tickets_per_s", "events_per_s")


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    block_missing_sniffio()
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
