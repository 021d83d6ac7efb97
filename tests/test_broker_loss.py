"""The embedded broker forgets everything when it stops. The relay must notice and
refill the topics from the store; consumers must neither skip nor repeat anything."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from eventsourcing.domain import Aggregate, event
from shopfloor_contracts.orders import OrderPlaced
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.settings import ConsumerSettings, StoreSettings
from shopfloor_runtime.store import ServiceApplication, eventsourcing_env
from shopfloor_runtime.testing import broker_settings

from tests.support import eventually, order_service, place_paid_orders

pytestmark = pytest.mark.integration


class Seen(Aggregate):
    """One per applied OrderPlaced: a repeat would show up as a second one."""

    @event("Seen")
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id


class Listener(ServiceApplication):
    name = "listener"


def listener(broker, data_dir) -> tuple[Listener, TrackedConsumer]:
    app = Listener(env=eventsourcing_env(StoreSettings(data_dir=data_dir), "listener"))

    def on_placed(envelope, event, uow):
        uow.add(Seen(order_id=event.order_id))

    consumer = TrackedConsumer(
        service="listener",
        app=app,
        topics=["orders.v1"],
        handlers={OrderPlaced: on_placed},
        broker=broker_settings(broker),
        settings=ConsumerSettings(batch_size=100),
    )
    return app, consumer


def seen_orders(app: Listener) -> list[str]:
    notifications = app.recorder.select_notifications(start=1, limit=100_000)
    return [app.mapper.to_domain_event(n).order_id for n in notifications]


@contextlib.asynccontextmanager
async def running(*loops):
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(loop(stopping)) for loop in loops]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def test_a_broker_that_lost_its_data_is_refilled_and_nothing_is_skipped_or_repeated(
    own_broker, tmp_path
):
    service = order_service(own_broker, tmp_path / "order", relay={"incarnation_check_s": 0.3})
    app, consumer = listener(own_broker, tmp_path / "listener")
    first = place_paid_orders(service, 40)

    async with running(service.relay.run, consumer.run):
        await eventually(lambda: len(seen_orders(app)) == 40)
        own_broker.stop()
        own_broker.start()  # same address, empty: no topics, no offsets
        second = place_paid_orders(service, 25)
        await eventually(lambda: len(seen_orders(app)) >= 65, timeout=60)
        top = service.app.recorder.max_notification_id()
        await eventually(
            lambda: service.relay.state and service.relay.state.position == top, timeout=60
        )
        await eventually(lambda: consumer.applied >= 25)

    seen = seen_orders(app)
    assert sorted(seen) == sorted(first + second)  # every order once: no skip, no repeat
    assert service.relay.published > 2 * 40  # the first 40 orders' events went out twice


async def test_a_consumer_that_rejoined_before_its_topic_came_back_gets_its_partitions(
    own_broker, tmp_path, caplog
):
    """The race behind a flaky run of the test above: the broker comes back empty, the
    consumer rejoins its group while `orders.v1` does not exist (so it is assigned
    nothing), and only then does the relay refill the topic. The consumer must notice
    the topic's partitions on its own and rejoin for them, within seconds (measured
    with aiokafka's default metadata age of 5 minutes: nothing in 90 s)."""
    service = order_service(own_broker, tmp_path / "order", relay={"incarnation_check_s": 0.3})
    app, consumer = listener(own_broker, tmp_path / "listener")
    first = place_paid_orders(service, 5)

    async with running(service.relay.run):
        await eventually(lambda: service.relay.published >= 5)
    caplog.set_level(logging.WARNING, logger="aiokafka.coordinator.assignors.range")
    async with running(consumer.run):
        await eventually(lambda: len(seen_orders(app)) == 5)
        own_broker.stop()
        own_broker.start()  # same address, empty: no topics, no offsets, no group

        def rejoined_without_the_topic() -> bool:
            return "No partition metadata for topic orders.v1" in caplog.text

        await eventually(rejoined_without_the_topic, timeout=30)
        second = place_paid_orders(service, 5)
        async with running(service.relay.run):  # refills orders.v1, then the new orders
            await eventually(lambda: len(seen_orders(app)) >= 10, timeout=30)
    assert sorted(seen_orders(app)) == sorted(first + second)
