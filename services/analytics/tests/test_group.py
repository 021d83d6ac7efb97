"""The group's figures (analytics.group): workers holding different partitions answer
with the sum of their figures, which is the figures of all the traffic; a worker that
does not answer, or a partition two workers count during a rebalance, leaves the view
marked incomplete instead of wrong. The other worker is a real HTTP server here; the
broker test (test_worker_on_the_broker.py) runs two real workers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from analytics.figures import Figures
from analytics.group import GroupFigures
from analytics.harness import Message, traffic
from analytics.processing import Processor
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.testing import free_port

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
EVERY = set(range(12))
LOW, HIGH = set(range(6)), set(range(6, 12))


@pytest.fixture(scope="module")
def recorded() -> list[Message]:
    return traffic(300, START, seed=5)


def figures_of(messages: list[Message], partitions: set[int] = EVERY) -> Figures:
    """The figures of the messages on `partitions`, as the worker holding them has them."""
    mine = [m for m in messages if partition_for(m[1] or b"", 12) in partitions]
    processor = Processor({}, Figures())
    assert processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(mine)) == []
    return processor.figures


def as_json(figures: Figures) -> Any:
    return json.loads(json.dumps(figures.snapshot()))


@pytest.fixture
async def other_worker() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Another worker's `GET /figures/held`: it answers whatever `answer` holds."""
    answer: dict[str, Any] = {}

    async def held(request: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/figures/held", held)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", answer
    finally:
        await runner.cleanup()


def group(own: Figures, held: set[int], members: dict[str, set[int]]) -> GroupFigures:
    own.held, own.newest_us = held, 1_000  # as the worker's table recovery leaves them
    return GroupFigures(
        own,
        "http://me:1",
        12,
        lambda: {"http://me:1": held, **members},
        timeout_s=1.0,
        max_age_s=0.0,
    )


def test_the_halves_of_the_partitions_add_up_to_the_whole(recorded):
    low, high = figures_of(recorded, LOW), figures_of(recorded, HIGH)
    assert as_json(low) != as_json(high)

    both = low.copy()
    both.add_snapshot(as_json(high))

    assert as_json(both) == as_json(figures_of(recorded))
    assert as_json(low) == as_json(figures_of(recorded, LOW))  # the copy left it alone


async def test_a_worker_adds_the_other_worker_s_figures_to_its_own(recorded, other_worker):
    url, answer = other_worker
    answer.update(
        partitions=sorted(HIGH),
        newest_event_us=2_000,
        families=as_json(figures_of(recorded, HIGH)),
    )
    own = figures_of(recorded, LOW)

    view = await group(own, LOW, {url: HIGH}).current()

    assert view.complete and view.covered == EVERY
    assert as_json(view.figures) == as_json(figures_of(recorded))
    assert view.newest_event_us == 2_000
    assert [(m.worker, m.partitions, m.error) for m in view.members] == [
        ("http://me:1", sorted(LOW), None),
        (url, sorted(HIGH), None),
    ]
    assert as_json(own) == as_json(figures_of(recorded, LOW))


async def test_a_worker_that_does_not_answer_leaves_the_view_incomplete(recorded):
    own = figures_of(recorded, LOW)
    gone = f"http://127.0.0.1:{free_port()}"

    view = await group(own, LOW, {gone: HIGH}).current()

    assert not view.complete and view.covered == LOW
    assert as_json(view.figures) == as_json(own)
    [_, missing] = view.coverage()["workers"]
    assert missing["worker"] == gone and missing["partitions"] == sorted(HIGH)
    assert "ClientConnectorError" in missing["error"]


async def test_a_partition_two_workers_count_during_a_rebalance_is_counted_once(
    recorded, other_worker
):
    url, answer = other_worker
    still = LOW | {6}  # the other worker shows partition 6 it is giving up
    answer.update(
        partitions=sorted(still),
        newest_event_us=None,
        families=as_json(figures_of(recorded, still)),
    )
    own = figures_of(recorded, HIGH)

    view = await group(own, HIGH, {url: LOW}).current()

    assert not view.complete and view.covered == HIGH
    assert as_json(view.figures) == as_json(own)
    assert "partitions [6] are counted by another worker" in (view.members[1].error or "")


async def test_a_worker_alone_answers_with_its_own_figures_as_they_change(recorded):
    own = figures_of(recorded, EVERY)
    alone = group(own, EVERY, {"http://left:2": set()})  # a member holding nothing

    view = await alone.current()

    assert view.figures is own and view.complete
    assert alone.latest().figures is own
