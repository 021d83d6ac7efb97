"""`shopfloor run` end to end: the stack starts every service (and risk's velocity
worker, and the analytics worker on its own port), takes simulated traffic (orders
confirmed once inventory reserved their stock and risk cleared them; a brushing burst
held; analytics counting them), stops cleanly on Ctrl-C with nothing left running, and a
second run resumes both services from the data directory while their relays refill the
new, empty broker, which analytics reads again from the start."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from shopfloor_devstack.parts import standalone
from shopfloor_runtime.ports import port_in_use
from shopfloor_runtime.registry import services
from shopfloor_runtime.testing import free_port

pytestmark = pytest.mark.integration

#: Every registered service is started by the stack; this test reads order and inventory.
SPECS = services()
SERVICES = tuple(spec.name for spec in SPECS)
#: the workers with an API of their own (analytics), by their port variable
WORKERS = {p.worker.port_variable for p in standalone(SERVICES).values() if p.worker is not None}
READY = re.compile(r"^([a-z][a-z-]*) +http://127\.0\.0\.1:(\d+) +docs .*/docs +metrics .*/metrics")
PLACED = re.compile(r"simulator: (\d+) placed")
QUIET = re.compile(r"simulator off$")
EVENTS = re.compile(  # other services' counts and probes may come between
    r"events: order (\d+), inventory (\d+)(?:, [a-z-]+ \d+)* \| orders: ([^|]*) \|.* "
    r"stock: (\d+) available"
)
STOPPED = re.compile(r"stopped\. simulator placed (\d+)")
WORKER = re.compile(r"^risk-windows +velocity windows .*\(log .*risk-windows\.log\)")
HELD = re.compile(r"exceptions: (\d+) open \((\d+) held\)")
ANALYTICS = re.compile(
    r"^analytics +http://127\.0\.0\.1:(\d+) +dashboards \S+/dashboards/management .*"
    r"\(log .*analytics\.log\)"
)
FIGURES = re.compile(r"analytics: (\d+) events applied, (\d+) orders, GMV €")

Check = Callable[[re.Match[str]], bool]


class RunningStack:
    """One `shopfloor run` process; a thread hands its output over line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopfloor_devstack.cli", "run"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(
        self, pattern: re.Pattern[str], ok: Check = lambda m: True, timeout: float = 30.0
    ) -> re.Match[str]:
        """The first output line matching `pattern` for which `ok(match)` holds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.fail(
                    f"the stack exited (code {self.process.wait()}) before {pattern.pattern!r}"
                )
            self.output.append(line)
            if (match := pattern.search(line)) and ok(match):
                return match
        self.fail(f"no line matching {pattern.pattern!r} within {timeout:.0f}s")

    def interrupt(self, timeout: float = 20.0) -> int:
        """Ctrl-C; the exit code, and the rest of the output read."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        while (line := self._lines.get(timeout=5)) is not None:
            self.output.append(line)
        return code

    def fail(self, why: str) -> NoReturn:
        pytest.fail(f"{why}; output so far:\n" + "\n".join(self.output), pytrace=False)

    def ensure_stopped(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def processes_mentioning(marker: str) -> list[int]:
    """Live processes with `marker` in their command line or environment (every child of
    the stack inherits SHOPFLOOR_DATA_DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker.encode() in seen:
            found.append(int(entry.name))
    return found


def order_ids(api: str) -> set[str]:
    response = httpx.get(f"{api}/orders", params={"limit": 1000}, timeout=10)
    response.raise_for_status()
    return {row["order_id"] for row in response.json()}


def assert_nothing_left(data_dir: Path, *ports: int) -> None:
    assert not [p for p in ports if port_in_use("127.0.0.1", p)], "a port is still taken"
    assert processes_mentioning(str(data_dir)) == [], "a child process outlived the stack"


def kill_strays(data_dir: Path) -> None:
    # Only processes carrying this test's unique data dir: the ones this test started.
    for pid in processes_mentioning(str(data_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_stack_runs_stops_on_ctrl_c_and_resumes_from_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    broker_port, order_port, inventory_port = free_port(), free_port(), free_port()
    ports = (broker_port, order_port, inventory_port)
    orders, inventory = f"http://127.0.0.1:{order_port}", f"http://127.0.0.1:{inventory_port}"
    others = {variable: free_port() for variable in (*(s.port_variable for s in SPECS), *WORKERS)}
    ports = (*ports, *others.values())
    env = {
        **os.environ,
        **{name: str(port) for name, port in others.items()},
        "SHOPFLOOR_DATA_DIR": str(data_dir),
        "SHOPFLOOR_BROKER_PORT": str(broker_port),
        "ORDER_API__PORT": str(order_port),
        "INVENTORY_API__PORT": str(inventory_port),
        "SHOPFLOOR_SIM_RATE": "20",
    }
    stacks: list[RunningStack] = []
    try:
        first = RunningStack(env)
        stacks.append(first)
        assert_both_ready(first, orders, inventory)
        analytics = f"http://127.0.0.1:{first.wait_for(ANALYTICS)[1]}"  # its own API and port
        first.wait_for(WORKER)  # risk's velocity worker runs beside its service
        first.wait_for(PLACED, lambda m: int(m[1]) > 0)
        # Confirmed needs the whole story: placed -> inventory reserved, risk cleared -> paid.
        first.wait_for(EVENTS, lambda m: int(m[2]) > 0 and status_count(m[3], "confirmed") > 0, 45)
        # The simulated brushing burst trips velocity: its orders past the limit are held.
        first.wait_for(HELD, lambda m: int(m[2]) > 0, 45)
        # The analytics worker read what the services published, and its dashboards answer.
        first.wait_for(FIGURES, lambda m: int(m[1]) > 0 and int(m[2]) > 0, 30)
        board = httpx.get(f"{analytics}/dashboards/management", timeout=10)
        assert board.status_code == 200 and board.json()["orders"] > 0, board.text
        # the simulated purchasing books its receipts with a unit cost: the margin has one
        assert_goods_have_a_cost(analytics)
        counts = httpx.get(f"{orders}/orders/counts", timeout=10).json()
        assert counts.get("confirmed", 0) + counts.get("shipped", 0) > 0, counts
        seen_in_first_run = order_ids(orders)
        stock_in_first_run = stock_versions(inventory)
        assert set(stock_in_first_run) >= {"MUG-WHITE", "TEE-M", "STICKERS-10"}
        assert first.interrupt() == 0, "\n".join(first.output)
        placed = placed_in(first)
        assert placed > 0
        # Every placed order has at least its OrderPlaced in the order store.
        order_published, inventory_published = published_in(first)
        order_published = max(order_published, placed)
        assert_nothing_left(data_dir, *ports)

        # Same data dir and ports, no new traffic: whatever gets published now is the relays
        # refilling the new, empty broker from the stored events.
        second = RunningStack({**env, "SHOPFLOOR_SIM_RATE": "0"})
        stacks.append(second)
        assert_both_ready(second, orders, inventory)
        second.wait_for(ANALYTICS)
        second.wait_for(QUIET)
        second.wait_for(
            EVENTS, lambda m: int(m[1]) >= order_published and int(m[2]) >= inventory_published, 45
        )
        assert seen_in_first_run <= order_ids(orders)
        # every order placed in the first run, read again from the refilled broker
        second.wait_for(FIGURES, lambda m: int(m[2]) >= placed, 45)
        assert_stock_kept(inventory, stock_in_first_run)
        assert second.interrupt() == 0, "\n".join(second.output)
        assert_nothing_left(data_dir, *ports)
    finally:
        for stack in stacks:
            stack.ensure_stopped()
        kill_strays(data_dir)


def assert_goods_have_a_cost(analytics: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while True:
        margin = httpx.get(f"{analytics}/figures/margin", timeout=10).json()
        if float(margin["cost_of_goods"]) > 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert float(margin["cost_of_goods"]) > 0 and margin["units_without_cost"] == 0, margin


def assert_both_ready(stack: RunningStack, *urls: str) -> None:
    """Each service announced its API, /docs and /metrics, and answers /ready."""
    announced = {stack.wait_for(READY, timeout=60)[1] for _ in SERVICES}
    assert announced == set(SERVICES), "\n".join(stack.output)
    for url in urls:
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200, url


def status_count(statuses: str, status: str) -> int:
    """`12` from "3 awaiting payment, 12 confirmed, 4 shipped" and "confirmed"."""
    found = re.search(rf"(\d+) {status}", statuses)
    return int(found[1]) if found else 0


def stock_versions(api: str) -> dict[str, int]:
    """Each SKU's aggregate version, read from GET /stock/{sku}."""
    response = httpx.get(f"{api}/stock", params={"limit": 1000}, timeout=10)
    response.raise_for_status()
    skus = [row["sku"] for row in response.json()]
    return {sku: httpx.get(f"{api}/stock/{sku}", timeout=10).json()["version"] for sku in skus}


def assert_stock_kept(api: str, versions: dict[str, int]) -> None:
    """Every SKU of the first run is still there, at least as far along, stocked in both
    warehouses the simulator received into."""
    for sku, version in versions.items():
        response = httpx.get(f"{api}/stock/{sku}", timeout=10)
        assert response.status_code == 200, (sku, response.text)
        stock = response.json()
        assert stock["version"] >= version, (sku, stock)
        assert {w["warehouse"] for w in stock["warehouses"]} >= {"WH-AMS", "WH-BER"}, stock
        assert stock["on_hand"] > 0, stock


def published_in(stack: RunningStack) -> tuple[int, int]:
    """Events the order and inventory relays had published at the last progress line."""
    matches = [m for line in stack.output if (m := EVENTS.search(line))]
    assert matches, "no progress line:\n" + "\n".join(stack.output)
    order, inventory = int(matches[-1][1]), int(matches[-1][2])
    assert order > 0 and inventory > 0, matches[-1][0]
    return order, inventory


def placed_in(stack: RunningStack) -> int:
    """Orders the simulator placed, from the summary the stack prints when it stops."""
    matches = [m for line in stack.output if (m := STOPPED.search(line))]
    assert matches, "no summary line:\n" + "\n".join(stack.output)
    return int(matches[-1][1])
