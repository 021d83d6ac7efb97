"""What every service's bootstrap assembles the same way: its background loops and its
FastAPI app with the operations endpoints and the error table."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.edge import Handler, Translate
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.settings import BrokerSettings, ConsumerSettings, RelaySettings
from shopfloor_runtime.store import ServiceApplication, SqlStore
from shopfloor_runtime.web import install_error_handlers, ops_router

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Plumbing(Protocol):
    """The settings groups every service has."""

    broker: BrokerSettings
    relay: RelaySettings
    consumer: ConsumerSettings


def messaging(
    service: str,
    app: ServiceApplication,
    sql: SqlStore,
    settings: Plumbing,
    translate: Translate,
    topics: list[str],
    handlers: dict[str, Handler],
) -> tuple[OutboxRelay, TrackedConsumer]:
    """The service's outbox relay (its own topic) and tracked consumer (others' topics)."""
    relay = OutboxRelay(
        service=service,
        app=app,
        translate=translate,
        sql=sql,
        broker=settings.broker,
        settings=settings.relay,
    )
    consumer = TrackedConsumer(
        service=service,
        app=app,
        topics=topics,
        handlers=handlers,
        broker=settings.broker,
        settings=settings.consumer,
    )
    return relay, consumer


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


def service_http(
    *,
    name: str,
    description: str,
    app: ServiceApplication,
    broker: BrokerSettings,
    router: APIRouter,
    errors: dict[type[Exception], int],
    running: Callable[[], AbstractAsyncContextManager[None]],
    state: dict[str, Any],
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running():
            yield

    http = FastAPI(
        title=f"shopfloor {name} service",
        version="0.1.0",
        lifespan=lifespan,
        description=description,
    )
    for key, value in state.items():
        setattr(http.state, key, value)

    async def store_ok() -> bool:
        await asyncio.to_thread(app.recorder.max_notification_id)
        return True

    async def broker_ok() -> bool:
        return await brokerlib.ping(broker)

    http.include_router(router)
    http.include_router(ops_router(name, {"store": store_ok, "broker": broker_ok}))
    install_error_handlers(http, errors)
    return http
