"""The outbox relay against the real embedded broker: every event, in order, keyed."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.support import envelopes, order_service, place_paid_orders, read_topic

pytestmark = pytest.mark.integration


def _stories(messages: list[dict]) -> dict[str, list[int]]:
    stories: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        stories[m["aggregate_id"]].append(m["aggregate_version"])
    return stories


def _expected_positions(service, topic: str = "orders.v1") -> list[int]:
    notifications = service.app.recorder.select_notifications(start=1, limit=100_000)
    return [
        n.id
        for n in notifications
        if any(
            out.topic == topic
            for out in service.relay.translate(service.app.mapper.to_domain_event(n))
        )
    ]


async def _drain(relay) -> None:
    while await relay.publish_once():
        pass


async def test_relay_restarted_midway_publishes_every_event_once_in_order(own_broker, tmp_path):
    service = order_service(own_broker, tmp_path, relay={"batch_size": 40})
    place_paid_orders(service, 60)
    first = service.relay
    await first.start()
    for _ in range(2):  # part of the log, then the relay process "stops"
        await first.publish_once()
    await first.stop()

    restarted = order_service(own_broker, tmp_path, relay={"batch_size": 40}).relay
    await restarted.start()
    await _drain(restarted)
    await restarted.stop()

    messages = envelopes(await read_topic(own_broker.bootstrap_servers, "orders.v1"))
    positions = sorted(m["position"] for m in messages)
    assert positions == _expected_positions(service)  # all of them, none twice
    for story in _stories(messages).values():
        assert story == sorted(story)  # one order's events keep their order
    assert len({m["event_id"] for m in messages}) == len(messages)


async def test_messages_are_keyed_by_order_and_chained_per_partition(own_broker, tmp_path):
    service = order_service(own_broker, tmp_path)
    ids = place_paid_orders(service, 30)
    await service.relay.start()
    await _drain(service.relay)
    await service.relay.stop()

    for topic in ("orders.v1", "orders.private.v1"):  # one chain per topic and partition
        records = await read_topic(own_broker.bootstrap_servers, topic)
        assert {r.key.decode() for r in records} == set(ids)
        last: dict[int, int] = defaultdict(int)
        for record, message in zip(records, envelopes(records), strict=True):
            assert record.key.decode() == message["aggregate_id"] == message["correlation_id"]
            assert message["previous_position"] == last[record.partition]
            last[record.partition] = message["position"]
        assert sorted(m["position"] for m in envelopes(records)) == _expected_positions(
            service, topic
        )


async def test_relay_crash_before_saving_its_position_repeats_but_loses_nothing(
    own_broker, tmp_path, monkeypatch
):
    service = order_service(own_broker, tmp_path, relay={"batch_size": 1000})
    place_paid_orders(service, 10)
    relay = service.relay
    await relay.start()

    def crash(*_state):
        raise KeyboardInterrupt("killed after the broker acked, before the state was saved")

    monkeypatch.setattr(relay.states, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        await relay.publish_once()
    await relay.stop()
    monkeypatch.undo()

    again = order_service(own_broker, tmp_path).relay
    await again.start()
    await _drain(again)
    await again.stop()

    messages = envelopes(await read_topic(own_broker.bootstrap_servers, "orders.v1"))
    expected = _expected_positions(service)
    assert sorted({m["position"] for m in messages}) == expected
    assert len(messages) == 2 * len(expected)  # at-least-once: each repeat keeps its id
    assert len({m["event_id"] for m in messages}) == len(expected)


async def test_republish_command_sends_the_whole_log_again(own_broker, tmp_path):
    service = order_service(own_broker, tmp_path)
    place_paid_orders(service, 5)
    await service.relay.start()
    await _drain(service.relay)
    await service.relay.republish_all()
    await _drain(service.relay)
    await service.relay.stop()

    messages = envelopes(await read_topic(own_broker.bootstrap_servers, "orders.v1"))
    assert len(messages) == 2 * len(_expected_positions(service))


async def test_republish_requested_while_the_relay_runs_starts_it_over(
    own_broker, pg_dsn, tmp_path
):
    service = order_service(own_broker, tmp_path, dsn=pg_dsn, relay={"batch_size": 10})
    place_paid_orders(service, 10)
    relay = service.relay
    await relay.start()
    await relay.publish_once()
    # an operator runs `python -m order republish` against the same store meanwhile
    assert order_service(own_broker, tmp_path, dsn=pg_dsn).relay.states.reset() == 10
    await _drain(relay)
    await relay.stop()

    messages = envelopes(await read_topic(own_broker.bootstrap_servers, "orders.v1"))
    expected = _expected_positions(service)
    assert sorted({m["position"] for m in messages}) == expected
    assert sorted(m["position"] for m in messages).count(expected[0]) == 2
