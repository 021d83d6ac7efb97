"""What a service adds to the dev stack, found the way services themselves are found: each
service's pyproject.toml names a `Part` under the entry-point group `shopfloor.devstack`,
with the same name as its `shopfloor.services` entry (`order = "order.devstack:PART"`).

The part lives in the service's own package (it knows the service's API, statuses and
rules), in a module only the dev stack imports, so no service image loads it. The dev
stack hands every part the same `World` (the simulated shop) and an `Http` to its own
service; a new service edits nothing in here.

A part may also stand alone, for a process that is no store-backed service of that
registry but serves an API of its own (the analytics faust worker): its entry point names
no `shopfloor.services` entry, and its `Part.worker` tells the stack how to start it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

import httpx
from pydantic_settings import BaseSettings
from shopfloor_runtime.registry import SettingsPort

from shopfloor_devstack.errors import StackError

GROUP = "shopfloor.devstack"


@dataclass(frozen=True)
class World:
    """The simulated shop, the same for every part: what it sells, to whom, from where;
    and the stack it runs in."""

    catalogue: Mapping[str, Decimal]  # SKU -> unit price
    customers: tuple[str, ...]
    #: addresses[i]: where customers[i] lives, as the order API takes a shipping address
    addresses: tuple[Mapping[str, str], ...]
    warehouses: tuple[str, ...]
    carriers: tuple[str, ...]
    rate: float  # orders per second the shop front aims at
    urls: Mapping[str, str]  # every service of this stack: name -> base URL
    run_id: str  # unique per run, so one run's idempotency keys never replay another's
    seed: int | None = None

    def shopper(self, index: int) -> dict[str, str]:
        """What a POST /orders says about customers[index]: who, where to, from which
        device and address (each customer shops from one device of their own)."""
        n = index % len(self.customers)
        return {
            "customer_id": self.customers[n],
            "device_id": f"device-{self.customers[n]}",
            "client_ip": f"10.20.{n // 250 % 250}.{n % 250 + 1}",  # a private range
        }


@dataclass
class Failures:
    """Every part's failed calls, counted together: one figure and one last error to show."""

    count: int = 0
    last: str | None = None

    def add(self, message: str) -> None:
        self.count += 1
        self.last = message


class Http:
    """One part's calls to its own service. A failure is counted, never raised, so the
    simulation keeps going while a service is slow or restarting."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, failures: Failures) -> None:
        self.client, self.base_url, self.failures = client, base_url, failures

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        url = f"{self.base_url}{path}"
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.failures.add(f"{method} {url} -> {type(error).__name__}: {error}")
            return None

    def json(self, what: str, response: httpx.Response | None) -> Any | None:
        """The answer's JSON, or None after counting the failure (None: already counted)."""
        if response is None:
            return None
        if not response.is_success:
            self.failures.add(f"{what} -> HTTP {response.status_code}: {response.text[:200]}")
            return None
        try:
            return response.json()
        except ValueError as error:
            self.failures.add(f"{what} -> not JSON: {error}")
            return None

    async def call(self, what: str, method: str, path: str, **kwargs: Any) -> Any | None:
        return self.json(what, await self.send(method, path, **kwargs))


class Traffic(Protocol):
    """What one service's simulated users do. `prepare()` runs for every part before any
    part's `run()` (the warehouses are stocked before the first order arrives); `run()`
    goes on until cancelled."""

    @property
    def preparing(self) -> str:
        """What prepare() does, for the start line ("" for nothing)."""
        ...

    @property
    def doing(self) -> str:
        """What run() does, for the start line ("" for nothing worth saying)."""
        ...

    async def prepare(self) -> None: ...

    async def run(self) -> None: ...

    def progress(self) -> str:
        """Its counts for the progress line: "12 placed, 10 paid"."""
        ...

    def summary(self) -> str:
        """Its totals for the line printed once everything stopped."""
        ...


@dataclass(frozen=True)
class Probe:
    """What the progress line shows of one service: `label: read(client, base_url)`. A read
    that fails shows as `?`."""

    label: str
    read: Callable[[httpx.AsyncClient, str], Awaitable[str]]


@dataclass(frozen=True)
class Companion:
    """A worker a service needs beside it, without an HTTP API of its own (risk's velocity
    worker): started once its service is ready, watched like it, stopped before it."""

    name: str  # its log is <logs>/<name>.log, and it is called so in the stack's lines
    module: str  # `python -m <module>`
    env_prefix: str  # the stack sets <prefix>BROKER__BOOTSTRAP_SERVERS
    #: the variable naming its data directory, set to <data dir>/<name> (None: it keeps none)
    data_dir_variable: str | None = None
    what: str = ""  # one phrase for its start line


@dataclass(frozen=True)
class Worker(SettingsPort):
    """A process with an HTTP API of its own that is no registry service (the analytics
    faust worker): started beside the services, announced with its links once it answers
    `/ready`, watched like them, stopped with the companions. Its settings class gives its
    variable prefix and default port, as a service's does (<prefix>API__PORT moves it)."""

    module: str  # `python -m <module>`
    #: the stack sets <prefix>BROKER__BOOTSTRAP_SERVERS, <prefix>API__HOST, <prefix>API__PORT
    settings: type[BaseSettings]
    #: the variable naming its data directory, set to <data dir>/<name> (None: it keeps none)
    data_dir_variable: str | None = None
    #: what its start line shows after its URL: (label, path), e.g. ("docs", "/docs")
    links: tuple[tuple[str, str], ...] = (("docs", "/docs"), ("metrics", "/metrics"))


@dataclass(frozen=True)
class Part:
    """One service's share of the dev stack; every piece may be missing."""

    traffic: Callable[[World, Http], Traffic] | None = None
    probe: Probe | None = None
    companions: tuple[Companion, ...] = ()
    #: settings the dev stack gives the service so a demo moves at a watchable pace
    #: (env var -> value, e.g. a 30 s wave window instead of 5 min); the environment wins
    pace: Mapping[str, str] = field(default_factory=dict)
    #: only in a part of its own (no registry service by its name): the process it starts
    worker: Worker | None = None


def parts(names: Iterable[str]) -> dict[str, Part]:
    """The parts of the services `names`, in that order; a service without one has none."""
    points = {point.name: point for point in entry_points(group=GROUP)}
    found = {name: _load(points[name]) for name in names if name in points}
    for name, part in found.items():
        if part.worker is not None:
            raise StackError(
                f"the dev-stack part of the {name} service names a worker: a service's own "
                "workers are its companions"
            )
    return found


def standalone(services: Iterable[str]) -> dict[str, Part]:
    """The parts that name none of the installed `services`, by name, in port order: each
    starts a worker of its own (`Part.worker`)."""
    known = set(services)
    found: list[tuple[int, str, Part]] = []
    for point in entry_points(group=GROUP):
        if point.name in known:
            continue
        part = _load(point)
        if part.worker is None:
            raise StackError(
                f"entry point {GROUP} {point.name} names no installed service and starts no worker"
            )
        found.append((part.worker.default_port, point.name, part))
    return {name: part for _, name, part in sorted(found, key=lambda one: one[:2])}


def _load(point: EntryPoint) -> Part:
    try:
        part = point.load()
    except Exception as error:  # noqa: BLE001 - any import failure: one line, not a trace
        raise StackError(
            f"cannot load the dev-stack part of {point.name} ({point.value}): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(part, Part):
        raise StackError(f"entry point {GROUP} {point.name} must name a Part, got {part!r}")
    return part
