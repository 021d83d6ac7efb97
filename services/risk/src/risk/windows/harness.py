"""Driving a real velocity worker from outside, for its tests and `bench.risk_windows`:
the worker as a child process (so SIGKILL is real), OrderPlaced messages as the order
service publishes them, and risk.velocity.v1 read back as a consumer keeps it (the latest
count per order and dimension). Development only: not imported by the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from shopfloor_contracts.orders import Destination, OrderLine, OrderPlaced
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import ORDERS, RISK_VELOCITY, TOPICS
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.settings import BrokerSettings

SESSION_TIMEOUT_MS = 6000  # the embedded broker holds a group join for half of it


def order(
    order_id: str,
    customer_id: str,
    placed_at: datetime,
    address: str | None = None,
    device: str | None = None,
    price: Decimal = Decimal("10.00"),
) -> OrderPlaced:
    """An OrderPlaced with what velocity reads (one unit at `price`); the rest plausible."""
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        channel="shop",
        lines=[OrderLine(sku="TEE-M", qty=1, unit_price=price)],
        currency="EUR",
        subtotal=price,
        discount=Decimal("0.00"),
        total=price,
        destination=None
        if address is None
        else Destination(
            country="DE", postal_prefix="10", region="DE-1", address_fingerprint=address
        ),
        placed_at=placed_at,
        payment_reminder_at=placed_at + timedelta(minutes=15),
        payment_due_at=placed_at + timedelta(minutes=30),
        required_checks=["inventory", "risk"],
        device_id=device,
    )


def random_orders(
    base: datetime, n: int, spacing_s: float, pool: int, seed: int
) -> list[OrderPlaced]:
    """Orders from pools of `pool` customers, addresses and devices (so keys repeat),
    placed about `spacing_s` apart with a few seconds of jitter (so one key's orders also
    arrive out of order); one in five without a device."""
    rng = random.Random(seed)
    pools = {name: [f"{name}-{seed}-{k}" for k in range(pool)] for name in ("cust", "addr", "dev")}
    return [
        order(
            f"order-{seed}-{k:06d}",
            rng.choice(pools["cust"]),
            base + timedelta(seconds=spacing_s * k + rng.uniform(0, 4)),
            rng.choice(pools["addr"]),
            rng.choice(pools["dev"]) if rng.random() < 0.8 else None,
        )
        for k in range(n)
    ]


#: How each dimension's key is read from an order (None: the order has none).
KEYS = {
    "customer": lambda o: o.customer_id,
    "address": lambda o: o.destination.address_fingerprint if o.destination else None,
    "device": lambda o: o.device_id,
}


def expected_counts(orders: list[OrderPlaced], window_s: int = 600) -> dict[tuple[str, str], int]:
    """The definition by brute force, independent of risk.velocity: per (order,
    dimension), the key's orders in (placed_at - window, placed_at], ties by order id."""
    counts: dict[tuple[str, str], int] = {}
    window = timedelta(seconds=window_s)
    for dimension, key_of in KEYS.items():
        by_key: dict[str, list[OrderPlaced]] = defaultdict(list)
        for o in orders:
            if key_of(o):
                by_key[key_of(o)].append(o)
        for same in by_key.values():
            for x in same:
                counts[(x.order_id, dimension)] = sum(
                    1
                    for y in same
                    if x.placed_at - window < y.placed_at
                    and (y.placed_at, y.order_id) <= (x.placed_at, x.order_id)
                )
    return counts


def order_message(placed: OrderPlaced, event_id: UUID | None = None) -> bytes:
    """The envelope the order service's relay would publish (positions not chained:
    the worker does not read them)."""
    spec = EVENTS["OrderPlaced"]
    return (
        spec.message_model()(
            event_id=event_id or uuid4(),
            event_type="OrderPlaced",
            schema_version=spec.version,
            occurred_at=placed.placed_at,
            producer="order",
            aggregate_id=placed.order_id,
            aggregate_version=1,
            correlation_id=placed.order_id,
            position=1,
            previous_position=0,
            payload=placed,
        )
        .model_dump_json()
        .encode()
    )


class Publisher:
    """Publishes onto orders.v1 as the order service's relay does: each key on its
    murmur2 partition, acknowledged by all replicas."""

    def __init__(self, bootstrap: str) -> None:
        self.settings = BrokerSettings(bootstrap_servers=bootstrap)
        self.producer = brokerlib.producer(self.settings)
        self.sent = 0

    async def __aenter__(self) -> Publisher:
        await brokerlib.ensure_topics(self.settings, TOPICS)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, messages: list[tuple[str, bytes]]) -> None:
        """(key, value) pairs, all acknowledged on return."""
        sending = [
            await self.producer.send(
                ORDERS.name,
                value,
                key=key.encode(),
                partition=partition_for(key.encode(), ORDERS.partitions),
            )
            for key, value in messages
        ]
        await asyncio.gather(*sending)

    async def at_rate(self, orders: list[OrderPlaced], rate: float, batch: int = 10) -> None:
        """The orders at about `rate` per second, in batches; `sent` counts them."""
        self.sent = 0
        for start in range(0, len(orders), batch):
            began = time.monotonic()
            chunk = orders[start : start + batch]
            await self.send([(o.order_id, order_message(o)) for o in chunk])
            self.sent += len(chunk)
            await asyncio.sleep(max(0.0, batch / rate - (time.monotonic() - began)))


async def publish(bootstrap: str, messages: list[tuple[str, bytes]]) -> None:
    async with Publisher(bootstrap) as publisher:
        await publisher.send(messages)


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[ConsumerRecord]:
    """Every record of the topic now, by partition and offset. Done when a fetch brought
    nothing and each position reached the high watermark of the fetch responses (the
    broker's `end_offsets` answer is too low: the last batch's first offset + 1)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for got in batch.values():
                records.extend(got)
            if not batch and all([await _caught_up(consumer, tp) for tp in tps]):
                return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's true end: the high watermark of a fetch response, read from
    the last batch on (the broker's own end offset answer is that batch's first + 1)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp, end in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, max(end - 1, 0))
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(timeout_ms=300)
        return {tp.partition: consumer.highwater(tp) for tp in tps}
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    highwater = consumer.highwater(tp)
    return highwater is not None and await consumer.position(tp) >= highwater


@dataclass(frozen=True)
class Told:
    """One VelocityObserved as read back."""

    partition: int
    offset: int
    timestamp_ms: int
    event_id: str
    order_id: str
    dimension: str
    key: str
    count: int
    window_s: int
    order_ids: tuple[str, ...]


async def read_told(bootstrap: str) -> list[Told]:
    records = await read_all(bootstrap, RISK_VELOCITY.name, RISK_VELOCITY.partitions)
    told = []
    for record in records:
        message = json.loads(record.value)
        [count] = message["payload"]["counts"]
        told.append(
            Told(
                record.partition,
                record.offset,
                record.timestamp,
                message["event_id"],
                message["payload"]["order_id"],
                count["dimension"],
                count["key"],
                count["count"],
                count["window_s"],
                tuple(count["order_ids"]),
            )
        )
    return told


def latest(told: list[Told]) -> dict[tuple[str, str], int]:
    """The count a consumer ends with per (order, dimension): the last one on the topic
    (one order's messages share a partition, so offsets order them)."""
    return {(t.order_id, t.dimension): t.count for t in told}


@dataclass
class WorkerProcess:
    """`python -m risk.windows` as a child process with its own log file."""

    bootstrap: str
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    name: str = "worker"
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}-{self.starts}.log"

    def start(self) -> WorkerProcess:
        self.starts += 1
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "RISK_WINDOWS_BROKER__BOOTSTRAP_SERVERS": self.bootstrap,
            "RISK_WINDOWS_BROKER__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "RISK_WINDOWS_BROKER__HEARTBEAT_INTERVAL_MS": "1000",
            "RISK_WINDOWS_DATADIR": str(self.directory / f"data-{self.name}"),
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own module
                [sys.executable, "-m", "risk.windows"],
                env=env,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def logs(self) -> str:
        """Every start's log, in order."""
        return "".join(
            (self.directory / f"{self.name}-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )

    async def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Until this start's log has a line matching `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {pattern!r} in {timeout}s; {self.log_path}")
            await asyncio.sleep(0.1)

    async def recovered(self, timeout: float = 60.0) -> tuple[float, int, int]:
        """This start's table recovery: seconds, buckets, order entries."""
        found = await self.wait_for(RECOVERED, timeout)
        return float(found[1]), int(found[2]), int(found[3])

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no leaving the group."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: faust flushes, commits and leaves."""
        self._signal(signal.SIGTERM, timeout)

    def _signal(self, signum: int, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


RECOVERED = r"velocity table recovered in ([\d.]+)s: (\d+) buckets, (\d+) order entries"
