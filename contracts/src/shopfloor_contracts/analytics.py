"""Events on `analytics.v1`, produced by the analytics worker, keyed by alert id (the
rule's id: one alert per rule, raised and cleared again as its figures move). Each names
the figures that tripped or cleared it, as strings, so no reader guesses how it was
computed. No personal data: figures are counts, shares, amounts and durations."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Strict

AlertLevel = Literal["yellow", "orange", "red", "needs_action"]


class AlertRaised(Strict):
    alert_id: str
    rule: str = Field(description='the rule, e.g. "backlog", "on_time_shipping"')
    level: AlertLevel
    summary: str = Field(description="one sentence for the people on call")
    figures: dict[str, str] = Field(description="the figures compared, and the thresholds")
    raised_at: AwareDatetime = Field(description="wall-clock time of the evaluation")
    as_of: str = Field(description="the newest event day (YYYY-MM-DD) the figures reach")


class AlertCleared(Strict):
    alert_id: str
    rule: str
    level: AlertLevel = Field(description="the level it had")
    summary: str
    figures: dict[str, str]
    cleared_at: AwareDatetime
    as_of: str
