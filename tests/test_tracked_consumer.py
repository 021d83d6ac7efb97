"""The tracked consumer against the real embedded broker: dead letters, gaps, crashes."""

from __future__ import annotations

import json
from collections import defaultdict
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from eventsourcing.persistence import OperationalError
from prometheus_client import REGISTRY
from shopfloor_contracts.inventory import ReservedLine, StockReserved
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.metrics import GAPS

from tests.support import ContractProducer, order_service, place_paid_orders, read_topic

pytestmark = pytest.mark.integration

INVENTORY_CHECK = {"required_checks": ["inventory"]}


def reserved(order_id: str) -> tuple[StockReserved, str]:
    line = ReservedLine(sku="SKU-1", qty=1, warehouse="WH-1")
    return StockReserved(
        order_id=order_id, reservation_id=f"res-{order_id}", lines=[line]
    ), order_id


async def pump(consumer, until, rounds: int = 200) -> None:
    """Poll the consumer until the condition holds (bounded)."""
    for _ in range(rounds):
        if until():
            return
        await consumer.poll_once()
    assert until(), "consumer did not get there"


def statuses(service, ids) -> list[str]:
    return [service.app.get_order(UUID(i)).status for i in ids]


def events_named(service, order_id: str, name: str) -> int:
    return sum(type(e).__name__ == name for e in service.app.events.get(UUID(order_id)))


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_next_is_applied(
    own_broker, tmp_path
):
    service = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    [order_id] = place_paid_orders(service, 1)
    producer = ContractProducer(own_broker)
    partition = partition_for(order_id.encode(), INVENTORY.partitions)
    # An order nobody placed, on the same partition and after the garbage: its handler
    # fails in the same batch, which is then retried one message at a time.
    unknown = str(uuid4())
    while partition_for(unknown.encode(), INVENTORY.partitions) != partition:
        unknown = str(uuid4())
    await producer.publish_raw("inventory.v1", order_id, b"{not json", partition)
    await producer.publish([reserved(unknown)])
    _, _, valid = producer.envelope(*reserved(order_id))
    bad_payload = json.loads(valid)
    del bad_payload["payload"]["lines"]
    await producer.publish_raw(
        "inventory.v1", order_id, json.dumps(bad_payload).encode(), partition
    )
    await producer.publish([reserved(order_id)])  # the next good message

    consumer = service.consumer
    await consumer.start()
    try:
        await pump(consumer, lambda: statuses(service, [order_id]) == ["confirmed"])
        dead = await read_topic(own_broker.bootstrap_servers, "dlq.order")
        while len(dead) < 3:
            await consumer.poll_once()
            dead = await read_topic(own_broker.bootstrap_servers, "dlq.order")
    finally:
        await consumer.stop()

    assert len(dead) == 3
    errors = {dict(r.headers)["dlq.error"].split(b":")[0]: r for r in dead}
    assert set(errors) == {
        b"undecodable envelope",
        b"invalid StockReserved payload",
        b"OrderNotFound",
    }
    garbage = errors[b"undecodable envelope"]
    assert garbage.value == b"{not json" and garbage.key == order_id.encode()
    source = dict(garbage.headers)
    assert source["dlq.topic"] == b"inventory.v1"
    assert int(source["dlq.partition"]) == partition
    assert source["dlq.offset"] == b"0"  # where the garbage was
    assert events_named(service, order_id, "Confirmed") == 1


async def test_a_missed_message_makes_the_consumer_reread_instead_of_skipping(own_broker, tmp_path):
    service = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    by_partition: dict[int, list[str]] = defaultdict(list)
    for order_id in place_paid_orders(service, 24):
        by_partition[partition_for(order_id.encode(), INVENTORY.partitions)].append(order_id)
    partition, ids = max(by_partition.items(), key=lambda kv: len(kv[1]))
    assert len(ids) >= 3
    await ContractProducer(own_broker).publish([reserved(i) for i in ids])

    # The group's committed offset points past the first two messages: as after a broker
    # that was refilled while the consumer's offsets still pointed into the old one.
    tp = TopicPartition("inventory.v1", partition)
    committer = AIOKafkaConsumer(
        bootstrap_servers=own_broker.bootstrap_servers,
        group_id=service.consumer.group_id,
        enable_auto_commit=False,
    )
    await committer.start()
    committer.assign([tp])
    await committer.commit({tp: 2})
    await committer.stop()

    gaps_before = GAPS.labels("order", "inventory.v1")._value.get()
    consumer = service.consumer
    await consumer.start()
    try:
        await pump(consumer, lambda: set(statuses(service, ids)) == {"confirmed"})
    finally:
        await consumer.stop()
    assert GAPS.labels("order", "inventory.v1")._value.get() > gaps_before
    assert all(events_named(service, i, "Confirmed") == 1 for i in ids)


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs, nothing is committed."""


async def test_a_consumer_killed_mid_batch_and_restarted_has_no_duplicate_effect(
    own_broker, tmp_path
):
    service = order_service(
        own_broker, tmp_path, rules=INVENTORY_CHECK, consumer={"batch_size": 100}
    )
    ids = place_paid_orders(service, 120)
    await ContractProducer(own_broker).publish([reserved(i) for i in ids])

    doomed = service.consumer
    handle = doomed.applier.handlers["StockReserved"]
    seen = {"n": 0}

    def dies_on_the_fifth(envelope, event, uow):
        seen["n"] += 1
        if seen["n"] == 5:
            raise Killed
        handle(envelope, event, uow)

    doomed.applier.handlers["StockReserved"] = dies_on_the_fifth
    await doomed.start()
    with pytest.raises(Killed):
        for _ in range(50):
            await doomed.poll_once()
    await doomed.stop()
    assert "confirmed" not in statuses(service, ids)  # the batch died with the process

    reborn = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    await reborn.consumer.start()
    try:
        await pump(reborn.consumer, lambda: set(statuses(reborn, ids)) == {"confirmed"})
    finally:
        await reborn.consumer.stop()
    assert all(events_named(reborn, i, "CheckPassed") == 1 for i in ids)
    assert all(events_named(reborn, i, "Confirmed") == 1 for i in ids)


async def test_a_worker_with_a_stale_position_applies_nothing_twice(own_broker, tmp_path, pg_dsn):
    """Worker A keeps its positions in memory between polls. Its partition goes to worker
    B for a while (a rebalance), then comes back with messages A believes new: the
    position's move fails, A reads it again and applies only what B did not."""
    a = order_service(own_broker, tmp_path / "a", pg_dsn, rules=INVENTORY_CHECK)
    b = order_service(own_broker, tmp_path / "b", pg_dsn, rules=INVENTORY_CHECK)
    ids = place_paid_orders(a, 60)
    partition = partition_for(ids[0].encode(), INVENTORY.partitions)
    ids = [i for i in ids if partition_for(i.encode(), INVENTORY.partitions) == partition][:6]
    producer = ContractProducer(own_broker)
    tp = TopicPartition(INVENTORY.name, partition)
    records = []
    for offset, order_id in enumerate(ids):
        topic, _, value = producer.envelope(*reserved(order_id))
        records.append(ConsumerRecord(topic, partition, offset, 0, 0, None, value, None, 0, 0, []))

    def no_dead_letters(dead):
        raise AssertionError(dead.error)

    a.consumer.applier.apply_poll({tp: records[:2]}, no_dead_letters)
    b.consumer.applier.apply_poll({tp: records[:4]}, no_dead_letters)  # B had it meanwhile
    result = a.consumer.applier.apply_poll({tp: records[2:]}, no_dead_letters)[tp]

    assert (result.applied, result.duplicates) == (2, 2)
    assert set(statuses(a, ids)) == {"confirmed"}
    assert all(events_named(a, i, "CheckPassed") == 1 for i in ids)
    a.close()
    b.close()


async def test_a_store_failure_in_a_handler_is_retried_not_dead_lettered(own_broker, tmp_path):
    service = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    [order_id] = place_paid_orders(service, 1)
    topic, partition, value = ContractProducer(own_broker).envelope(*reserved(order_id))
    tp = TopicPartition(topic, partition)
    record = ConsumerRecord(topic, partition, 0, 0, 0, None, value, None, 0, 0, [])
    handle, calls = service.consumer.applier.handlers["StockReserved"], {"n": 0}

    def store_away_twice(envelope, event, uow):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        handle(envelope, event, uow)

    def no_dead_letters(dead):
        raise AssertionError(f"dead-lettered: {dead.error}")

    service.consumer.applier.handlers["StockReserved"] = store_away_twice
    for _ in range(2):  # the poll fails as a whole; nothing moves
        with pytest.raises(OperationalError):
            service.consumer.applier.apply_poll({tp: [record]}, no_dead_letters)
    assert statuses(service, [order_id]) == ["paid"]
    assert service.consumer.applier.apply_poll({tp: [record]}, no_dead_letters)[tp].applied == 1
    assert statuses(service, [order_id]) == ["confirmed"]
    service.close()


async def test_a_gap_on_one_partition_holds_only_that_partition_and_dead_letters_once(
    own_broker, tmp_path
):
    service = order_service(own_broker, tmp_path, rules=INVENTORY_CHECK)
    ids = place_paid_orders(service, 40)
    gapped = ids[0]
    p = partition_for(gapped.encode(), INVENTORY.partitions)
    elsewhere = [i for i in ids if partition_for(i.encode(), INVENTORY.partitions) != p][:3]
    producer = ContractProducer(own_broker)
    await producer.publish_raw("inventory.v1", gapped, b"garbage", p)
    lost = str(uuid4())
    while partition_for(lost.encode(), INVENTORY.partitions) != p:
        lost = str(uuid4())
    producer.envelope(*reserved(lost))  # written by the producer on p, never delivered
    await producer.publish([reserved(gapped), *(reserved(i) for i in elsewhere)])

    def count(name, labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    dead = {"service": "order", "topic": "inventory.v1"}
    dead_before = count("shopfloor_dead_letters_total", dead)
    gaps_before = count("shopfloor_consumer_gaps_total", dead)
    consumer = service.consumer
    await consumer.start()
    try:
        await pump(consumer, lambda: set(statuses(service, elsewhere)) == {"confirmed"})
        for _ in range(30):  # keep meeting the gap
            await consumer.poll_once()
    finally:
        await consumer.stop()
    assert count("shopfloor_consumer_gaps_total", dead) - gaps_before >= 3
    assert count("shopfloor_dead_letters_total", dead) - dead_before == 1  # garbage once
    assert statuses(service, [gapped]) == ["paid"]  # never applied past the gap
    service.close()
