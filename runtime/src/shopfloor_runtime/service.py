"""The service kit: what every service assembles the same way, written once.

A service subclasses `Service` and says only what is its own: its name, its application,
its translation, its policies, its read models, its routes and error table, and any
background loops of its own. The kit builds the store wiring, the outbox relay, the
tracked consumer and the FastAPI app (with /health, /ready, /metrics and the error
shape), runs the loops beside the API, and closes everything again. See
docs/adding-a-service.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Generic, TypeVar

from fastapi import APIRouter, FastAPI
from shopfloor_contracts.topics import Topic

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.edge import Handlers, Translate
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.settings import ServiceSettings
from shopfloor_runtime.store import ServiceApplication, SqlStore, eventsourcing_env, schema_lock
from shopfloor_runtime.web import ErrorTable, install_error_handlers, ops_router

log = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
S = TypeVar("S", bound=ServiceSettings)
A = TypeVar("A", bound=ServiceApplication)


class Service(ABC, Generic[S, A]):
    """One assembled service. Subclasses set the class attributes and the hooks below;
    `Service(settings, clock)` builds it (tables created under a lock, so two processes
    starting on one new database do not race)."""

    #: as on topics, consumer groups and dead letters: "order", "service-desk"
    name: ClassVar[str]
    #: one or two sentences for the OpenAPI page and the registry
    description: ClassVar[str]
    settings_type: ClassVar[type[ServiceSettings]]
    #: the other services' topics it consumes
    consumes: ClassVar[tuple[Topic, ...]] = ()
    #: domain error -> HTTP status (or status and body), see shopfloor_runtime.web
    errors: ClassVar[ErrorTable] = {}

    def __init__(self, settings: S | None = None, clock: Clock | None = None) -> None:
        self.settings: S = settings or self.settings_type()  # type: ignore[assignment]
        self.clock = clock or SystemClock()
        with schema_lock(self.settings.store):
            self.sql = SqlStore(self.settings.store, self.name)
            try:
                self.app: A = self.application(eventsourcing_env(self.settings.store, self.name))
            except BaseException:
                self.sql.close()  # a service that cannot start leaves no pool open
                raise
            self.relay = OutboxRelay(
                service=self.name,
                app=self.app,
                translate=self.translation(),
                sql=self.sql,
                broker=self.settings.broker,
                settings=self.settings.relay,
            )
            self.consumer = TrackedConsumer(
                service=self.name,
                app=self.app,
                topics=[topic.name for topic in self.consumes],
                handlers=self.handlers(),
                broker=self.settings.broker,
                settings=self.settings.consumer,
            )
            self.projectors: list[Projector] = self.read_models()
        self.http = self._http()

    # -- what each service says for itself ----------------------------------------------

    @abstractmethod
    def application(self, env: dict[str, str]) -> A:
        """The service's eventsourcing application on the store `env` names (`self.sql`,
        the same database for tables that are not event streams, is open already)."""

    @abstractmethod
    def translation(self) -> Translate:
        """Which stored domain events are published, as what (its translation.py)."""

    def handlers(self) -> Handlers:
        """Its policies, by the contract class each one handles."""
        return {}

    def read_models(self) -> list[Projector]:
        """Projections of its own log, caught up beside the API."""
        return []

    @abstractmethod
    def router(self) -> APIRouter:
        """Its routes (its api.py)."""

    def state(self) -> dict[str, Any]:
        """What its routes find on `request.app.state`."""
        return {}

    def loops(self) -> list[Loop]:
        """Background loops of its own (deadlines, timers), run beside the API."""
        return []

    def closing(self) -> None:
        """Release what the service opened itself, before the store closes."""

    # -- what the kit does for every service --------------------------------------------

    def running(self) -> AbstractAsyncContextManager[None]:
        """Background work beside the API: read models, own loops, relay, consumer."""
        settings = self.settings
        return background(
            [
                *(projector.run for projector in self.projectors),
                *self.loops(),
                *([self.relay.run] if settings.relay.enabled else []),
                *([self.consumer.run] if settings.consumer.enabled and self.consumes else []),
            ]
        )

    def catch_up(self) -> int:
        """Bring every read model up to the end of the log now; returns events applied."""
        return sum(projector.catch_up() for projector in self.projectors)

    def rebuild(self) -> int:
        """Drop the read models and build them again from the whole log."""
        return sum(projector.rebuild() for projector in self.projectors)

    def close(self) -> None:
        """Safe to call twice."""
        self.closing()
        self.app.close()
        self.sql.close()

    def _http(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        http = FastAPI(
            title=f"shopfloor {self.name} service",
            version="0.1.0",
            lifespan=lifespan,
            description=self.description,
        )
        for key, value in self.state().items():
            setattr(http.state, key, value)

        async def store_ok() -> bool:
            await asyncio.to_thread(self.app.recorder.max_notification_id)
            return True

        async def broker_ok() -> bool:
            return await brokerlib.ping(self.settings.broker)

        http.include_router(self.router())
        http.include_router(ops_router(self.name, {"store": store_ok, "broker": broker_ok}))
        install_error_handlers(http, self.errors)
        return http


@contextlib.asynccontextmanager
async def background(loops: list[Loop]) -> AsyncIterator[None]:
    """Run the loops beside the API; on the way out, ask them to stop and wait."""
    stopping = asyncio.Event()
    # relay, projectors, consumer and timers each use worker threads; the default pool
    # (cores + 4) is too small for them on a 2-core machine
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
    tasks = [asyncio.create_task(loop(stopping)) for loop in loops]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def every(seconds: float, work: Callable[[], object], what: str) -> Loop:
    """A loop that calls `work` (in a worker thread) every `seconds` until stopped; a
    failing call is logged and tried again on the next beat (durable deadlines: the
    work itself decides what is due)."""

    async def loop(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.to_thread(work)
            except Exception as error:  # noqa: BLE001 - tried again next beat
                log.warning("%s failed: %s", what, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), seconds)

    return loop
