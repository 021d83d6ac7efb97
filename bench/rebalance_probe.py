"""How long a consumer joining or leaving a group stalls the whole group on the embedded
broker, for aiokafka settings the services do not expose (rebalance_timeout_ms) next to
the ones they do (session timeout, heartbeat). Plain aiokafka, no service: a producer
writes 100 messages/s to a 6-partition topic, two consumers in a group read it, a third
joins, then one leaves (a clean stop, as on SIGTERM); the stall is the longest time in
which no member received a message, after each change. Used by bench/README.md (`peak`)
to tell which of these settings the broker's hold on a group join depends on.

Run from the workspace root: `python -m bench.rebalance_probe [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from shopfloor_devstack.launcher import EmbeddedBroker

# Imported for its side effect: no topic is created by looking it up.
from shopfloor_runtime import broker as _brokerlib  # noqa: F401
from shopfloor_runtime.testing import free_port

TOPIC = "probe"
DEFAULT_SETTINGS = "10000/2000,10000/2000/2000,3000/500,3000/500/1000"


def longest_quiet(times: list[float], start: float, end: float) -> float:
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


async def probe(
    session_ms: int, heartbeat_ms: int, rebalance_ms: int | None
) -> tuple[float, float]:
    """(join stall, leave stall) in seconds, on a fresh broker."""
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        bootstrap = broker.bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 6, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
        await producer.start()
        received: list[float] = []
        done = asyncio.Event()

        async def produce() -> None:
            n = 0
            while not done.is_set():
                for _ in range(10):
                    await producer.send(TOPIC, b"x", key=str(n).encode())
                    n += 1
                await asyncio.sleep(0.1)

        def member() -> AIOKafkaConsumer:
            options: dict[str, Any] = {
                "bootstrap_servers": bootstrap,
                "group_id": "probe",
                "enable_auto_commit": False,
                "auto_offset_reset": "earliest",
                "session_timeout_ms": session_ms,
                "heartbeat_interval_ms": heartbeat_ms,
                "fetch_max_wait_ms": 20,
            }
            if rebalance_ms is not None:
                options["rebalance_timeout_ms"] = rebalance_ms
            return AIOKafkaConsumer(TOPIC, **options)

        async def consume(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                now = time.monotonic()
                for records in batches.values():
                    received.extend([now] * len(records))
                if batches:
                    await consumer.commit()

        settle = max(8.0, session_ms / 1000 * 1.5)
        members = [member(), member()]
        stops = [asyncio.Event(), asyncio.Event()]
        for consumer in members:
            await consumer.start()
        tasks = [asyncio.create_task(consume(c, s)) for c, s in zip(members, stops, strict=True)]
        producing = asyncio.create_task(produce())
        await asyncio.sleep(settle)
        joined_at = time.monotonic()
        third, third_stop = member(), asyncio.Event()
        await third.start()
        tasks.append(asyncio.create_task(consume(third, third_stop)))
        await asyncio.sleep(settle + 4)
        join = longest_quiet(received, joined_at, time.monotonic())
        left_at = time.monotonic()
        stops[0].set()
        await tasks[0]
        await members[0].stop()
        await asyncio.sleep(settle + 4)
        leave = longest_quiet(received, left_at, time.monotonic())
        done.set()
        await producing
        stops[1].set()
        third_stop.set()
        await asyncio.gather(*tasks[1:])
        for consumer in (members[1], third):
            await consumer.stop()
        await producer.stop()
        return join, leave
    finally:
        broker.stop()


async def amain(args: argparse.Namespace) -> int:
    rows = [
        "| session / heartbeat / rebalance_timeout ms | join stall s (median) | leave stall s "
        "(median) | each |",
        "|---|---:|---:|---|",
    ]
    for text in args.settings.split(","):
        parts = [int(p) for p in text.split("/")]
        session, heartbeat = parts[0], parts[1]
        rebalance = parts[2] if len(parts) > 2 else None
        found = [await probe(session, heartbeat, rebalance) for _ in range(args.repeats)]
        joins, leaves = [j for j, _ in found], [v for _, v in found]
        each = ", ".join(f"{j:.2f}/{v:.2f}" for j, v in found)
        label = f"{session} / {heartbeat} / {rebalance or f'({session}, the default)'}"
        rows.append(
            f"| {label} | {statistics.median(joins):.2f} | {statistics.median(leaves):.2f} "
            f"| {each} |"
        )
        print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebalance_probe", description=__doc__)
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help=f"comma-separated session/heartbeat[/rebalance_timeout] in ms ({DEFAULT_SETTINGS})",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (3)")
    args = parser.parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
