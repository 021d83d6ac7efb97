"""The velocity worker's pure parts: counting (risk.velocity), what an order contributes
and what a count says (risk.windows.translation), the rules file as the worker reads it,
and its settings. The worker on the real broker: test_windows.py."""

from __future__ import annotations

import json
import logging
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError
from risk.velocity import Placed, Tally, bucket_of, from_micros, observe, reach_us, to_micros
from risk.windows.harness import order, order_message
from risk.windows.rules_file import RulesFile
from risk.windows.settings import WindowsSettings
from risk.windows.translation import keyed_orders, observed_message, order_placed
from shopfloor_contracts.registry import EVENTS

S = 1_000_000  # microseconds
T0 = to_micros(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


def placed(n: int, at_s: float, customer: str = "c-1") -> Placed:
    return Placed(T0 + int(at_s * S), f"o-{n:03d}", customer, f"event-{n}")


def reference(orders: list[Placed], window_s: int) -> dict[str, int]:
    """The definition, by brute force: orders in (X - window, X], ties by order id."""
    return {
        x.order_id: sum(
            1
            for y in orders
            if x.at_us - window_s * S < y.at_us and (y.at_us, y.order_id) <= (x.at_us, x.order_id)
        )
        for x in orders
    }


class Table:
    """One key's known orders, applied as the worker does: what `observe` says first,
    then the order recorded if it was new."""

    def __init__(self) -> None:
        self.known: dict[str, Placed] = {}

    def apply(self, order: Placed, window_s: int) -> list[Tally]:
        tallies = observe(order, self.known, window_s)
        self.known.setdefault(order.order_id, order)
        return tallies


def latest(told: list[Tally]) -> dict[str, int]:
    return {t.order.order_id: t.count for t in told}


# -- counting ---------------------------------------------------------------------------


def test_the_kth_order_of_a_burst_counts_k() -> None:
    table = Table()
    told = [t for n in range(1, 8) for t in table.apply(placed(n, n), 600)]
    assert [t.count for t in told] == [1, 2, 3, 4, 5, 6, 7]
    assert told[-1].order_ids == [f"o-{n:03d}" for n in range(1, 8)]


def test_an_order_exactly_one_window_earlier_is_outside_it() -> None:
    table = Table()
    table.apply(placed(1, 0), 600)
    table.apply(placed(2, 0.000001), 600)
    [third] = table.apply(placed(3, 600), 600)
    assert third.count == 2  # o-001 at exactly -600 s is out, o-002 just inside


def test_orders_at_the_same_instant_count_by_order_id() -> None:
    table = Table()
    [b] = table.apply(placed(2, 5), 600)
    a_and_b = table.apply(placed(1, 5), 600)
    assert b.count == 1
    assert [(t.order.order_id, t.count) for t in a_and_b] == [("o-001", 1), ("o-002", 2)]


def test_a_late_order_tells_the_later_orders_in_its_window_again() -> None:
    table = Table()
    for n, at in ((1, 0), (3, 100), (4, 700)):
        table.apply(placed(n, at), 600)
    told = table.apply(placed(2, 50), 600)
    # o-004 (at 700) has o-002 (at 50) outside its window: unchanged, not told again
    assert [(t.order.order_id, t.count) for t in told] == [("o-002", 2), ("o-003", 3)]


def test_an_order_seen_again_retells_its_own_count_and_nothing_else() -> None:
    table = Table()
    for n in (1, 3, 2):
        table.apply(placed(n, n), 600)
    assert [(t.order.order_id, t.count) for t in table.apply(placed(2, 2), 600)] == [("o-002", 2)]


def test_order_ids_name_the_twenty_nearest_oldest_first() -> None:
    table = Table()
    for n in range(1, 26):
        [last] = table.apply(placed(n, n), 600)
    assert last.count == 25
    assert last.order_ids == [f"o-{n:03d}" for n in range(6, 26)]


def test_the_reach_covers_the_window_behind_and_ahead() -> None:
    order = placed(1, 1000)
    assert reach_us(order, 600) == (order.at_us - 600 * S, order.at_us + 600 * S)
    assert bucket_of(60 * S - 1, 60) == 0
    assert bucket_of(60 * S, 60) == 1


@pytest.mark.parametrize("seed", range(30))
def test_any_arrival_order_with_repeats_and_crashes_ends_with_the_reference(seed: int) -> None:
    """Arrival order shuffled, records delivered again, and crashes, as faust makes them:
    the table restored with its writes up to some point at or after the last commit (the
    changelog runs ahead), processing resumed from that commit, and anything told after
    it possibly lost, except a late order's corrections whose record the restored table
    holds (acknowledged before it was recorded). The latest count per order is always
    the reference."""
    rng = random.Random(seed)
    window_s = rng.choice([30, 120, 600])
    orders = [placed(n, rng.uniform(0, 900)) for n in range(60)]
    orders += [placed(100 + n, (orders[n].at_us - T0) / S) for n in range(0, 60, 7)]  # ties
    stream = rng.sample(orders, len(orders)) + rng.sample(orders, 10)  # and re-deliveries
    told: list[tuple[int, bool, Tally]] = []  # (stream position, its own count?, tally)
    table, states = Table(), [dict[str, Placed]()]
    position = committed = incarnation = crashes = 0
    while position < len(stream):
        tallies = table.apply(stream[position], window_s)
        told += [(position, n == 0, t) for n, t in enumerate(tallies)]
        position += 1
        states.append(dict(table.known))
        if rng.random() < 0.2:
            committed = position
        if rng.random() < 0.05 and crashes < 8:
            crashes += 1
            durable = rng.randint(committed, position)
            told = told[:incarnation] + [
                (at, own, t)
                for at, own, t in told[incarnation:]
                if at < committed or (not own and at < durable) or rng.random() < 0.5
            ]
            incarnation = len(told)
            states = [*states[:committed], dict(states[durable])]
            table.known = dict(states[committed])
            position = committed
    assert latest([t for _, _, t in told]) == reference(orders, window_s)


# -- the contracts in and out -----------------------------------------------------------


def test_an_order_contributes_to_each_dimension_it_has_a_key_for() -> None:
    at = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
    everything = order_placed(order_message(order("o-1", "c-1", at, "addr-1", "dev-1")))
    bare = order_placed(order_message(order("o-2", "c-1", at)))
    assert everything is not None and bare is not None
    keyed = keyed_orders(*everything)
    assert [(k.table_key, k.placed_at_us) for k in keyed] == [
        ("customer:c-1", to_micros(at)),
        ("address:addr-1", to_micros(at)),
        ("device:dev-1", to_micros(at)),
    ]
    assert [k.table_key for k in keyed_orders(*bare)] == ["customer:c-1"]
    assert from_micros(keyed[0].placed_at_us) == at


def test_other_events_are_not_orders_and_garbage_is_an_error() -> None:
    paid = json.loads(order_message(order("o-1", "c-1", datetime.now(UTC))))
    paid["event_type"] = "OrderPaid"
    assert order_placed(json.dumps(paid).encode()) is None
    for garbage in (b"not json", b"{}", None):
        with pytest.raises(ValueError):
            order_placed(garbage)


def test_a_count_is_told_as_a_velocity_observed_with_a_stable_id() -> None:
    event_id = str(uuid4())
    tally = observe(Placed(T0, "o-1", "c-1", event_id), {}, 600)[0]
    message = observed_message("address", "addr-1", tally)
    envelope = EVENTS["VelocityObserved"].message_model().model_validate_json(message)
    fields = envelope.model_dump(mode="json")
    assert fields["producer"] == "risk-windows"
    assert fields["causation_id"] == event_id
    assert fields["occurred_at"] == fields["payload"]["placed_at"]
    assert (fields["position"], fields["previous_position"], fields["aggregate_id"]) == (
        1,
        0,
        "o-1",
    )
    assert fields["payload"]["counts"] == [
        {"dimension": "address", "key": "addr-1", "window_s": 600, "count": 1, "order_ids": ["o-1"]}
    ]
    assert observed_message("address", "addr-1", tally) == message


# -- rules and settings -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_rules_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path, clock = tmp_path / "rules.toml", Clock()
    write(path, "[velocity.customer]\nwindow_s = 60\n", 1_000_000_000)
    rules = RulesFile(path, check_s=1.0, clock=clock)
    assert rules.current().velocity.customer.window_s == 60
    write(path, "[velocity.customer]\nwindow_s = 120\n", 2_000_000_000)
    clock.now = 0.5
    assert rules.current().velocity.customer.window_s == 60  # not looked at yet
    clock.now = 1.5
    assert rules.current().velocity.customer.window_s == 120


def test_an_invalid_rules_file_keeps_the_rules_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "rules.toml", Clock()
    write(path, "[velocity.device]\nwindow_s = 300\n", 1_000_000_000)
    rules = RulesFile(path, check_s=0, clock=clock)
    write(path, "[velocity.device]\nwindow_s = 999999\n", 2_000_000_000)
    with caplog.at_level(logging.ERROR, logger="risk.windows.rules_file"):
        assert rules.current().velocity.device.window_s == 300
    [line] = caplog.messages
    assert "velocity.device.window_s" in line and "\n" not in line


def test_without_a_rules_file_the_defaults_hold(tmp_path: Path) -> None:
    assert RulesFile(None).current().velocity.address.window_s == 600
    assert RulesFile(tmp_path / "absent.toml").current().velocity.address.window_s == 600


def test_buckets_must_outlive_the_longest_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_WINDOWS_RETAIN_S", "3600")
    with pytest.raises(ValidationError, match="retain_s"):
        WindowsSettings()
    monkeypatch.setenv("RISK_WINDOWS_RETAIN_S", str(86_400 + 60))
    monkeypatch.setenv("RISK_RULES_FILE", "/etc/risk.toml")
    assert WindowsSettings().rules_file == Path("/etc/risk.toml")


def test_times_are_exact_microseconds() -> None:
    at = datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert from_micros(to_micros(at)) == at
    assert to_micros(at + timedelta(microseconds=1)) - to_micros(at) == 1
