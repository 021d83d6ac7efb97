"""The figures are a function of the events alone: delivered twice, re-published later,
in other batch sizes, with topics interleaved differently, or replayed from an earlier
commit after a crash (the table's writes kept, the offsets not), they come out the same,
bit for bit. And they are the right figures: counted against the recorded traffic."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from analytics.figures import Figures
from analytics.harness import Message, traffic
from analytics.processing import Processor

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def recorded() -> list[Message]:
    return traffic(300, START, seed=11)


def run(messages: list[Message], batch: int = 500) -> tuple[Processor, dict[str, Any]]:
    processor = Processor({}, Figures())
    for at in range(0, len(messages), batch):
        chunk = messages[at : at + batch]
        rejected = processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(chunk))
        assert rejected == []
    return processor, processor.figures.snapshot()


def interleaved_otherwise(messages: list[Message], seed: int) -> list[Message]:
    """Another arrival order a consumer may see: each partition's order kept, the
    partitions (of all topics) merged at random."""
    from shopfloor_runtime.chain import partition_for

    queues: dict[tuple[str, int], list[Message]] = defaultdict(list)
    for m in messages:
        queues[(m[0], partition_for(m[1], 6))].append(m)
    rnd, out = random.Random(seed), []
    live = [q for q in queues.values() if q]
    while live:
        q = rnd.choice(live)
        out.append(q.pop(0))
        live = [q for q in live if q]
    return out


def test_the_same_events_in_other_batches_and_interleavings_give_identical_figures(recorded):
    _, clean = run(recorded)
    for family in ("picking", "pack_checks"):  # with mistakes in them: refused, flagged
        assert any(wrong for _, (_, wrong) in clean[family]), family
    for batch, seed in ((1, 1), (37, 2), (4000, 3)):
        _, other = run(interleaved_otherwise(recorded, seed), batch)
        assert other == clean


def test_every_event_twice_and_a_full_republish_later_change_nothing(recorded):
    _, clean = run(recorded)
    doubled = [m for m in recorded for _ in (0, 1)] + recorded  # redelivered, then re-published
    processor, again = run(doubled, 250)
    assert again == clean
    assert processor.progress.duplicates == 2 * processor.progress.applied


def test_a_replay_from_an_earlier_commit_after_a_crash_gives_the_clean_figures(recorded):
    """The table's writes up to message k survived (its changelog), the offsets only up
    to j < k: the worker recovers the table, rebuilds the figures from it and reads on
    from j."""
    _, clean = run(recorded)
    j, k = 1100, 1900
    first = Processor({}, Figures())
    for at in range(0, k, 300):
        first.apply((i, t, key, v) for i, (t, key, v) in enumerate(recorded[at : min(at + 300, k)]))
    recovered = Figures()
    recovered.rebuild(first.table.items())
    assert recovered.snapshot() == first.figures.snapshot()
    second = Processor(first.table, recovered)
    second.apply((i, t, key, v) for i, (t, key, v) in enumerate(recorded[j:]))
    assert recovered.snapshot() == clean


def test_the_figures_count_what_the_traffic_holds(recorded):
    import json

    from analytics import report
    from analytics.rules import AnalyticsRules
    from analytics.timeutil import day_of, micros

    processor, _ = run(recorded)
    placed = [json.loads(v)["payload"] for t, _, v in recorded if b'"OrderPlaced"' in v]
    cancelled = sum(1 for _, _, v in recorded if b'"event_type":"OrderCancelled"' in v)
    paid = sum(1 for _, _, v in recorded if b'"event_type":"OrderPaid"' in v)
    everything = report.Range(day_of(micros(START)) - 1, day_of(micros(START)) + 30)
    totals = report.totals(processor.figures, everything)
    assert totals["orders"] == len(placed) == 300
    assert Decimal(totals["gmv"]) == sum(Decimal(p["total"]) for p in placed)
    funnel = report.funnel(processor.figures, everything)
    assert (funnel["placed"], funnel["paid"], funnel["cancelled"]) == (300, paid, cancelled)
    assert funnel["delivered"] == paid  # every paid order of the traffic is delivered
    stages = report.stages(processor.figures, everything)
    assert stages["placed_paid"]["count"] == paid
    assert 5 <= stages["placed_paid"]["p50_s"] <= 600  # paid 5 s to 10 min after placing
    margin = report.margin(processor.figures, everything, AnalyticsRules())
    assert margin["units_without_cost"] == 0 and Decimal(margin["margin"]) < Decimal(totals["gmv"])
    classes = [row["class"] for row in report.abc(processor.figures, everything, AnalyticsRules())]
    assert classes == sorted(classes) and set(classes) == {"A", "B", "C"}
    flagged = sum(1 for n in range(300) if n % 17 == 0)
    twice = sum(1 for n in range(300) if n % 34 == 0)  # flagged by two rules
    exceptions = report.exceptions(processor.figures, everything)
    assert exceptions["by_rule"] == {"order.large": flagged, "address.postcode": twice}
    assert exceptions["orders"] == flagged == sum(exceptions["by_day"].values())
    assert exceptions["by_level"] == {"ordinary": flagged}
    desk = [json.loads(v) for t, _, v in recorded if t == "service-desk.v1"]
    answered = [
        e["payload"]["first_response_s"] for e in desk if e["event_type"] == "TicketAnswered"
    ]
    scores = [e["payload"]["score"] for e in desk if e["event_type"] == "TicketRated"]
    tickets = report.tickets(processor.figures, everything)
    assert answered and scores and tickets["ratings"] == len(scores)
    assert tickets["satisfaction"] == round(sum(scores) / len(scores), 3)
    assert tickets["first_response_mean_s"] == pytest.approx(
        sum(answered) / len(answered), abs=0.001
    )
    assert tickets["resolution_mean_s"] > 0 and tickets["resolved"] == tickets["opened"]
    accuracy = report.accuracy(processor.figures, everything)
    assert accuracy == picking_in(recorded)
    assert accuracy["refused_scans"] > 0 and 0 < accuracy["accuracy"] < 1
    assert accuracy["flagged"] > 0 and 0 < accuracy["pack_check_rate"] < 1


def picking_in(messages: list[Message]) -> dict[str, Any]:
    """Scans and pack checks counted from the traffic directly: a scan is a run of
    ItemPicked of one wave with the same picker, bin, SKU, serial and time."""
    import json

    from analytics.report import rate

    scans: set[tuple[Any, ...]] = set()
    counts: dict[str, int] = defaultdict(int)
    for _, key, value in messages:
        envelope = json.loads(value)
        p, kind = envelope["payload"], envelope["event_type"]
        if kind == "ItemPicked":
            scans.add((key, p["picker"], p["bin"], p["sku"], p.get("serial"), p["picked_at"]))
        counts[kind] += 1
    picks, wrong = len(scans), counts["ScanRefused"]
    packed, flagged = counts["ShipmentPacked"], counts["ShipmentFlagged"]
    assert picks < counts["ItemPicked"]  # some scans filled two lines
    return {
        "accuracy": rate(picks, picks + wrong),
        "picks": picks,
        "refused_scans": wrong,
        "pack_check_rate": rate(packed, packed + flagged),
        "pack_checks": packed + flagged,
        "flagged": flagged,
    }
