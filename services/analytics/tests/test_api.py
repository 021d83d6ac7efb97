"""The HTTP API over figures built from recorded traffic (no broker: the worker's view is
handed in): the dashboards for each role, ranges by event time, and clear refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from analytics.api import create_api
from analytics.entities import State
from analytics.figures import Figures
from analytics.harness import recorded_view, traffic
from analytics.processing import Processor, Progress
from analytics.timeutil import day_date
from fastapi.testclient import TestClient

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def client() -> TestClient:
    view = recorded_view(traffic(400, START, seed=4))
    return TestClient(create_api(view))


def test_the_default_range_ends_on_the_newest_event_day(client):
    summary = client.get("/figures/summary").json()
    newest = date.fromisoformat(summary["to"])
    assert newest > START.date()  # deliveries and tickets come days after the orders
    assert (newest - date.fromisoformat(summary["from"])).days == 29
    assert summary["totals"]["orders"] == 400


def test_after_a_restart_the_range_still_ends_on_the_newest_event_day(client):
    """A restarted worker recovers its figures from the table but has applied no event
    yet: its default range (and the metrics' and alerts' "today") come from the newest
    day its figures hold, not from the wall clock."""
    messages = traffic(400, START, seed=4)
    table: dict[str, State] = {}
    applied = Processor(table, Figures())
    applied.apply((i, t, k, v) for i, (t, k, v) in enumerate(messages))
    newest = max(applied.progress.last_event_us.values()) // 86_400_000_000
    recovered = Figures()
    recovered.rebuild(table.items())  # what a restarted worker holds
    view = recorded_view(messages)
    view.figures, view.progress = recovered, Progress  # nothing applied since the start
    restarted = TestClient(create_api(view)).get("/figures/summary").json()
    assert restarted["to"] == str(day_date(newest)) == client.get("/figures/summary").json()["to"]
    assert restarted["totals"]["orders"] == 400


def test_the_management_dashboard_has_growth_on_the_period_before_and_a_daily_series(client):
    board = client.get("/dashboards/management", params={"from": "2026-11-02", "to": "2026-11-03"})
    assert board.status_code == 200, board.text
    body = board.json()
    assert body["orders"] == 400 and body["previous_period"]["orders"] == 0
    assert body["gmv_growth"] is None  # nothing before: no growth to speak of
    assert [d["day"] for d in body["daily"]] == ["2026-11-02", "2026-11-03"]
    assert sum(Decimal(d["gmv"]) for d in body["daily"]) == Decimal(body["gmv"])


def test_the_operations_and_warehouse_dashboards(client):
    ops = client.get("/dashboards/operations", params={"from": "2026-11-01"}).json()
    assert 0 < ops["conversion"]["paid_rate"] <= 1 and Decimal(ops["aov"]) > 0
    assert ops["exceptions"]["by_rule"]  # every 17th order is flagged
    warehouse = client.get("/dashboards/warehouse", params={"from": "2026-11-01"}).json()
    assert warehouse["shipments"] > 0 and warehouse["backlog"] == 0
    assert any(d["paid_shipped_p50_s"] for d in warehouse["daily"])


def test_the_warehouse_dashboard_shows_picking_accuracy_overall_and_by_day(client):
    days = {"from": "2026-11-02", "to": "2026-11-04"}
    board = client.get("/dashboards/warehouse", params=days).json()
    figure = client.get("/figures/accuracy", params=days).json()
    assert board["accuracy"] == {
        k: v for k, v in figure.items() if k not in ("from", "to", "by_day")
    }
    assert (
        board["picking_accuracy"]
        == figure["accuracy"]
        == round(figure["picks"] / (figure["picks"] + figure["refused_scans"]), 6)
    )
    assert 0 < figure["accuracy"] < 1 and 0 < figure["pack_check_rate"] < 1
    by_day = figure["by_day"]
    assert [d["day"] for d in by_day] == [d["day"] for d in board["daily"]]
    assert [d["accuracy"] for d in by_day] == [d["picking_accuracy"] for d in board["daily"]]
    assert sum(d["picks"] for d in by_day) == figure["picks"]
    assert sum(d["flagged"] for d in by_day) == figure["flagged"] > 0
    assert by_day[-1]["accuracy"] is None  # no scan on the last day: no rate, not 0 %


def test_bad_ranges_and_roles_are_refused_with_the_field(client):
    backwards = client.get("/figures/sales", params={"from": "2026-11-05", "to": "2026-11-01"})
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["loc"] == ["query", "from"]
    not_a_day = client.get("/figures/funnel", params={"from": "5"})
    assert not_a_day.status_code == 422 and "YYYY-MM-DD" in not_a_day.text
    assert client.get("/dashboards/finance").status_code == 422
    assert client.get("/alerts", params={"level": "purple"}).status_code == 422
