"""Operating the parts: starting the broker, readiness of a service."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient
from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_runtime.testing import free_port

from tests.support import order_service

pytestmark = pytest.mark.integration


def test_starting_the_broker_on_a_taken_port_says_so_in_one_line():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError) as error:
            EmbeddedBroker(port=port).start()
    assert f"127.0.0.1:{port} is already in use" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_stopped_broker_leaves_its_port_free():
    broker = EmbeddedBroker(port=free_port()).start()
    broker.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", broker.port))


def test_ready_reports_the_broker_and_the_store(own_broker, tmp_path):
    up = order_service(
        own_broker, tmp_path / "up", relay={"enabled": False}, consumer={"enabled": False}
    )
    with TestClient(up.http) as client:
        ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"store": True, "broker": True}}

    own_broker.stop()
    with TestClient(up.http) as client:
        down = client.get("/ready")
    assert down.status_code == 503
    assert down.json()["checks"] == {"store": True, "broker": False}
    up.close()
