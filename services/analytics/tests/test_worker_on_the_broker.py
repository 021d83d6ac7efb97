"""The analytics worker (`python -m analytics`, a child process) on the real broker, as
the issue asks: the figures after (a) one clean run, (b) a run whose worker is SIGKILLed
mid-stream and started again, (c) a full re-publish of every topic into an empty broker
(topic by topic, as each service's relay re-publishes its own store, one of them twice)
are identical. Each run on a broker of its own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from analytics.figures import Figures
from analytics.harness import Message, traffic
from analytics.processing import Processor
from shopfloor_contracts.topics import ORDERS as ORDERS_TOPIC
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.settings import BrokerSettings
from shopfloor_runtime.testing import free_port

from tests.processes import ServiceProcess, until
from tests.support import envelopes, read_topic

ALL_PARTITIONS = list(range(ORDERS_TOPIC.partitions))

pytestmark = pytest.mark.integration

ORDERS = 1500


@pytest.fixture(scope="module")
def recorded() -> list[Message]:
    return traffic(ORDERS, datetime.now(UTC).replace(microsecond=0) - timedelta(days=5), seed=3)


async def publish(bootstrap: str, messages: list[Message], rate: float | None = None) -> None:
    settings = BrokerSettings(bootstrap_servers=bootstrap)
    await brokerlib.ensure_topics(settings, sorted({t for t, _, _ in messages}))
    producer = brokerlib.producer(settings)
    await producer.start()
    try:
        step = 200
        for at in range(0, len(messages), step):
            sent = [await producer.send(t, v, key=k) for t, k, v in messages[at : at + step]]
            await asyncio.gather(*sent)
            if rate:
                await asyncio.sleep(step / rate)
    finally:
        await producer.stop()


@asynccontextmanager
async def worker_on(tmp: Path, name: str) -> AsyncIterator[tuple[EmbeddedBroker, ServiceProcess]]:
    with EmbeddedBroker(port=free_port(), log_path=tmp / f"tansu-{name}.log") as broker:
        process = ServiceProcess(
            "analytics",
            {
                "ANALYTICS_BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "ANALYTICS_DATADIR": str(tmp / f"data-{name}"),
            },
            tmp,
        )
        try:
            yield broker, process
        finally:
            process.kill()


async def figures(process: ServiceProcess) -> dict[str, Any]:
    """The group's figures as this worker answers them (what they cover left out)."""
    return {"families": (await figures_and_coverage(process))["families"]}


async def figures_and_coverage(process: ServiceProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        found = await client.get(f"{process.url}/figures")
        assert found.status_code == 200, found.text
        return dict(found.json())


async def placed(process: ServiceProcess) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        funnel = await client.get(f"{process.url}/figures/funnel", params={"from": "2000-01-01"})
        return int(funnel.json()["placed"])


async def settled(
    process: ServiceProcess, expected: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The figures once every order is counted and they stop changing (or once they
    equal `expected`)."""

    last: dict[str, Any] = {}

    async def done() -> dict[str, Any] | None:
        if expected is not None:
            last["figures"] = now = await figures(process)
            return now if now == expected else None
        if await placed(process) < ORDERS:
            return None
        first = await figures(process)
        await asyncio.sleep(2.0)
        return first if await figures(process) == first else None

    try:
        return await until("the figures settled", done, timeout=120)
    except AssertionError as missing:
        if expected is None or "figures" not in last:
            raise
        raise AssertionError(f"{missing}; {difference(last['figures'], expected)}") from None


def difference(found: dict[str, Any], expected: dict[str, Any]) -> str:
    """Which families differ, and a few of their keys: found vs expected."""
    lines = []
    a, b = found["families"], expected["families"]
    for family in sorted(set(a) | set(b)):
        mine = {json_key(k): v for k, v in a.get(family, [])}
        theirs = {json_key(k): v for k, v in b.get(family, [])}
        if mine != theirs:
            keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            shown = [(k, mine.get(k), theirs.get(k)) for k in keys[:4]]
            lines.append(f"{family}: {len(keys)} keys differ, e.g. {shown}")
    return "; ".join(lines) or "no family differs"


def json_key(key: list[Any]) -> str:
    return "|".join(map(str, key))


async def test_a_clean_run_a_killed_worker_and_a_republish_give_identical_figures(
    recorded: list[Message], tmp_path: Path
) -> None:
    # (a) clean: everything published, then one worker reads it all
    async with worker_on(tmp_path, "clean") as (broker, process):
        await publish(broker.bootstrap_servers, recorded)
        process.start()
        await process.ready(90)
        clean = await settled(process)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{process.url}/metrics")).text
        assert f'analytics_orders{{window="30d"}} {float(ORDERS)}' in metrics
        assert 'analytics_events_total{outcome="dead_letter"} 0.0' in metrics
    families = clean["families"]
    assert sum(v[0] for _, v in families["sales"]) == ORDERS

    # (b) the worker SIGKILLed while the stream comes in, and started again
    async with worker_on(tmp_path, "killed") as (broker, process):
        process.start()
        await process.ready(90)
        producing = asyncio.create_task(publish(broker.bootstrap_servers, recorded, rate=2500))
        await until("a third of the orders counted", lambda: _over(placed(process), ORDERS // 3))
        process.kill()  # mid-stream: a commit interval's work not committed
        process.start()
        await process.ready(90)
        await producing
        after_kill = await settled(process, clean)
        recovered = re.findall(
            r"entity table recovered in [\d.]+s: (\d+) entities", process.log_tail(400)
        )
        assert recovered and int(recovered[-1]) > 0  # the state came back, not started again
    assert after_kill == clean

    # (c) a broker that lost everything, refilled by each service re-publishing its own
    # topic (the order service's twice), and a new worker from nothing
    async with worker_on(tmp_path, "republished") as (broker, process):
        process.start()
        await process.ready(90)
        by_topic: dict[str, list[Message]] = {}
        for m in recorded:
            by_topic.setdefault(m[0], []).append(m)
        for topic in ("inventory.v1", "service-desk.v1", "orders.v1", "risk.v1", "fulfilment.v1"):
            await publish(broker.bootstrap_servers, by_topic[topic])
        await publish(broker.bootstrap_servers, by_topic["orders.v1"])
        republished = await settled(process, clean)
    assert republished == clean


def expected_figures(messages: list[Message]) -> dict[str, Any]:
    """`GET /figures` of a worker that applied `messages`: the processor's own figures,
    as JSON (the worker runs the same code; test_exactly_once shows batching and order
    change nothing)."""
    processor = Processor({}, Figures())
    processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(messages))
    return json.loads(json.dumps({"families": processor.figures.snapshot()}))


async def test_a_worker_that_joins_and_leaves_mid_stream_changes_no_figure(
    recorded: list[Message], tmp_path: Path
) -> None:
    """Two rebalances under a live stream: partitions, their entity tables and their
    uncommitted input move to the second worker and back; afterwards the first worker
    alone holds exactly the figures of the traffic (nothing lost, nothing counted twice)."""
    expected = expected_figures(recorded)
    async with worker_on(tmp_path, "first") as (broker, first):
        first.start()
        await first.ready(90)
        producing = asyncio.create_task(publish(broker.bootstrap_servers, recorded, rate=1500))
        await until("a quarter of the orders counted", lambda: _over(placed(first), ORDERS // 4))
        second = second_worker(broker, tmp_path)
        try:
            await second.ready(90)  # joined, its share of the table recovered
            held = await until("the second worker holds partitions", lambda: _holds(second))
            assert 0 < len(held) < ORDERS_TOPIC.partitions
            await until("the second worker applies its share", lambda: _applied(second))
            assert second.stop() == 0  # SIGTERM: it leaves the group
        finally:
            second.kill()
        await producing
        after = await settled(first, expected)
    assert after == expected


async def test_two_workers_each_answer_with_the_whole_group_s_figures(
    recorded: list[Message], tmp_path: Path
) -> None:
    """With two workers each holds part of the partitions, and each answers for the
    group: its own figures plus the other's, equal to the figures of the whole traffic,
    on the API, the dashboards and the metrics alike."""
    expected = expected_figures(recorded)
    async with worker_on(tmp_path, "first") as (broker, first):
        first.start()
        await first.ready(90)
        second = second_worker(broker, tmp_path)
        try:
            await second.ready(90)
            await until("the second worker holds partitions", lambda: _holds(second))
            await until("the first worker gave some up", lambda: _gave_up(first))
            await publish(broker.bootstrap_servers, recorded)
            one, two = await settled(first, expected), await settled(second, expected)
            assert one == two == expected
            a, b = await figures_and_coverage(first), await figures_and_coverage(second)
            for coverage in (a["coverage"], b["coverage"]):
                assert coverage["complete"] and coverage["partitions"] == ALL_PARTITIONS
                shares = [set(w["partitions"]) for w in coverage["workers"]]
                assert len(shares) == 2 and all(shares) and not shares[0] & shares[1]
            own = await _held_figures(first)
            assert own["partitions"] != ALL_PARTITIONS and own["families"] != a["families"]
            async with httpx.AsyncClient(timeout=30) as client:
                span = {"from": "2000-01-01", "to": "2100-01-01"}
                boards = [
                    (await client.get(f"{p.url}/dashboards/management", params=span)).json()
                    for p in (first, second)
                ]
                gmv = [
                    re.findall(r'^analytics_gmv_euros\{window="30d"\} (\S+)$', m, re.M)
                    for m in [(await client.get(f"{p.url}/metrics")).text for p in (first, second)]
                ]
            assert boards[0]["gmv"] == boards[1]["gmv"] and boards[0]["orders"] == ORDERS
            assert boards[0]["coverage"]["complete"] and boards[1]["coverage"]["complete"]
            assert gmv[0] == gmv[1] and len(gmv[0]) == 1
        finally:
            second.kill()


def second_worker(broker: EmbeddedBroker, tmp_path: Path) -> ServiceProcess:
    """Another worker process in the same group, with its own data directory."""
    return ServiceProcess(
        "analytics",
        {
            "ANALYTICS_BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ANALYTICS_DATADIR": str(tmp_path / "data-second"),
        },
        tmp_path,
    ).start()


async def _gave_up(process: ServiceProcess) -> bool:
    return len(await _holds(process)) < ORDERS_TOPIC.partitions


async def _held_figures(process: ServiceProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        return dict((await client.get(f"{process.url}/figures/held")).json())


async def _holds(process: ServiceProcess) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        return list((await client.get(f"{process.url}/progress")).json()["partitions"])


async def _applied(process: ServiceProcess) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        return int((await client.get(f"{process.url}/progress")).json()["applied"])


async def rebuild(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m analytics rebuild` as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "analytics", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _over(count: Any, floor: int) -> bool:
    return await count >= floor


LATER = (b'"OrderShipped"', b'"ShipmentDispatched"', b'"OrderDelivered"', b'"TicketOpened"')


async def alerts_on_topic(bootstrap: str) -> list[tuple[str, str]]:
    records = await read_topic(bootstrap, "analytics.v1")
    return [(e["event_type"], e["payload"]["alert_id"]) for e in envelopes(records)]


async def test_a_backlog_alert_is_raised_once_across_a_restart_and_cleared_when_it_ships(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[alerts]\ndaily_capacity = 100\ncheck_s = 0.5\n")
    recorded = traffic(200, datetime.now(UTC).replace(microsecond=0) - timedelta(days=2), seed=5)
    held_back = [m for m in recorded if any(marker in m[2] for marker in LATER)]
    first = [m for m in recorded if m not in held_back]
    async with worker_on(tmp_path, "alerts") as (broker, process):
        process.env["ANALYTICS_RULES_FILE"] = str(rules)
        bootstrap = broker.bootstrap_servers
        await publish(bootstrap, first)
        process.start()
        await process.ready(90)

        async def raised() -> list[tuple[str, str]]:
            return await alerts_on_topic(bootstrap)

        assert await until("the backlog alert", raised) == [("AlertRaised", "backlog")]
        async with httpx.AsyncClient() as client:
            [alert] = (
                await client.get(f"{process.url}/alerts", params={"status": "active"})
            ).json()
        assert (alert["rule"], alert["level"]) == ("backlog", "yellow")
        assert (
            int(alert["figures"]["unshipped"]) > 20 and alert["figures"]["limit_percent"] == "20.0"
        )

        process.stop()  # a restart reads the alert back: it is not raised again
        process.start()
        await process.ready(90)
        await asyncio.sleep(3)  # six evaluations
        assert await alerts_on_topic(bootstrap) == [("AlertRaised", "backlog")]

        await publish(bootstrap, held_back)  # everything ships: the backlog is gone

        async def cleared() -> list[tuple[str, str]] | None:
            found = await alerts_on_topic(bootstrap)
            return found if len(found) == 2 else None

        assert await until("the backlog alert cleared", cleared) == [
            ("AlertRaised", "backlog"),
            ("AlertCleared", "backlog"),
        ]


async def test_a_rebuild_reads_every_topic_again_and_the_restarted_worker_goes_on_from_there(
    recorded: list[Message], tmp_path: Path
) -> None:
    first, later = recorded[: len(recorded) // 2], recorded[len(recorded) // 2 :]
    async with worker_on(tmp_path, "rebuild") as (broker, process):
        await publish(broker.bootstrap_servers, first)
        env = {**os.environ, **process.env}
        rebuilt = await rebuild(env)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "generation 1" in rebuilt.stdout and f"{len(first):,} events" in rebuilt.stdout
        assert "100.0%" in rebuilt.stderr  # the progress bar reached its end
        await publish(broker.bootstrap_servers, later)  # while no worker runs
        process.start()
        await process.ready(90)
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{process.url}/progress")).json()
        assert (status["generation"], status["consumer_group"]) == (1, "analytics-g1")
        after = await settled(process)
        recovered = re.findall(
            r"entity table recovered in [\d.]+s: (\d+) entities", process.log_tail(400)
        )
        assert int(recovered[0]) > 0  # it started from the rebuilt state
    # the same figures as a worker that read it all itself (no event counted twice)
    async with worker_on(tmp_path, "reference") as (broker, process):
        await publish(broker.bootstrap_servers, recorded)
        process.start()
        await process.ready(90)
        assert await settled(process, after) == after


async def test_a_rebuild_without_a_broker_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ANALYTICS_BROKER__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    failed = await rebuild(env)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("analytics: the broker at 127.0.0.1:")
    assert "Traceback" not in failed.stderr
