"""Real service processes for end-to-end tests: start, wait until ready, kill, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from shopfloor_runtime.testing import free_port


@dataclass
class ServiceProcess:
    module: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        prefix = self.module.upper()
        env = {
            **os.environ,
            **self.env,
            f"{prefix}_API__PORT": str(self.port),
            f"{prefix}_BROKER__SESSION_TIMEOUT_MS": "6000",
            f"{prefix}_BROKER__HEARTBEAT_INTERVAL_MS": "1000",
        }
        self.starts += 1
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                assert self.process is not None and self.process.poll() is None, (
                    f"{self.module} exited; see {self.log_dir}"
                )
                try:
                    if (await client.get(f"{self.url}/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.module} not ready in {timeout}s")
                await asyncio.sleep(0.1)

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.log_dir / f"{self.module}-{self.port}-{self.starts}.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the latest start's log, for a failure message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def prefixed(prefix: str, values: dict[str, str]) -> dict[str, str]:
    """`values` as one service's variables: {"STORE__DSN": x} -> {"ORDER_STORE__DSN": x}."""
    return {f"{prefix}_{k}": v for k, v in values.items()}


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """Poll `check` until it returns something truthy (returned); fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline, last = loop.time() + timeout, None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


async def stays(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 3) -> None:
    """`check` holds the whole time (several ticks and polls of every service)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert await check(), what
        await asyncio.sleep(0.3)
