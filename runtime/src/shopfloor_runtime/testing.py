"""Pytest fixtures every service's tests share: fresh ids, a manual clock, the service
under test on SQLite and on a fresh PostgreSQL database, its HTTP client, and the real
parts (the embedded broker). Loaded by the root conftest.py (`pytest_plugins`); a
service's own conftest.py defines only its `service` fixture and what is its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import RecordConflictError
from fastapi.testclient import TestClient
from pydantic import BaseModel
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_devstack.launcher import EmbeddedBroker

from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.settings import BrokerSettings
from shopfloor_runtime.store import ServiceApplication

PG_ADMIN_DSN = os.environ.get("SHOPFLOOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_database(prefix: str = "sf_test") -> Iterator[str]:
    """Create a database with a unique name, yield its DSN, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the session; tests keep apart by using fresh topics or
    fresh consumer groups."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log) as broker:
        yield broker


@pytest.fixture
def own_broker(tmp_path: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that stop and restart it."""
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")  # type: ignore[operator]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def broker_settings(broker: EmbeddedBroker) -> BrokerSettings:
    """Short session timeouts: the embedded broker holds a group join for half of it."""
    return BrokerSettings(
        bootstrap_servers=broker.bootstrap_servers,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


def fresh(prefix: str) -> str:
    """An id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def customer_id() -> str:
    return fresh("customer")


@pytest.fixture
def sku() -> str:
    return fresh("SKU")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Store settings: a SQLite file in the test's own directory, or a fresh PostgreSQL
    database. Every service-level test runs on both."""
    if request.param == "postgres":
        return {"dsn": request.getfixturevalue("pg_dsn")}
    return {"data_dir": str(tmp_path / "data")}


MakeService = Callable[..., Any]


@pytest.fixture
def make_service(store: dict[str, Any], clock: ManualClock) -> Iterator[MakeService]:
    """`make_service(ServiceClass, **settings)`: the service on the test's store and
    clock, without relay or consumer (no broker); closed at teardown."""
    built: list[Any] = []

    def make(service_type: Any, clock: ManualClock = clock, **settings: Any) -> Any:
        config = service_type.settings_type(
            store=store, relay={"enabled": False}, consumer={"enabled": False}, **settings
        )
        service = service_type(config, clock=clock)
        built.append(service)
        return service

    yield make
    for service in reversed(built):
        service.close()  # closing twice is harmless


@pytest.fixture
def client(service: Any) -> TestClient:
    """The HTTP API of the service fixture. Not entered as a context manager: the
    lifespan's background loops (read models, timers) stay off, so tests drive them
    themselves, deterministically."""
    return TestClient(service.http)


def inbound(payload: BaseModel, producer: str, position: int, at: datetime) -> InboundEnvelope:
    """A contract event as a consumer receives it: the `position`-th message of its
    producer's chain, keyed and correlated by the payload's order id (a shipment's
    events, which name several orders, by the first of them, as fulfilment keys them)."""
    order_id = str(getattr(payload, "order_id", None) or payload.order_ids[0])  # type: ignore[attr-defined]
    return InboundEnvelope(
        event_id=uuid.uuid4(),
        event_type=type(payload).__name__,
        schema_version=1,
        occurred_at=at,
        producer=producer,
        aggregate_id=order_id,
        aggregate_version=position,
        correlation_id=order_id,
        position=position,
        previous_position=position - 1,
        payload=payload.model_dump(mode="json"),
    )


def apply_inbound(
    app: ServiceApplication,
    handlers: dict[str, Callable[..., None]],
    envelope: InboundEnvelope,
    payload: BaseModel,
) -> None:
    """Apply one inbound message as the tracked consumer does: one unit of work, one
    `record`, and on a write conflict one careful retry on fresh state (which looks for
    aggregates a first try assumes are new)."""
    for careful in (False, True):
        uow = UnitOfWork(app, careful=careful)
        handlers[envelope.event_type](envelope, payload, uow)
        try:
            app.record(uow.aggregates)
            return
        except RecordConflictError:
            if careful:
                raise
