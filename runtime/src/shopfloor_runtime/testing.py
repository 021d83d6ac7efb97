"""Pytest fixtures for tests that need the real parts: the embedded broker and a fresh
PostgreSQL database. Loaded by the root conftest.py (`pytest_plugins`)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from shopfloor_devstack.launcher import EmbeddedBroker

from shopfloor_runtime.settings import BrokerSettings

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
