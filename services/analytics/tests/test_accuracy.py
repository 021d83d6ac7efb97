"""Picking accuracy from fulfilment.v1 alone, as fulfilment counts it (accepted scans /
all scans), and the pack check's pass rate: a refused scan or a flagged shipment lowers
them once, however often its message arrives; a scan published as several ItemPicked
(one per pick-list line it filled) is one scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from analytics import report
from analytics.figures import Figures
from analytics.harness import Message, Recorder
from analytics.processing import Processor
from analytics.timeutil import day_of, micros
from pydantic import BaseModel
from shopfloor_contracts.fulfilment import (
    ItemPicked,
    ScanRefused,
    ShipmentFlagged,
    ShipmentPacked,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = report.Range(day_of(micros(T0)), day_of(micros(T0)))
WAVE = "wave-1"


def picked(order: str, at: datetime, qty: int = 1, sku: str = "TEE-M") -> ItemPicked:
    return ItemPicked(
        wave_id=WAVE,
        shipment_id=f"ship-{order}",
        order_id=order,
        picker="picker-01",
        bin="B-01-3",
        sku=sku,
        qty=qty,
        picked_at=at,
    )


def refused(at: datetime) -> ScanRefused:
    return ScanRefused(
        wave_id=WAVE,
        warehouse="WH-BER",
        picker="picker-01",
        bin="B-09-9",
        sku="TEE-M",
        qty=1,
        reason="bin B-09-9 does not hold TEE-M for this wave (its bin: B-01-3)",
        refused_at=at,
    )


def flagged(order: str, at: datetime) -> ShipmentFlagged:
    return ShipmentFlagged(
        shipment_id=f"ship-{order}",
        order_ids=[order],
        reason="weight 600 g is outside 5% of the expected 500 g",
        expected_grams=500,
        measured_grams=600,
        at=at,
    )


def packed(order: str, at: datetime) -> ShipmentPacked:
    return ShipmentPacked(
        shipment_id=f"ship-{order}", order_ids=[order], weight_grams=500, packed_at=at
    )


def messages(*events: tuple[str, BaseModel, datetime]) -> list[Message]:
    """As fulfilment's relay publishes them, positions in this order."""
    rec = Recorder()
    for key, payload, at in events:
        rec.emit(key, payload, at, "fulfilment")
    return rec.messages()


def feed(processor: Processor, batch: list[Message]) -> dict[str, Any]:
    """Apply `batch`; the accuracy figures of the day after it."""
    assert processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(batch)) == []
    return report.accuracy(processor.figures, DAY)


def test_a_flagged_shipment_lowers_the_pack_check_rate_once_however_often_it_arrives():
    at = T0 + timedelta(minutes=1)
    ok = messages(("o-1", packed("o-1", T0), T0), ("o-2", packed("o-2", at), at))
    processor = Processor({}, Figures())
    assert feed(processor, ok)["pack_check_rate"] == 1.0
    later = T0 + timedelta(minutes=2)
    both = messages(
        ("o-1", packed("o-1", T0), T0),
        ("o-2", packed("o-2", at), at),
        ("o-3", flagged("o-3", later), later),
    )
    flag = both[2]
    lowered = feed(processor, [flag])
    assert (lowered["pack_checks"], lowered["flagged"], lowered["pack_check_rate"]) == (
        3,
        1,
        round(2 / 3, 6),
    )
    assert feed(processor, [flag, flag]) == lowered  # redelivered
    assert feed(processor, both) == lowered  # the whole log re-published
    assert processor.progress.duplicates == 5


def test_a_refused_scan_lowers_picking_accuracy_once_and_a_repeat_does_not():
    t1, t2, t3 = (T0 + timedelta(seconds=s) for s in (20, 40, 45))
    log = messages(
        (WAVE, picked("o-1", t1), t1),
        (WAVE, refused(t2), t2),
        (WAVE, picked("o-2", t3), t3),
    )
    processor = Processor({}, Figures())
    assert feed(processor, log[:1])["accuracy"] == 1.0
    after = feed(processor, log[1:])
    assert (after["picks"], after["refused_scans"], after["accuracy"]) == (2, 1, round(2 / 3, 6))
    assert feed(processor, [log[1], log[1], *log]) == after


def test_a_scan_published_as_two_item_picked_counts_as_one_scan_as_fulfilment_counts_it():
    """Fulfilment's `GET /pickers/stats` counts scans; a scan of 2 units that fills the
    lines of two orders is published as two ItemPicked with the same time."""
    t1, t2 = T0, T0 + timedelta(seconds=30)
    log = messages(
        (WAVE, picked("o-1", t1), t1),
        (WAVE, picked("o-2", t1), t1),  # the same scan, the next line
        (WAVE, picked("o-3", t2), t2),  # the next scan: same picker, bin and SKU
    )
    figures = feed(Processor({}, Figures()), log)
    assert (figures["picks"], figures["refused_scans"], figures["accuracy"]) == (2, 0, 1.0)


def test_accuracy_is_kept_by_the_day_of_the_scan_and_is_none_without_scans():
    tomorrow = T0 + timedelta(days=1)
    log = messages((WAVE, refused(T0), T0), (WAVE, picked("o-1", tomorrow), tomorrow))
    processor = Processor({}, Figures())
    feed(processor, log)
    two_days = report.Range(DAY.first, DAY.first + 2)
    by_day = report.accuracy_by_day(processor.figures, two_days)
    assert [d["accuracy"] for d in by_day] == [0.0, 1.0, None]
    assert report.accuracy(processor.figures, two_days)["accuracy"] == 0.5
