"""Risk's rules on the real broker and PostgreSQL: the risk service and its velocity worker
as deployed (each its own process; the worker tells only counts over the limit), fed the
order service's and inventory's events as their relays publish them, judged by what risk
publishes on risk.v1 (each order's latest OrderAssessed).

- A burst from one customer trips velocity at exactly the configured count (4 in 10 min:
  the 5th order is flagged, the 4th is not), though the burst's orders are spread over
  partitions, the velocity worker is killed with SIGKILL in the middle and restarted
  (its window state recovered from the changelog, not reset, not doubled) and every
  order is re-published.
- Every rule that upstream facts trip has a case that flags and a near miss that does
  not. (The time-driven rules, not shipped in 15 min and the escalation after 30 min, run
  on the injected clock: services/risk/tests/test_cases.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from risk.windows.app import TABLE
from risk.windows.harness import WorkerProcess, order, read_all
from shopfloor_contracts.inventory import RejectedLine, ReservationRejected
from shopfloor_contracts.orders import PaymentRejected
from shopfloor_contracts.orders_private import OrderRecipientRecorded, RecipientAddress
from shopfloor_contracts.topics import ORDERS, RISK
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.fausttables import SEAL_KEY
from shopfloor_runtime.testing import broker_settings, free_port, fresh, postgres_database

from tests.processes import ServiceProcess, prefixed
from tests.support import ContractProducer, envelopes, read_topic

pytestmark = pytest.mark.integration

LIMIT = 4  # the default velocity limit: more than 4 orders in 10 min from one key
GOOD = {"name": "Ada", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115"}


@dataclass
class Stack:
    broker: EmbeddedBroker
    risk: ServiceProcess
    worker: WorkerProcess
    #: one for the module: the producers' positions go on from test to test, as a relay's
    upstream: Upstream

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("risk-rules")
    with (
        EmbeddedBroker(port=free_port(), log_path=logs / "tansu.log") as broker,
        postgres_database("sf_risk_rules") as dsn,
    ):
        common = {"BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        risk = ServiceProcess(
            "risk",
            {**prefixed("RISK", common), "RISK_STORE__DSN": dsn, "RISK_VELOCITY_WAIT_S": "0.5"},
            logs,
        )
        worker = WorkerProcess(broker.bootstrap_servers, logs)  # tells counts over the limit
        try:
            risk.start()
            worker.start()
            asyncio.run(risk.ready())
            yield Stack(broker, risk, worker, Upstream(broker))
        finally:
            worker.kill()
            risk.stop()


class Upstream:
    """The order service's and inventory's relays: envelopes with positions and partition
    chains, built once so that the same bytes can be sent again (a re-publish)."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.order_relay = ContractProducer(broker, producer="order")
        self.inventory_relay = ContractProducer(broker, producer="inventory")
        self.settings = broker_settings(broker)

    def placed(
        self,
        order_id: str,
        customer: str,
        at: datetime,
        total: str = "20.00",
        address: dict[str, str] | None = None,
    ) -> list[tuple[str, int, str, bytes]]:
        """OrderPlaced and its recipient, each order its own address and device."""
        fingerprint = fresh("addr")
        placed = order(order_id, customer, at, fingerprint, fresh("device"), Decimal(total))
        recipient = OrderRecipientRecorded(
            order_id=order_id,
            customer_id=customer,
            shipping_address=RecipientAddress(**{**GOOD, **(address or {})}, country="DE"),
            address_fingerprint=fingerprint,
            placed_at=at,
        )
        return [
            self._envelope(self.order_relay, placed, order_id),
            self._envelope(self.order_relay, recipient, order_id),
        ]

    def fact(
        self, producer: ContractProducer, payload: BaseModel, order_id: str
    ) -> list[tuple[str, int, str, bytes]]:
        return [self._envelope(producer, payload, order_id)]

    @staticmethod
    def _envelope(
        producer: ContractProducer, payload: BaseModel, key: str
    ) -> tuple[str, int, str, bytes]:
        topic, partition, value = producer.envelope(payload, key)
        return topic, partition, key, value

    async def send(self, messages: list[tuple[str, int, str, bytes]]) -> None:
        producer = brokerlib.producer(self.settings)
        await producer.start()
        try:
            for topic, partition, key, value in messages:
                await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
        finally:
            await producer.stop()


async def verdicts(bootstrap: str, order_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Each order's latest OrderAssessed on risk.v1: the reasons, by rule."""
    latest: dict[str, dict[str, Any]] = {}
    for e in envelopes(await read_topic(bootstrap, RISK.name, timeout=30)):
        p = e["payload"]
        if e["event_type"] != "OrderAssessed" or p["order_id"] not in order_ids:
            continue
        if p["order_id"] not in latest or p["assessment"] > latest[p["order_id"]]["assessment"]:
            latest[p["order_id"]] = p
    return {order_id: p["reasons"] for order_id, p in latest.items()}


async def settle(
    bootstrap: str, expected: dict[str, list[str]], timeout: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Until every order's latest assessment names exactly the expected rules."""
    deadline = time.monotonic() + timeout
    while True:
        found = await verdicts(bootstrap, set(expected))
        rules = {o: sorted(r["rule"] for r in found.get(o, [])) for o in expected}
        if all(o in found for o in expected) and rules == expected:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"risk.v1 says {rules}, expected {expected}")
        await asyncio.sleep(0.5)


def spread(n: int) -> list[str]:
    """`n` order ids over at least three orders.v1 partitions."""
    while True:
        ids = [fresh("order") for _ in range(n)]
        if len({partition_for(i.encode(), ORDERS.partitions) for i in ids}) >= 3:
            return ids


async def test_a_burst_trips_velocity_at_exactly_the_limit_through_a_kill_and_a_republish(
    stack: Stack,
) -> None:
    upstream = stack.upstream
    customer = fresh("burst")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    ids = spread(LIMIT + 2)
    orders = [
        upstream.placed(o, customer, base + timedelta(seconds=20 * k)) for k, o in enumerate(ids)
    ]

    await upstream.send([m for o in orders[:3] for m in o])
    await settle(stack.bootstrap, {o: [] for o in ids[:3]})  # under the limit: cleared
    changelog = f"risk-windows-{TABLE}-changelog"
    deadline = time.monotonic() + 60
    while not [
        r
        for r in await read_all(stack.bootstrap, changelog, ORDERS.partitions)
        if r.key != SEAL_KEY
    ]:
        assert time.monotonic() < deadline, "the velocity worker wrote no window state"
        await asyncio.sleep(0.5)

    stack.worker.kill()  # SIGKILL, mid-burst
    stack.worker.start()
    _, _, entries = await stack.worker.recovered()
    assert entries >= 3  # the burst's first orders came back from the changelog: not reset

    await upstream.send([m for o in orders[3:] for m in o])
    await upstream.send([m for o in orders for m in o])  # every order published again
    found = await settle(
        stack.bootstrap,
        {o: ["velocity.customer"] if k >= LIMIT else [] for k, o in enumerate(ids)},
    )
    for k in (LIMIT, LIMIT + 1):  # 5 and 6 orders: never 7 or more, nothing counted twice
        [reason] = found[ids[k]]
        assert (
            reason["detail"] == f"{k + 1} orders in 10 min from customer {customer}, limit {LIMIT}"
        )


async def test_every_rule_upstream_facts_trip_has_a_case_and_a_near_miss(stack: Stack) -> None:
    upstream = stack.upstream
    now = datetime.now(UTC).replace(microsecond=0)
    blacklisted = fresh("fraudster")
    async with httpx.AsyncClient(base_url=stack.risk.url, timeout=10) as http:
        entry = {
            "kind": "customer",
            "value": blacklisted,
            "reason": "chargebacks",
            "added_by": "ops",
        }
        assert (await http.post("/blacklist", json=entry)).status_code == 201

    expected: dict[str, list[str]] = {}
    messages: list[tuple[str, int, str, bytes]] = []

    def case(rule: str | None, customer: str | None = None, **placed: Any) -> str:
        order_id = fresh("order")
        messages.extend(upstream.placed(order_id, customer or fresh("cust"), now, **placed))
        expected[order_id] = [rule] if rule else []
        return order_id

    case("address.postcode", address={"postal_code": "1011"})
    case(None, address={"postal_code": "10115"})
    case("address.missing", address={"city": ""})
    case("large.amount", total="1000.01")
    case(None, total="1000.00")
    case("blacklist.customer", customer=blacklisted)
    case(None, customer=fresh("honest"))
    for reason, rule in (
        ("amount_mismatch", "payment.amount_mismatch"),
        ("method_unavailable", None),
    ):
        order_id = case(rule)
        refused = PaymentRejected(
            order_id=order_id,
            amount=Decimal("19.00"),
            method="card",
            reference=fresh("pay"),
            reason=reason,
            detail="as the payment provider said",
        )
        messages.extend(upstream.fact(upstream.order_relay, refused, order_id))
    short = case("stock.shortage")
    rejected = ReservationRejected(
        order_id=short, short_lines=[RejectedLine(sku="TEE-M", requested=1, available=0)]
    )
    messages.extend(upstream.fact(upstream.inventory_relay, rejected, short))

    await upstream.send(messages)
    found = await settle(stack.bootstrap, expected)
    assert all(
        r["detail"] and r["level"] in ("ordinary", "serious") for rs in found.values() for r in rs
    )
