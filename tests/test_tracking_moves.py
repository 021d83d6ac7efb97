"""Consumer positions moved in one transaction with the events, each only from where the
batch found it: on the real stores (SQLite file, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import RecordConflictError
from shopfloor_runtime.recorders import TrackingMove
from shopfloor_runtime.settings import StoreSettings
from shopfloor_runtime.store import ServiceApplication, eventsourcing_env
from shopfloor_runtime.testing import postgres_database

pytestmark = pytest.mark.integration


class Counter(Aggregate):
    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


class CounterApp(ServiceApplication):
    name = "moves"


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CounterApp]:
    if request.param == "sqlite":
        yield CounterApp(eventsourcing_env(StoreSettings(data_dir=tmp_path), "moves"))
        return
    with postgres_database() as dsn:
        application = CounterApp(eventsourcing_env(StoreSettings(dsn=dsn), "moves"))
        yield application
        application.close()


def test_several_positions_move_with_the_events_in_one_transaction(app: CounterApp) -> None:
    counter = Counter()
    app.record([counter], moves=[TrackingMove("a#0@x", 0, 5), TrackingMove("a#1@x", 0, 7)])
    assert app.tracked_positions(["a#0@x", "a#1@x", "a#2@x"]) == {
        "a#0@x": 5,
        "a#1@x": 7,
        "a#2@x": 0,
    }
    counter.count_one()
    app.record([counter], moves=[TrackingMove("a#0@x", 5, 9)])
    assert app.tracked_positions(["a#0@x", "a#1@x"]) == {"a#0@x": 9, "a#1@x": 7}
    assert app.repository.get(counter.id, version=99).count == 1


def test_a_move_from_a_stale_position_fails_the_whole_transaction(app: CounterApp) -> None:
    app.record([], moves=[TrackingMove("a#0@x", 0, 5)])
    counter = Counter()
    # Another worker moved a#0 to 5 while this one still believed it at 3.
    with pytest.raises(RecordConflictError):
        app.record([counter], moves=[TrackingMove("a#1@x", 0, 2), TrackingMove("a#0@x", 3, 8)])
    assert app.tracked_positions(["a#0@x", "a#1@x"]) == {"a#0@x": 5, "a#1@x": 0}
    assert list(app.events.get(counter.id)) == []  # nothing half-applied


def test_two_workers_moving_a_first_position_at_once_one_wins(app: CounterApp) -> None:
    app.record([], moves=[TrackingMove("a#0@x", 0, 4)])
    with pytest.raises(RecordConflictError):
        app.record([Counter()], moves=[TrackingMove("a#0@x", 0, 6)])
    assert app.tracked_positions(["a#0@x"]) == {"a#0@x": 4}


def test_positions_of_many_names_are_read_at_once(app: CounterApp) -> None:
    names = [f"redrive:{i}" for i in range(1_200)]
    app.record([], moves=[TrackingMove(names[7], 0, 1), TrackingMove(names[1_100], 0, 1)])
    positions = app.tracked_positions(names)
    assert len(positions) == 1_200
    assert {name for name, position in positions.items() if position} == {names[7], names[1_100]}
