"""The alert rules, evaluated on the figures as of the newest event day, and the book of
what was raised: an alert per rule (its id is the rule's), raised when its figures trip
the threshold and cleared when they recover. Pure: the worker publishes the transitions
(AlertRaised / AlertCleared on analytics.v1) and rebuilds the book from that topic when
it starts, so a restart neither raises an alert twice nor forgets one."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from analytics import report
from analytics.figures import Figures
from analytics.rules import AlertRules
from analytics.timeutil import day_date

RULES = ("backlog", "on_time_shipping", "complaints", "processing_variance")
LEVELS = {
    "backlog": "yellow",
    "on_time_shipping": "orange",
    "complaints": "red",
    "processing_variance": "needs_action",
}


@dataclass(frozen=True)
class Verdict:
    rule: str
    tripped: bool
    summary: str
    figures: dict[str, str]

    @property
    def level(self) -> str:
        return LEVELS[self.rule]


def _pct(value: Decimal | float | None) -> str:
    return "-" if value is None else f"{Decimal(value):.1f}"


def evaluate(f: Figures, rules: AlertRules, as_of: int) -> list[Verdict]:
    return [
        _backlog(f, rules),
        _on_time(f, rules, as_of),
        _complaints(f, rules, as_of),
        _variance(f, rules, as_of),
    ]


def _backlog(f: Figures, rules: AlertRules) -> Verdict:
    backlog = sum(v[0] for v in f.family("backlog").values())
    share = Decimal(backlog) * 100 / rules.daily_capacity
    tripped = share > rules.backlog_percent
    return Verdict(
        "backlog",
        tripped,
        f"{backlog} confirmed orders not shipped: {_pct(share)} % of the daily capacity of "
        f"{rules.daily_capacity}, limit {_pct(rules.backlog_percent)} %",
        {
            "unshipped": str(backlog),
            "daily_capacity": str(rules.daily_capacity),
            "share_percent": _pct(share),
            "limit_percent": _pct(rules.backlog_percent),
        },
    )


def _on_time(f: Figures, rules: AlertRules, as_of: int) -> Verdict:
    days = range(as_of - rules.on_time_days + 1, as_of + 1)
    rates: dict[int, Decimal | None] = {}
    for day in days:
        shipped = sum(v[0] for _, v in f.between("shipments", day, day))
        on_time = sum(v[1] for _, v in f.between("shipments", day, day))
        rates[day] = Decimal(on_time) * 100 / shipped if shipped else None
    tripped = all(r is not None and r < rules.on_time_percent for r in rates.values())
    shown = ", ".join(f"{day_date(d)} {_pct(r)} %" for d, r in rates.items())
    return Verdict(
        "on_time_shipping",
        tripped,
        f"on-time shipping {shown}; limit {_pct(rules.on_time_percent)} % on "
        f"{rules.on_time_days} days in a row",
        {
            **{f"on_time_percent.{day_date(d)}": _pct(r) for d, r in rates.items()},
            "limit_percent": _pct(rules.on_time_percent),
            "days": str(rules.on_time_days),
        },
    )


def _complaints(f: Figures, rules: AlertRules, as_of: int) -> Verdict:
    n = rules.complaints_period_days

    def count(first: int, last: int) -> int:
        return sum(
            v[0]
            for (_, kind, channel), v in f.between("tickets", first, last)
            if kind in rules.complaint_types
            and (channel != "system" or rules.complaints_include_system_tickets)
        )

    now, before = count(as_of - n + 1, as_of), count(as_of - 2 * n + 1, as_of - n)
    rise = None if not before else Decimal(now - before) * 100 / before
    tripped = (
        before >= rules.complaints_min
        and rise is not None
        and rise >= rules.complaints_rise_percent
    )
    return Verdict(
        "complaints",
        tripped,
        f"{now} complaints in the {n} days to {day_date(as_of)} against {before} in the {n} "
        f"days before ({_pct(rise)} %); limit +{_pct(rules.complaints_rise_percent)} %",
        {
            "complaints": str(now),
            "previous": str(before),
            "rise_percent": _pct(rise),
            "limit_percent": _pct(rules.complaints_rise_percent),
            "period_days": str(n),
        },
    )


def _variance(f: Figures, rules: AlertRules, as_of: int) -> Verdict:
    days = range(as_of - rules.variance_days + 1, as_of + 1)
    spread: dict[int, float | None] = {}
    for day in days:
        stage = report.stages(f, report.Range(day, day))["paid_shipped"]
        spread[day] = stage["cv"] if stage["count"] >= 2 else None
    limit = float(rules.variance_cv)
    tripped = all(cv is not None and cv > limit for cv in spread.values())
    shown = ", ".join(f"{day_date(d)} {'-' if cv is None else cv}" for d, cv in spread.items())
    return Verdict(
        "processing_variance",
        tripped,
        f"paid->shipped coefficient of variation {shown}; limit {rules.variance_cv} on "
        f"{rules.variance_days} days in a row",
        {
            **{f"cv.{day_date(d)}": "-" if cv is None else str(cv) for d, cv in spread.items()},
            "limit_cv": str(rules.variance_cv),
            "days": str(rules.variance_days),
        },
    )


@dataclass
class Alert:
    alert_id: str
    rule: str
    level: str
    active: bool
    summary: str
    figures: dict[str, str]
    changed_at: str  # the last event's raised_at / cleared_at
    as_of: str

    def view(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "level": self.level,
            "status": "active" if self.active else "cleared",
            "summary": self.summary,
            "figures": self.figures,
            "changed_at": self.changed_at,
            "as_of": self.as_of,
        }


class AlertBook:
    """The alerts as analytics.v1 tells them (the latest event per alert id wins)."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    def apply(self, event_type: str, payload: dict[str, Any]) -> None:
        raised = event_type == "AlertRaised"
        self.alerts[payload["alert_id"]] = Alert(
            alert_id=payload["alert_id"],
            rule=payload["rule"],
            level=payload["level"],
            active=raised,
            summary=payload["summary"],
            figures=dict(payload["figures"]),
            changed_at=str(payload["raised_at" if raised else "cleared_at"]),
            as_of=payload["as_of"],
        )

    def changes(self, verdicts: list[Verdict]) -> list[Verdict]:
        """The verdicts that change an alert: tripped and not active, or active and no
        longer tripped."""
        out = []
        for v in verdicts:
            found = self.alerts.get(v.rule)
            active = found is not None and found.active
            if v.tripped != active:
                out.append(v)
        return out
