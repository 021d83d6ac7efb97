"""Each alert rule trips on its figures and not on a near miss, names what it compared,
and the book raises an alert once and clears it once."""

from __future__ import annotations

from analytics.alerts import AlertBook, evaluate
from analytics.figures import Figures
from analytics.rules import AlertRules
from analytics.sketch import bin_of

DAY = 20_400
RULES = AlertRules(daily_capacity=100)


def figures(**families: dict[tuple, list[int]]) -> Figures:
    f = Figures()
    f.data = {name: dict(keys) for name, keys in families.items()}
    return f


def verdict(f: Figures, rule: str):
    [found] = [v for v in evaluate(f, RULES, DAY) if v.rule == rule]
    return found


def test_backlog_over_a_fifth_of_the_daily_capacity_is_yellow():
    over = verdict(figures(backlog={(): [21]}), "backlog")
    assert over.tripped and over.level == "yellow"
    assert over.figures == {
        "unshipped": "21",
        "daily_capacity": "100",
        "share_percent": "21.0",
        "limit_percent": "20.0",
    }
    assert not verdict(figures(backlog={(): [20]}), "backlog").tripped


def shipments(rates: list[tuple[int, int]]) -> Figures:
    """(shipped, on time) per day, the last one DAY."""
    days = range(DAY - len(rates) + 1, DAY + 1)
    return figures(
        shipments={(d, "WH-BER", "DHL"): [n, ok, n] for d, (n, ok) in zip(days, rates, strict=True)}
    )


def test_on_time_shipping_under_90_percent_three_days_running_is_orange():
    late = verdict(shipments([(10, 8), (10, 8), (10, 8)]), "on_time_shipping")
    assert late.tripped and late.level == "orange"
    assert late.figures["on_time_percent.2025-11-08"] == "80.0"
    assert not verdict(shipments([(10, 8), (10, 9), (10, 8)]), "on_time_shipping").tripped
    assert not verdict(shipments([(10, 8), (10, 8)]), "on_time_shipping").tripped  # 2 days


def tickets(before: int, now: int, kind: str = "complaint", channel: str = "email") -> Figures:
    return figures(
        tickets={(DAY - 10, kind, channel): [before, 0, 0], (DAY - 1, kind, channel): [now, 0, 0]}
    )


def test_complaints_up_half_on_the_previous_week_are_red():
    worse = verdict(tickets(10, 15), "complaints")
    assert worse.tripped and worse.level == "red"
    assert (worse.figures["complaints"], worse.figures["previous"]) == ("15", "10")
    assert not verdict(tickets(10, 14), "complaints").tripped
    assert not verdict(tickets(4, 20), "complaints").tripped  # too few before to judge
    assert not verdict(tickets(10, 30, kind="order_status"), "complaints").tripped


def test_tickets_the_desk_opens_itself_from_events_are_no_complaints():
    # a run of delayed shipments opens delivery tickets on the "system" channel
    assert not verdict(tickets(10, 30, kind="delivery", channel="system"), "complaints").tripped
    assert verdict(tickets(10, 30, kind="delivery", channel="chat"), "complaints").tripped


def spread(cvs_high: list[bool]) -> Figures:
    """paid->shipped times per day: very uneven (1 s and 1000 s, CV ~1.0 .. ) or even."""
    stage, bins = {}, {}
    for d, high in zip(range(DAY - len(cvs_high) + 1, DAY + 1), cvs_high, strict=True):
        values = [1, 1, 1, 1, 1, 1, 1, 1, 1, 100_000] if high else [1000, 1100, 900, 1000]
        stage[("paid_shipped", d)] = [len(values), sum(values), sum(v * v for v in values)]
        for v in values:
            key = ("paid_shipped", d, bin_of(v))
            bins[key] = [bins.get(key, [0])[0] + 1]
    return figures(stage=stage, stage_bins=bins)


def test_processing_times_spread_above_1_5_three_days_running_need_action():
    uneven = verdict(spread([True, True, True]), "processing_variance")
    assert uneven.tripped and uneven.level == "needs_action"
    assert float(uneven.figures["cv.2025-11-08"]) > 1.5
    assert not verdict(spread([True, False, True]), "processing_variance").tripped


def test_an_alert_is_raised_once_and_cleared_once():
    book = AlertBook()
    tripped = evaluate(figures(backlog={(): [50]}), RULES, DAY)
    [change] = book.changes(tripped)
    assert change.rule == "backlog" and change.tripped
    book.apply(
        "AlertRaised",
        {
            "alert_id": "backlog",
            "rule": "backlog",
            "level": "yellow",
            "summary": change.summary,
            "figures": change.figures,
            "raised_at": "2025-11-08T10:00:00+00:00",
            "as_of": "2025-11-08",
        },
    )
    assert book.changes(tripped) == []  # still tripped: nothing new
    [cleared] = book.changes(evaluate(figures(backlog={(): [5]}), RULES, DAY))
    assert cleared.rule == "backlog" and not cleared.tripped
