"""Dead letters, operated: list, show, redrive after a fix, on the real broker."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import pytest
from order.bootstrap import OrderService
from order.domain import order_id_for_key
from prometheus_client import REGISTRY
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.servicecli import main

from tests.support import ContractProducer, order_service, placement
from tests.test_tracked_consumer import INVENTORY_CHECK, events_named, pump, reserved

pytestmark = pytest.mark.integration


async def cli(service, capsys, *argv: str) -> tuple[int, str, str]:
    """`python -m order <argv>` on the service's settings, in a thread (it runs its own
    event loop)."""
    code = await asyncio.to_thread(main, OrderService, list(argv), service.settings)
    out, err = capsys.readouterr()
    return code, out, err


def ref_of(listing: str, event_type: str) -> str:
    return next(line.split()[0] for line in listing.splitlines() if f"  {event_type}  " in line)


async def test_a_dead_letter_is_redriven_once_after_the_fix_and_bad_bytes_stay(
    own_broker, tmp_path, capsys
):
    service = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    key = "order-that-comes-later"
    order_id = str(order_id_for_key(key))
    producer = ContractProducer(own_broker)
    partition = partition_for(order_id.encode(), INVENTORY.partitions)
    # A reservation for an order this service does not know yet, and garbage.
    await producer.publish([reserved(order_id)])
    await producer.publish_raw("inventory.v1", order_id, b"\x00not an envelope", partition)
    before = _dead_letters_sent()
    await service.consumer.start()
    try:
        await pump(service.consumer, lambda: _dead_letters_sent() - before == 2)
    finally:
        await service.consumer.stop()

    code, out, _ = await cli(service, capsys, "dead-letters")
    assert code == 0
    assert out.splitlines()[0] == "order: 2 pending of 2 dead letters on dlq.order"
    assert "OrderNotFound" in out and "undecodable envelope" in out
    letter, garbage = ref_of(out, "StockReserved"), ref_of(out, "(undecodable)")

    # Not fixed yet: the order still does not exist. The letter stays pending.
    code, out, _ = await cli(service, capsys, "dead-letters", "redrive", letter)
    assert code == 1 and "still failing (stays pending): OrderNotFound" in out

    # The fix: the order arrives (placed and paid); now the reservation applies, once.
    order = service.app.place_order(placement(), key).order
    service.app.pay_order(order.id, order.total, "card", "pay-1")
    code, out, _ = await cli(service, capsys, "dead-letters", "redrive", letter)
    assert code == 0 and f"{letter}  applied  StockReserved" in out
    assert service.app.get_order(UUID(order_id)).status == "confirmed"
    code, out, _ = await cli(service, capsys, "dead-letters", "redrive", letter)
    assert code == 0 and f"{letter}  already" in out
    assert events_named(service, order_id, "CheckPassed") == 1

    code, out, _ = await cli(service, capsys, "dead-letters")
    assert out.splitlines()[0] == "order: 1 pending of 2 dead letters on dlq.order"
    assert letter not in out.split()
    code, out, _ = await cli(service, capsys, "dead-letters", "--all")
    assert "redriven" in out and "pending" in out

    code, out, _ = await cli(service, capsys, "dead-letters", "show", garbage)
    shown = json.loads(out)
    assert shown["state"] == "pending"
    assert shown["headers"]["dlq.error"].startswith("undecodable envelope")
    assert shown["message"].endswith("not an envelope")
    code, out, _ = await cli(service, capsys, "dead-letters", "redrive", "--all")
    assert code == 1 and "0 of 1 dead letters redriven" in out


async def test_mistakes_get_one_line_and_change_nothing(own_broker, tmp_path, capsys):
    service = order_service(own_broker, tmp_path)
    code, _, err = await cli(service, capsys, "dead-letters", "redrive", "0:99")
    assert (
        code == 1
        and err.strip() == "order: dead-letters: no dead letter 0:99 (see the list for the refs)"
    )
    code, _, err = await cli(service, capsys, "dead-letters", "redrive")
    assert code == 2 and "name the letters" in err
    code, _, err = await cli(service, capsys, "dead-letters", "purge")
    assert code == 2 and err.count("\n") == 1
    code, out, _ = await cli(service, capsys, "dead-letters")
    assert code == 0 and out.strip() == "order: 0 pending of 0 dead letters on dlq.order"


def _dead_letters_sent() -> float:
    return (
        REGISTRY.get_sample_value(
            "shopfloor_dead_letters_total", {"service": "order", "topic": "inventory.v1"}
        )
        or 0.0
    )
