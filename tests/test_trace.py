"""`shopfloor trace ORDER_ID` against the real embedded broker: one order's events from
every topic, in order, its dead letters with their errors, and nothing of other orders."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from shopfloor_contracts.fulfilment import PickLine, WaveReleased
from shopfloor_contracts.inventory import ReservedLine, StockReserved, StockReturned
from shopfloor_contracts.risk import OrderAssessed, Reason
from shopfloor_contracts.topics import INVENTORY
from shopfloor_devstack.cli import main
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.testing import free_port

from tests.support import ContractProducer, order_service, place_paid_orders, read_topic

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Story:
    bootstrap: str
    traced: str  # the order the tests trace
    other: str  # placed, paid and reserved like the traced one
    unknown: str  # never placed; its reservation is dead-lettered


def reserved(order_id: str) -> tuple[StockReserved, str]:
    line = ReservedLine(sku="SKU-1", qty=1, warehouse="WH-1")
    payload = StockReserved(order_id=order_id, reservation_id=f"res-{order_id}", lines=[line])
    return payload, order_id


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """One broker and one order service for the module: two orders placed and paid, their
    reservations, a return keyed by SKU, and three poison messages for the order
    service's consumer (two about the traced order, one about an order nobody placed)."""
    tmp = tmp_path_factory.mktemp("trace")
    with EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log") as broker:
        service = order_service(broker, tmp, rules={"required_checks": ["inventory"]})
        traced, other = place_paid_orders(service, 2)
        story = Story(broker.bootstrap_servers, traced, other, str(uuid4()))
        try:
            asyncio.run(_play(broker, service, story))
            yield story
        finally:
            service.close()


async def _play(broker: EmbeddedBroker, service, story: Story) -> None:
    producer = ContractProducer(broker)
    partition = partition_for(story.traced.encode(), INVENTORY.partitions)
    await producer.publish_raw(INVENTORY.name, story.traced, b"{not json", partition)
    _, _, valid = producer.envelope(*reserved(story.traced))
    bad = json.loads(valid)
    del bad["payload"]["lines"]
    await producer.publish_raw(INVENTORY.name, story.traced, json.dumps(bad).encode(), partition)
    returned = StockReturned(sku="SKU-1", warehouse="WH-1", qty=1, order_id=story.traced)
    reservations = [reserved(i) for i in (story.unknown, story.traced, story.other)]
    await producer.publish([*reservations, (returned, "SKU-1")])
    await _publish_all(service)
    await service.consumer.start()
    try:
        for _ in range(200):
            dead = await read_topic(story.bootstrap, "dlq.order")
            if len(dead) == 3 and _confirmed(service, story.traced, story.other):
                break
            await service.consumer.poll_once()
        assert len(dead) == 3 and _confirmed(service, story.traced, story.other)
    finally:
        await service.consumer.stop()
    await _publish_all(service)  # OrderConfirmed
    wave = str(uuid4())  # fulfilment's wave events are keyed by wave id, not by order
    await ContractProducer(broker, "fulfilment").publish(
        [(released_wave(wave, story.traced), wave)]
    )
    await ContractProducer(broker, "risk").publish([(assessed(story.traced), story.traced)])


def assessed(order_id: str) -> OrderAssessed:
    """A late re-assessment: the customer was blacklisted after confirmation."""
    reason = Reason(
        rule="blacklist.customer",
        level="serious",
        detail="customer cust-1 is blacklisted: chargebacks",
        inputs={"customer": "cust-1"},
    )
    return OrderAssessed(
        order_id=order_id,
        customer_id="cust-1",
        assessment=2,
        outcome="flagged",
        level="serious",
        hold=True,
        queue="specialist",
        exception_id=str(uuid4()),
        reasons=[reason],
        assessed_at=datetime.now(UTC),
    )


def released_wave(wave: str, order_id: str) -> WaveReleased:
    now = datetime.now(UTC)
    line = PickLine(
        sequence=1,
        bin="B-01-1",
        zone="B",
        sku="SKU-1",
        qty=1,
        shipment_id=f"shp-{order_id}",
        order_id=order_id,
    )
    return WaveReleased(
        wave_id=wave,
        warehouse="WH-1",
        zone="B",
        sequence=1,
        shipment_ids=[line.shipment_id],
        order_ids=["another", order_id],
        pick_list=[line],
        trigger="size",
        opened_at=now,
        released_at=now,
    )


async def _publish_all(service) -> None:
    await service.relay.start()
    try:
        while await service.relay.publish_once():
            pass
    finally:
        await service.relay.stop()


def _confirmed(service, *ids: str) -> bool:
    return all(service.app.get_order(UUID(i)).status == "confirmed" for i in ids)


def trace(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_the_orders_events_from_every_topic_are_printed_in_the_order_they_occurred(story, capsys):
    code, lines, err = trace(capsys, story.traced, "--bootstrap", story.bootstrap)

    assert (code, err) == (0, [])
    header, events = lines[0], [line.split() for line in lines[1:]]
    assert header.startswith(f"order {story.traced}: 11 events (")
    assert "orders.v1 3" in header and "orders.private.v1 1" in header
    assert "inventory.v1 3" in header and "dlq.order 2" in header
    assert "fulfilment.v1 1" in header and "risk.v1 1" in header
    stories = [(e[1].split("[")[0], e[2], e[3]) for e in events if e[3] != "DeadLetter"]
    assert stories == [
        ("orders.v1", "order", "OrderPlaced"),
        ("orders.private.v1", "order", "OrderRecipientRecorded"),
        ("orders.v1", "order", "OrderPaid"),
        ("inventory.v1", "inventory", "StockReserved"),  # the one without lines
        ("inventory.v1", "inventory", "StockReserved"),
        ("inventory.v1", "inventory", "StockReturned"),  # keyed by SKU, names the order
        ("orders.v1", "order", "OrderConfirmed"),
        ("fulfilment.v1", "fulfilment", "WaveReleased"),  # names it among its orders
        ("risk.v1", "risk", "OrderAssessed"),
    ]
    times = [datetime.fromisoformat(e[0]) for e in events]
    assert times == sorted(times)
    returned = next(line for line in lines if "StockReturned" in line)
    assert "sku=SKU-1 warehouse=WH-1 qty=1" in returned


def test_other_orders_and_their_dead_letters_are_left_out(story, capsys):
    code, lines, _ = trace(capsys, story.traced, "--bootstrap", story.bootstrap)

    assert code == 0
    text = "\n".join(lines)
    assert story.other not in text and story.unknown not in text
    assert "OrderNotFound" not in text


def test_a_dead_letter_about_the_order_is_shown_with_its_error(story, capsys):
    _, lines, _ = trace(capsys, story.traced, "--bootstrap", story.bootstrap)

    dead = [line for line in lines if " DeadLetter " in line]
    assert len(dead) == 2
    assert all(line.split()[1].startswith("dlq.order[0]@") for line in dead)
    assert any("undecodable message from inventory.v1[" in line for line in dead)
    assert any("undecodable envelope" in line for line in dead)
    assert any("StockReserved from inventory.v1[" in line for line in dead)
    assert any("invalid StockReserved payload" in line for line in dead)
    # A dead letter comes after the message it holds: it failed when consumed.
    assert lines.index(dead[0]) > next(i for i, x in enumerate(lines) if "StockReturned" in x)


def test_json_lines_carry_the_full_envelopes_and_the_dead_letters(story, capsys):
    code, lines, err = trace(capsys, story.traced, "--bootstrap", story.bootstrap, "--json")

    assert code == 0 and len(err) == 1 and err[0].startswith(f"order {story.traced}: 11 events")
    documents = [json.loads(line) for line in lines]
    placed, recipient = documents[0], documents[1]
    assert (placed["topic"], placed["key"]) == ("orders.v1", story.traced)
    assert placed["envelope"]["event_type"] == "OrderPlaced"
    assert placed["envelope"]["payload"]["destination"]["country"] == "DE"
    assert "shipping_address" not in placed["envelope"]["payload"]
    assert (recipient["topic"], recipient["key"]) == ("orders.private.v1", story.traced)
    assert recipient["envelope"]["payload"]["shipping_address"]["name"] == "Ada"
    assert {"event_id", "position", "previous_position", "causation_id"} <= set(placed["envelope"])
    dead = [d for d in documents if "dead_letter" in d]
    assert {d["dead_letter"]["service"] for d in dead} == {"order"}
    garbage = next(d for d in dead if d["envelope"] is None)
    assert garbage["value"] == "{not json"
    assert garbage["dead_letter"]["error"].startswith("undecodable envelope")
    assert garbage["dead_letter"]["topic"] == "inventory.v1"


def test_an_order_with_no_events_exits_1_with_one_line(story, capsys, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_BOOTSTRAP", story.bootstrap)  # instead of --bootstrap
    missing = str(uuid4())

    code, lines, err = trace(capsys, missing)

    assert (code, lines) == (1, [])
    assert len(err) == 1 and err[0].startswith(f"shopfloor: no events for order {missing} (")


def test_an_unreachable_broker_exits_1_with_one_line_and_no_traceback():
    command = Path(sys.executable).parent / "shopfloor"
    bootstrap = f"127.0.0.1:{free_port()}"

    done = subprocess.run(
        [command, "trace", str(uuid4()), "--bootstrap", bootstrap],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [f"shopfloor: no Kafka broker answers at {bootstrap}"]
