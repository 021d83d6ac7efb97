"""A real order-service process on PostgreSQL, killed with SIGKILL while it consumes, and
started again: every inventory decision is applied exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from uuid import UUID

import pytest
from shopfloor_contracts.inventory import ReservedLine, StockReserved
from shopfloor_runtime.testing import free_port

from tests.support import ContractProducer, eventually, order_service, place_paid_orders

pytestmark = pytest.mark.integration

ORDERS = 1500


def start_service(broker, dsn: str, log_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ORDER_API__PORT": str(free_port()),
        "ORDER_BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ORDER_BROKER__SESSION_TIMEOUT_MS": "6000",
        "ORDER_BROKER__HEARTBEAT_INTERVAL_MS": "1000",
        "ORDER_STORE__DSN": dsn,
        "ORDER_RULES__REQUIRED_CHECKS": json.dumps(["inventory"]),
        "ORDER_CONSUMER__BATCH_SIZE": "50",
    }
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "order"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def confirmed(service) -> int:
    service.catch_up()
    return service.queries.counts().get("confirmed", 0)


async def test_a_service_killed_while_consuming_applies_each_event_once_after_restart(
    own_broker, pg_dsn, tmp_path
):
    local = order_service(
        own_broker, tmp_path, dsn=pg_dsn, rules={"required_checks": ["inventory"]}
    )
    ids = place_paid_orders(local, ORDERS)
    line = [ReservedLine(sku="SKU-1", qty=1, warehouse="WH-1")]
    await ContractProducer(own_broker).publish(
        [(StockReserved(order_id=i, reservation_id=f"r-{i}", lines=line), i) for i in ids]
    )

    first = start_service(own_broker, pg_dsn, tmp_path / "order-1.log")
    try:
        await eventually(lambda: confirmed(local) >= ORDERS // 5, timeout=90, every=0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done_at_kill = confirmed(local)
    assert done_at_kill < ORDERS, "killed too late to prove anything"

    second = start_service(own_broker, pg_dsn, tmp_path / "order-2.log")
    try:
        await eventually(lambda: confirmed(local) == ORDERS, timeout=120)
    finally:
        second.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status
        assert second.wait(timeout=30) in (0, -signal.SIGTERM)

    for order_id in ids:
        names = [type(e).__name__ for e in local.app.events.get(UUID(order_id))]
        assert names.count("CheckPassed") == 1 and names.count("Confirmed") == 1, names
    local.close()
