"""The key figures as Prometheus metrics, read from the group's figures at scrape time
(with one worker its own, as they change; with more, as last put together for the API or
the alert check, so every worker exports the group's values): today's and the last 30
days' orders, GMV and margin, the funnel's rates, the repurchase rate, stage time
percentiles, picking accuracy and pack checks passed, shipping on time, the orders risk
flagged, the backlog, the active alerts, and the worker's own counts.
"Today" is the newest event day (event time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from analytics import report
from analytics.alerts import LEVELS, AlertBook
from analytics.figures import STAGES, Figures
from analytics.processing import Progress
from analytics.rules import AnalyticsRules
from analytics.timeutil import day_number


class FiguresCollector(Collector):
    def __init__(
        self,
        figures: Callable[[], Figures],
        progress: Callable[[], Progress],
        rules: Callable[[], AnalyticsRules],
        alerts: Callable[[], AlertBook],
        today: Callable[[], Any],
    ) -> None:
        self.figures, self.progress, self.rules = figures, progress, rules
        self.alerts, self.today = alerts, today

    def collect(self) -> Iterator[Any]:
        figures = self.figures()
        last = day_number(self.today())
        windows = {"day": report.Range(last, last), "30d": report.Range(last - 29, last)}
        orders = GaugeMetricFamily("analytics_orders", "Orders placed", labels=["window"])
        gmv = GaugeMetricFamily("analytics_gmv_euros", "Gross merchandise value", labels=["window"])
        aov = GaugeMetricFamily("analytics_aov_euros", "Average order value", labels=["window"])
        margin = GaugeMetricFamily("analytics_margin_euros", "Margin", labels=["window"])
        rates = GaugeMetricFamily(
            "analytics_funnel_rate", "Share of the orders placed", labels=["window", "stage"]
        )
        stage_s = GaugeMetricFamily(
            "analytics_stage_seconds", "Stage time percentiles", labels=["window", "stage", "q"]
        )
        accuracy = GaugeMetricFamily(
            "analytics_accuracy_ratio",
            "Picking accuracy (accepted scans / scans) and pack checks passed (/ checks)",
            labels=["window", "check"],
        )
        repurchase = GaugeMetricFamily(
            "analytics_repurchase_ratio",
            "Customers who ordered in the window with more than one order so far",
            labels=["window"],
        )
        on_time = GaugeMetricFamily(
            "analytics_on_time_ratio", "Shipments dispatched by their promise", labels=["window"]
        )
        flagged = GaugeMetricFamily(
            "analytics_exception_orders",
            "Orders risk flagged (each once), by the order's level",
            labels=["window", "level"],
        )
        for name, r in windows.items():
            exceptions = report.exceptions(figures, r)
            for level in ("ordinary", "serious"):
                flagged.add_metric([name, level], exceptions["by_level"].get(level, 0))
            dispatched = report.shipping(figures, r)
            if dispatched["on_time_rate"] is not None:
                on_time.add_metric([name], dispatched["on_time_rate"])
            picking = report.accuracy(figures, r)
            for check, key in (("picking", "accuracy"), ("pack", "pack_check_rate")):
                if picking[key] is not None:
                    accuracy.add_metric([name, check], picking[key])
            totals = report.totals(figures, r)
            orders.add_metric([name], totals["orders"])
            gmv.add_metric([name], float(totals["gmv"]))
            aov.add_metric([name], float(totals["aov"] or 0))
            margin.add_metric([name], float(report.margin(figures, r, self.rules())["margin"]))
            funnel = report.funnel(figures, r)
            if funnel["repurchase_rate"] is not None:
                repurchase.add_metric([name], funnel["repurchase_rate"])
            for key in ("paid_rate", "shipped_rate", "delivered_rate", "cancellation_rate"):
                if funnel[key] is not None:
                    rates.add_metric([name, key.removesuffix("_rate")], funnel[key])
            stages = report.stages(figures, r)
            for stage in STAGES:
                for q in ("p50", "p90", "p99"):
                    value = stages[stage][f"{q}_s"]
                    if value is not None:
                        stage_s.add_metric([name, stage, q], value)
        yield from (orders, gmv, aov, margin, rates, stage_s, accuracy)
        yield from (repurchase, on_time, flagged)
        yield GaugeMetricFamily(  # the backlog is now's, whatever the window
            "analytics_backlog_orders", "Confirmed orders not shipped", value=dispatched["backlog"]
        )
        active = GaugeMetricFamily("analytics_alerts_active", "Active alerts", labels=["level"])
        book = self.alerts().alerts.values()
        for level in sorted(set(LEVELS.values())):
            active.add_metric([level], sum(1 for a in book if a.active and a.level == level))
        yield active
        p = self.progress()
        events = CounterMetricFamily(
            "analytics_events", "Messages the worker handled since it started", labels=["outcome"]
        )
        for outcome, n in (
            ("applied", p.applied),
            ("duplicate", p.duplicates),
            ("skipped", p.skipped),
            ("dead_letter", p.rejected),
        ):
            events.add_metric([outcome], n)
        yield events
