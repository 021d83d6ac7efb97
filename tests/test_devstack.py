"""The dev stack without processes or broker: every registered service is built on SQLite
(relay and consumer off) behind an in-process transport, the simulator runs each service's
own dev-stack part against it, and the progress probes read what came of it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from analytics.api import create_api
from analytics.devstack import figures_so_far
from analytics.harness import recorded_view, traffic
from analytics.settings import AnalyticsSettings
from shopfloor_devstack import cli, parts, scenario
from shopfloor_devstack.progress import Progress, take
from shopfloor_devstack.simulator import Simulator
from shopfloor_devstack.stack import Stack, StackConfig, StackError
from shopfloor_runtime.registry import services
from shopfloor_runtime.testing import free_port

PLACED = re.compile(r"simulator: (\d+) placed")


class ByHost(httpx.AsyncBaseTransport):
    """Each request to the in-process service its host names."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


@pytest.fixture
def built(tmp_path: Path) -> Iterator[dict[str, Any]]:
    off = {"enabled": False}
    made = {
        spec.name: spec.build(spec.settings(store={"data_dir": tmp_path}, relay=off, consumer=off))
        for spec in services()
    }
    yield made
    for service in made.values():
        service.close()


@asynccontextmanager
async def running(built: dict[str, Any]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for service in built.values():
            await stack.enter_async_context(service.running())
        yield


async def until_placed(simulator: Simulator, at_least: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while int(PLACED.search(simulator.progress())[1]) < at_least:  # type: ignore[index]
        assert asyncio.get_running_loop().time() < deadline, simulator.progress()
        assert simulator.failures.count == 0, simulator.failures.last
        await asyncio.sleep(0.05)


async def test_the_simulated_shop_stocks_the_catalogue_then_places_orders_through_the_apis(
    built: dict[str, Any],
) -> None:
    urls = {name: f"http://{name}.test" for name in built}
    transport = ByHost({f"{name}.test": service.http for name, service in built.items()})
    found = parts.parts(urls)
    assert {"order", "inventory"} <= set(found)
    simulator = Simulator(scenario.world(50, urls, seed=7), found, transport)
    # Other services' parts may add what they do after these.
    assert simulator.intro().startswith("stocking the warehouses, then placing about 50 orders/s")
    async with running(built):
        work = asyncio.create_task(simulator.run())
        await until_placed(simulator, 20)
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        probes = {n: p.probe for n, p in found.items() if p.probe is not None}
        async with httpx.AsyncClient(transport=transport) as client:
            progress = await take(client, urls, probes, 65, simulator.progress())
            # The order counts come from a read model, which may be a moment behind.
            for _ in range(100):
                if progress.probed["orders"] not in (None, "none yet"):
                    break
                await asyncio.sleep(0.1)
                progress = await take(client, urls, probes, 65, simulator.progress())
    assert simulator.failures.count == 0, simulator.failures.last
    first, second = progress.lines()
    assert first.startswith("[01:05] simulator: ") and ", 0 restocks, " in first
    assert first.endswith(", 0 errors")
    # Every catalogue SKU got its opening stock. (The event counts are the process's
    # metrics, which other tests in this process move too: only their shape is checked.)
    opening = 300 * len(scenario.CATALOGUE)
    events = r"events: order \d+, inventory \d+(?:, [a-z-]+ \d+)* \| orders: "
    assert re.match(events, second.strip()), second
    assert f"stock: {opening} available, 0/{len(scenario.CATALOGUE)} SKUs below safety" in second
    assert re.search(r"orders: \d+ awaiting payment", second), second
    assert re.match(r"simulator placed (\d+) orders, paid \d+, ", simulator.summary())
    assert "short of stock; 0 restocks" in simulator.summary()
    assert simulator.summary().endswith(", 0 errors")


def test_what_cannot_be_read_shows_as_a_question_mark() -> None:
    progress = Progress(61, None, {"order": 3, "inventory": None}, {"orders": None, "stock": "5"})
    assert progress.lines() == [
        "[01:01] simulator off",
        "        events: order 3, inventory ? | orders: ? | stock: 5",
    ]


def test_a_bad_port_in_the_environment_is_one_line_and_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVENTORY_API__PORT", "eighty")
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert err == "shopfloor: INVENTORY_API__PORT must be a port number (1-65535), got 'eighty'\n"


def test_the_run_help_lists_every_installed_service_with_its_port_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for spec in services():
        assert f"{spec.port_variable} (default {spec.default_port})" in text
    assert "ANALYTICS_API__PORT (default 8006)" in text  # a worker with an API of its own


def test_analytics_is_a_part_of_its_own_that_starts_its_worker() -> None:
    """Analytics is a faust worker, not a store-backed service of the registry: its part
    stands alone and names the process the stack starts beside the services."""
    names = [spec.name for spec in services()]
    assert "analytics" not in names and "analytics" not in parts.parts(names)
    part = parts.standalone(names)["analytics"]
    assert part.worker is not None and part.probe is not None and part.traffic is None
    assert part.worker.module == "analytics"
    assert part.worker.port_variable == "ANALYTICS_API__PORT"
    assert part.worker.default_port == AnalyticsSettings().api.port == 8006
    assert part.worker.data_dir_variable == "ANALYTICS_DATADIR"
    assert ("dashboards", "/dashboards/management") in part.worker.links


def test_the_stack_runs_the_analytics_worker_on_its_port_with_a_data_dir_of_its_own(
    tmp_path: Path,
) -> None:
    env = {
        "SHOPFLOOR_DATA_DIR": str(tmp_path),
        "SHOPFLOOR_BROKER_PORT": "19092",
        "ANALYTICS_API__PORT": "18006",
    }
    stack = Stack(StackConfig.from_env(env))
    [worker] = [w for w in stack.workers if w.name == "analytics"]
    assert (worker.name, worker.module, worker.port) == ("analytics", "analytics", 18006)
    assert worker.log_path == tmp_path / "logs" / "analytics.log"
    assert worker in stack.children and stack.urls["analytics"] == "http://127.0.0.1:18006"
    assert stack.probes["analytics"].label == "analytics"
    started = stack._worker_env(worker)
    assert started["ANALYTICS_BROKER__BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert (started["ANALYTICS_API__HOST"], started["ANALYTICS_API__PORT"]) == (
        "127.0.0.1",
        "18006",
    )
    assert started["ANALYTICS_DATADIR"] == str((tmp_path / "analytics").resolve())


async def test_a_worker_that_cannot_start_is_one_line_naming_its_log(tmp_path: Path) -> None:
    """The process the stack starts is `python -m analytics` with the stack's broker (here
    one nobody listens on): its last word is the stack's error."""
    env = {"SHOPFLOOR_DATA_DIR": str(tmp_path), "SHOPFLOOR_BROKER_PORT": str(free_port())}
    env["ANALYTICS_API__PORT"] = str(free_port())
    stack = Stack(StackConfig.from_env(env))
    [worker] = [w for w in stack.workers if w.name == "analytics"]
    worker.log_path.parent.mkdir(parents=True)
    await worker.start(stack._worker_env(worker))
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            with pytest.raises(StackError) as failed:
                await worker.wait_ready(client, timeout=60)
    finally:
        await worker.stop(5, asyncio.Event())
    said = str(failed.value)
    assert said.startswith("the analytics worker exited with code 1: analytics: the broker at ")
    assert said.endswith(f"(while starting; log: {worker.log_path})")


async def test_the_analytics_probe_reads_events_orders_gmv_and_alerts_from_its_api() -> None:
    alert = {
        "alert_id": "backlog",
        "rule": "backlog",
        "level": "yellow",
        "summary": "backlog 250 orders, limit 200",
        "figures": {"backlog": 250},
        "raised_at": "2026-11-02T09:00:00+00:00",
        "as_of": "2026-11-02",
    }
    view = recorded_view(traffic(40, datetime(2026, 11, 2, 8, 0, tzinfo=UTC), seed=3), [alert])
    progress = view.progress()
    transport = httpx.ASGITransport(app=create_api(view))
    async with httpx.AsyncClient(transport=transport) as client:
        summary = (await client.get("http://analytics.test/figures/summary")).json()
        reading = await figures_so_far(client, "http://analytics.test")
    applied, gmv = progress.applied, summary["totals"]["gmv"]
    assert applied > 0 and summary["totals"]["orders"] == 40
    assert reading == (
        f"{applied} events applied, 40 orders, GMV €{Decimal(gmv):,}, "
        "1 active alert (backlog yellow)"
    )
