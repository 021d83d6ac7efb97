"""`shopfloor run` end to end: the stack starts, takes simulated traffic, stops cleanly on
Ctrl-C with nothing left running, and a second run resumes from the data directory while
the relay refills the new, empty broker."""

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
from shopfloor_runtime.launcher import port_in_use
from shopfloor_runtime.testing import free_port

pytestmark = pytest.mark.integration

TRAFFIC = re.compile(r"simulator: (\d+) placed.*\| (\d+) events published")
QUIET = re.compile(r"simulator off \| (\d+) events published")
STOPPED = re.compile(r"stopped\. simulator placed (\d+)")

Check = Callable[[re.Match[str]], bool]


class RunningStack:
    """One `shopfloor run` process; a thread hands its output over line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopfloor_runtime.cli", "run"],
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
    broker_port, api_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "SHOPFLOOR_DATA_DIR": str(data_dir),
        "SHOPFLOOR_BROKER_PORT": str(broker_port),
        "ORDER_API__PORT": str(api_port),
        "SHOPFLOOR_SIM_RATE": "20",
    }
    stacks: list[RunningStack] = []
    try:
        first = RunningStack(env)
        stacks.append(first)
        first.wait_for(TRAFFIC, lambda m: int(m[1]) > 0 and int(m[2]) > 0)
        seen_in_first_run = order_ids(api)
        assert first.interrupt() == 0, "\n".join(first.output)
        placed = placed_in(first)
        assert_nothing_left(data_dir, broker_port, api_port)

        # Same data dir and ports, no new traffic: whatever gets published now is the relay
        # refilling the new, empty broker from the stored events.
        second = RunningStack({**env, "SHOPFLOOR_SIM_RATE": "0"})
        stacks.append(second)
        second.wait_for(QUIET, lambda m: int(m[1]) >= placed)
        assert seen_in_first_run <= order_ids(api)
        assert second.interrupt() == 0, "\n".join(second.output)
        assert_nothing_left(data_dir, broker_port, api_port)
    finally:
        for stack in stacks:
            stack.ensure_stopped()
        kill_strays(data_dir)


def placed_in(stack: RunningStack) -> int:
    """Orders the simulator placed, from the summary the stack prints when it stops."""
    matches = [m for line in stack.output if (m := STOPPED.search(line))]
    assert matches, "no summary line:\n" + "\n".join(stack.output)
    placed = int(matches[-1][1])
    assert placed > 0
    return placed
