"""What the benchmarks share: services as separate processes, a consumer that sees every
partition of a topic, CPU accounting per process, percentiles, the machine description
and the results file. Used by `bench.place_orders` and `bench.reservations`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shopfloor_contracts.topics import Topic
from shopfloor_devstack.launcher import EmbeddedBroker

# Imported for its side effect too: aiokafka then never creates a topic by looking it up,
# so a bench consumer cannot create a topic with the wrong partition count before the relay.
from shopfloor_runtime import broker as _brokerlib  # noqa: F401
from shopfloor_runtime.testing import PG_ADMIN_DSN, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
READY_TIMEOUT_S = 60.0
TOPIC_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
PROGRESS_EVERY_S = 2.0


class BenchError(Exception):
    """A failure that ends the run with one readable line."""


def block_missing_sniffio() -> None:
    """httpcore runs `import sniffio` for every lock and event it creates; with sniffio not
    installed (anyio 4.16 no longer depends on it) each failed import searches sys.path,
    about a fifth of a load generator's CPU. A None entry in sys.modules makes that import
    fail at once, and httpcore then assumes asyncio, which is what the benchmarks run."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


# -- a service as a separate process ----------------------------------------------------------


@dataclass
class Service:
    name: str  # the module: "order", "inventory"
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(
    name: str,
    broker: EmbeddedBroker,
    tmp: Path,
    dsn: str | None,
    *,
    env: Mapping[str, str] | None = None,
    log_name: str | None = None,
) -> Service:
    """`python -m <name>` configured only through `<NAME>_*` variables: the caller's own
    variables with that prefix are dropped, then the port, broker, session timeout and
    store are set (a DSN for PostgreSQL, else SQLite under `<tmp>/data`), then `env`."""
    prefix = name.upper().replace("-", "_") + "_"
    port = free_port()
    child = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    child.update(
        {
            f"{prefix}API__PORT": str(port),
            f"{prefix}BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            f"{prefix}BROKER__SESSION_TIMEOUT_MS": "6000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if dsn is None:
        child[f"{prefix}STORE__DATA_DIR"] = str(tmp / "data")
    else:
        child[f"{prefix}STORE__DSN"] = dsn
    child.update(env or {})
    log_path = tmp / (log_name or f"{name}.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", name],
            env=child,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Service(name, process, port, log_path)


async def wait_ready(service: Service, label: str) -> None:
    """Until `GET /ready` answers 200; a readable BenchError if it exits or times out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        while True:
            code = service.process.poll()
            if code is not None:
                raise BenchError(
                    f"the {service.name} service ({label}) exited with code {code} before it "
                    f"was ready; see its log: {service.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the {service.name} service ({label}) did not answer GET /ready with 200 "
                    f"within {READY_TIMEOUT_S:.0f}s; see its log: {service.log_path}"
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
                f"  {service.name} service did not stop in {STOP_TIMEOUT_S:.0f}s after SIGTERM; "
                "killing it",
                flush=True,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, time.monotonic() - began


def stopped_cleanly(exit_code: int | None) -> bool:
    # uvicorn re-raises the SIGTERM it handled, so a clean stop exits with -SIGTERM.
    return exit_code in (0, -signal.SIGTERM)


# -- a consumer on every partition of one topic -------------------------------------------


async def wait_for_topic(bootstrap: str, topic: Topic) -> list[int]:
    """The relays create their topics once they are up; /ready does not wait for that."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        found: list[int] = []
        while True:
            if topic.name in await admin.list_topics():
                [described] = await admin.describe_topics([topic.name])
                found = sorted(p["partition"] for p in described["partitions"])
                if len(found) == topic.partitions:
                    return found
            if time.monotonic() > deadline:
                raise BenchError(
                    f"topic {topic.name} did not appear with {topic.partitions} partitions "
                    f"within {TOPIC_TIMEOUT_S:.0f}s (found {len(found)})"
                )
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def start_consumer(bootstrap: str, topic: Topic) -> AIOKafkaConsumer:
    """No group: assigned to every partition of `topic`, from the beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=25,
        max_partition_fetch_bytes=4 << 20,
    )
    partitions = await wait_for_topic(bootstrap, topic)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in partitions]
        consumer.assign(tps)
        # A fresh broker: the beginning is "before the first message", and reading from it
        # cannot miss one published while the consumer was being positioned.
        await consumer.seek_to_beginning(*tps)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


# -- CPU accounting -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """user + system CPU seconds of one process (Linux /proc), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_cpu_s() -> float:
    """CPU seconds of every process named postgres* on this machine (server, backends,
    WAL writer, checkpointer): the local PostgreSQL server the bench uses."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
        except OSError:
            continue
        total += process_cpu_s(int(entry.name)) or 0.0
    return total


def machine_busy_s() -> float:
    """CPU seconds spent not idle, all cores together, since boot (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return math.nan
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / _TICK


class CpuMeter:
    """CPU seconds used by named processes between `start()` and `stop()`. The bench
    process itself is measured with `time.process_time()`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._begin: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall_s = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {"bench": time.process_time()}
        for name, pid in self.pids.items():
            used = process_cpu_s(pid)
            sample[name] = math.nan if used is None else used
        sample["postgres"] = postgres_cpu_s()
        sample["machine"] = machine_busy_s()
        sample["wall"] = time.perf_counter()
        return sample

    def start(self) -> None:
        self._begin = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.wall_s = end["wall"] - self._begin["wall"]
        self.used = {
            name: round(end[name] - self._begin[name], 2) for name in end if name != "wall"
        }
        return self.used

    def cores(self) -> dict[str, float]:
        """Average cores busy per part over the interval (1.0 = one core all the time)."""
        if not self.wall_s:
            return {}
        return {name: round(s / self.wall_s, 2) for name, s in self.used.items()}


class DbMeter:
    """Transactions committed and rolled back in some PostgreSQL databases between
    `start()` and `stop()` (pg_stat_database; its counters lag by up to a second)."""

    def __init__(self, databases: Mapping[str, str]) -> None:
        self.databases = dict(databases)  # label -> DSN
        self._begin: dict[str, tuple[int, int]] = {}
        self.used: dict[str, dict[str, int]] = {}

    def _sample(self) -> dict[str, tuple[int, int]]:
        import psycopg

        names = {dsn.rsplit("/", 1)[1]: label for label, dsn in self.databases.items()}
        found: dict[str, tuple[int, int]] = {}
        try:
            with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_clear_snapshot()")
                rows = conn.execute(
                    "SELECT datname, xact_commit, xact_rollback FROM pg_stat_database "
                    "WHERE datname = ANY(%s)",
                    (list(names),),
                ).fetchall()
        except psycopg.Error:
            return found
        for name, commits, rollbacks in rows:
            found[names[name]] = (int(commits), int(rollbacks))
        return found

    def start(self) -> None:
        self._begin = self._sample()

    def stop(self) -> dict[str, dict[str, int]]:
        end = self._sample()
        self.used = {
            label: {
                "commits": end[label][0] - self._begin[label][0],
                "rollbacks": end[label][1] - self._begin[label][1],
            }
            for label in end
            if label in self._begin
        }
        return self.used


# -- the services' own metrics -------------------------------------------------------------

#: Counters and histogram sums of the shared runtime worth a difference over a window.
SERVICE_METRICS = (
    "shopfloor_batch_processing_seconds_sum",
    "shopfloor_batch_processing_seconds_count",
    "shopfloor_events_consumed_total",
    "shopfloor_events_published_total",
)


async def scrape(service: Service) -> dict[str, float]:
    """`GET /metrics`: the SERVICE_METRICS samples, keyed `name{label=value,...}`; empty
    when the service does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
            text = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SERVICE_METRICS:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 4) for k, v in after.items() if v != before.get(k)}


# -- numbers ----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def rnd(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# -- the machine and the results file -------------------------------------------------------


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


def source_version() -> dict[str, Any]:
    """The commit the services ran from, and the files changed since (other people edit
    the tree while benchmarks run)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "contracts", "runtime", "services")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "changed": changed.splitlines()}


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cpu_count']} cores ({info.get('cpu_model', 'unknown CPU')}), "
        f"{info.get('memory_gb', '?')} GB, Python {info['python']}"
        + (f", PostgreSQL {info['postgres']}" if info.get("postgres") else "")
    )


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(benchmark: str, stamp: str, payload: dict[str, Any]) -> Path:
    """`bench/results/<benchmark>-<UTC time>.json` (git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{benchmark}-{stamp}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out
