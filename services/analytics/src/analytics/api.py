"""The HTTP API: the figures for a range of days (event time, UTC), the worker's
progress, and the operations routes every service has. It reads the figures this
worker holds: with one worker, every partition's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from shopfloor_runtime.web import Day, error_responses, install_error_handlers, ops_router

from analytics import report
from analytics.alerts import AlertBook
from analytics.figures import Figures
from analytics.processing import Progress
from analytics.rules import AnalyticsRules
from analytics.timeutil import day_date, day_number, micros

DEFAULT_DAYS = 30


@dataclass
class View:
    """What the API reads: the figures, the worker's progress and state, the rules."""

    figures: Figures
    progress: Callable[[], Progress]
    rules: Callable[[], AnalyticsRules]
    status: Callable[[], dict[str, Any]]
    ready: Callable[[], Awaitable[bool]]
    alerts: Callable[[], AlertBook]

    def latest_day(self) -> date:
        """The day of the newest event seen (event time), today if none."""
        seen = self.progress().last_event_us.values()
        if not seen:
            return date.today()
        return day_date(max(seen) // 86_400_000_000)


From = Annotated[Day | None, Query(alias="from", description="first day (YYYY-MM-DD)")]
To = Annotated[Day | None, Query(alias="to", description="last day, included")]


def create_api(view: View) -> FastAPI:
    """Every route is `async def`: it runs on the worker's event loop between two of the
    agent's batches, never in a thread beside it while the figures change."""
    api = FastAPI(
        title="shopfloor analytics",
        description="Business figures and stage times from every public topic (event time).",
        version="1",
    )
    install_error_handlers(api, {})
    api.include_router(ops_router("analytics", {"worker": view.ready}))

    def days(since: date | None, until: date | None) -> report.Range:
        last = until or view.latest_day()
        first = since or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["query", "from"],
                        "msg": f"from ({first}) is after to ({last})",
                        "type": "value_error",
                    }
                ],
            )
        return report.Range(day_number(first), day_number(last))

    def span(r: report.Range) -> dict[str, str]:
        return {"from": day_date(r.first).isoformat(), "to": day_date(r.last).isoformat()}

    @api.get("/figures/summary", responses=error_responses(422))
    async def summary(since: From = None, until: To = None) -> dict[str, Any]:
        """Orders, GMV and AOV, margin, the funnel and the stage times, for the range
        (default: the 30 days up to the newest event)."""
        r = days(since, until)
        f, rules = view.figures, view.rules()
        return {
            **span(r),
            "totals": report.totals(f, r),
            "margin": report.margin(f, r, rules),
            "funnel": report.funnel(f, r),
            "stages": report.stages(f, r),
            "shipping": report.shipping(f, r),
        }

    @api.get("/figures/sales", responses=error_responses(422))
    async def sales(
        since: From = None, until: To = None, by: Literal["channel", "hour", "day"] = "channel"
    ) -> dict[str, Any]:
        """Orders, GMV, average order value, discount and units by channel, hour of
        the day or day (of placement)."""
        r = days(since, until)
        return {**span(r), "by": by, "rows": report.sales(view.figures, r, by)}

    @api.get("/figures/funnel", responses=error_responses(422))
    async def funnel(since: From = None, until: To = None) -> dict[str, Any]:
        """Placed -> paid -> shipped -> delivered for the orders placed in the range;
        cancellation, return and repurchase rates."""
        r = days(since, until)
        return {**span(r), **report.funnel(view.figures, r)}

    @api.get("/figures/stages", responses=error_responses(422))
    async def stages(since: From = None, until: To = None) -> dict[str, Any]:
        """placed->paid, paid->shipped, shipped->delivered: count, mean, p50/p90/p99
        (within 1 %), variance and coefficient of variation, by the day a stage ended."""
        r = days(since, until)
        return {**span(r), "stages": report.stages(view.figures, r)}

    @api.get("/figures/margin", responses=error_responses(422))
    async def margin(since: From = None, until: To = None) -> dict[str, Any]:
        r = days(since, until)
        return {**span(r), **report.margin(view.figures, r, view.rules())}

    @api.get("/figures/abc", responses=error_responses(422))
    async def abc(since: From = None, until: To = None) -> dict[str, Any]:
        """SKUs by revenue with their ABC class (thresholds from the rules)."""
        r = days(since, until)
        return {**span(r), "skus": report.abc(view.figures, r, view.rules())}

    @api.get("/figures/segments", responses=error_responses(422))
    async def segments(
        at: Annotated[Day | None, Query(description="as of this day (default: newest)")] = None,
    ) -> dict[str, Any]:
        """Customers new / active / dormant / VIP as of a day."""
        day = at or view.latest_day()
        counts = report.segments(view.figures, day_number(day), view.rules())
        return {"at": day.isoformat(), "segments": counts}

    @api.get("/figures/exceptions", responses=error_responses(422))
    async def exceptions(since: From = None, until: To = None) -> dict[str, Any]:
        """Orders flagged by risk, by rule, level and day (of the latest assessment)."""
        r = days(since, until)
        return {**span(r), **report.exceptions(view.figures, r)}

    @api.get("/figures/tickets", responses=error_responses(422))
    async def tickets(since: From = None, until: To = None) -> dict[str, Any]:
        r = days(since, until)
        return {**span(r), **report.tickets(view.figures, r)}

    @api.get("/figures/accuracy", responses=error_responses(422))
    async def accuracy(since: From = None, until: To = None) -> dict[str, Any]:
        """Picking accuracy (accepted scans / all scans, as fulfilment counts it) and
        the pack check's pass rate, for the range and by day (of the scan or check)."""
        r = days(since, until)
        f = view.figures
        return {**span(r), **report.accuracy(f, r), "by_day": report.accuracy_by_day(f, r)}

    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    @api.get(
        "/dashboards/{role}",
        responses={
            **error_responses(404, 422),
            200: {"content": {"application/json": {}, "text/html": {}}},
        },
    )
    async def dashboard(
        request: Request,
        role: Literal["management", "operations", "warehouse"],
        since: From = None,
        until: To = None,
    ) -> Any:
        """One role's figures for the range, with the day-by-day series its charts
        draw: management (GMV, margin, growth on the period before), operations
        (conversion, AOV, repurchase, exceptions), warehouse (processing times, on-time
        shipping, picking accuracy, backlog, alerts). A browser (Accept: text/html)
        gets the page that draws them and updates itself every 5 s."""
        r = days(since, until)
        if _wants_html(request):
            page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
            return HTMLResponse(page.replace("{{ROLE}}", role).replace("{{TITLE}}", role))
        return {"role": role, **span(r), **DASHBOARDS[role](view, r)}

    @api.get("/alerts", responses=error_responses(422))
    async def alerts(
        level: Literal["yellow", "orange", "red", "needs_action"] | None = None,
        status: Literal["active", "cleared"] | None = None,
    ) -> list[dict[str, Any]]:
        """Every alert raised so far with its latest state and the figures that tripped
        or cleared it, as published on analytics.v1."""
        found = [a.view() for a in sorted(view.alerts().alerts.values(), key=lambda a: a.rule)]
        return [
            a
            for a in found
            if (level is None or a["level"] == level) and (status is None or a["status"] == status)
        ]

    @api.get("/figures")
    async def everything() -> dict[str, Any]:
        """Every figure this worker holds, as sorted lists (family -> [key, vector]):
        two workers that saw the same events answer the same."""
        return {"families": view.figures.snapshot()}

    @api.get("/progress")
    async def progress() -> dict[str, Any]:
        """What the worker applied since it started, and the newest event time per topic."""
        p = view.progress()
        return {
            "applied": p.applied,
            "duplicates": p.duplicates,
            "skipped": p.skipped,
            "dead_letters": p.rejected,
            "batches": p.batches,
            "newest_event_us": dict(p.last_event_us),
            **view.status(),
        }

    return api


STATIC = Path(__file__).parent / "static"


def _wants_html(request: Request) -> bool:
    """A browser's Accept header names text/html before any JSON."""
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def _daily(view: View, r: report.Range) -> list[dict[str, Any]]:
    rows = {row["day"]: row for row in report.sales(view.figures, r, "day")}
    out = []
    for day in r.days():
        iso = day_date(day).isoformat()
        found = rows.get(iso)
        out.append(
            {
                "day": iso,
                "orders": found["orders"] if found else 0,
                "gmv": found["gmv"] if found else "0.00",
            }
        )
    return out


def _management(view: View, r: report.Range) -> dict[str, Any]:
    before = report.Range(r.first - len(r.days()), r.first - 1)
    now, then = report.totals(view.figures, r), report.totals(view.figures, before)
    growth = report.rate(Decimal(now["gmv"]) - Decimal(then["gmv"]), Decimal(then["gmv"]))
    return {
        "gmv": now["gmv"],
        "orders": now["orders"],
        "margin": report.margin(view.figures, r, view.rules()),
        "previous_period": {**then, "from": day_date(before.first).isoformat()},
        "gmv_growth": growth,
        "by_channel": report.sales(view.figures, r, "channel"),
        "daily": _daily(view, r),
    }


def _operations(view: View, r: report.Range) -> dict[str, Any]:
    funnel = report.funnel(view.figures, r)
    return {
        "conversion": {k: funnel[k] for k in ("paid_rate", "shipped_rate", "delivered_rate")},
        "aov": report.totals(view.figures, r)["aov"],
        "repurchase_rate": funnel["repurchase_rate"],
        "cancellation_rate": funnel["cancellation_rate"],
        "return_rate": funnel["return_rate"],
        "funnel": funnel,
        "exceptions": report.exceptions(view.figures, r),
        "tickets": report.tickets(view.figures, r),
        "daily": _daily(view, r),
    }


def _warehouse(view: View, r: report.Range) -> dict[str, Any]:
    shipping = report.shipping(view.figures, r)
    accuracy = report.accuracy(view.figures, r)
    daily = []
    for day in r.days():
        one = report.Range(day, day)
        stage = report.stages(view.figures, one)["paid_shipped"]
        ship = report.shipping(view.figures, one)
        picking = report.accuracy(view.figures, one)
        daily.append(
            {
                "day": day_date(day).isoformat(),
                "paid_shipped_p50_s": stage["p50_s"],
                "paid_shipped_p90_s": stage["p90_s"],
                "shipments": ship["shipments"],
                "on_time_rate": ship["on_time_rate"],
                "picking_accuracy": picking["accuracy"],
                "pack_check_rate": picking["pack_check_rate"],
            }
        )
    return {
        "stages": report.stages(view.figures, r),
        "on_time_rate": shipping["on_time_rate"],
        "picking_accuracy": accuracy["accuracy"],
        "accuracy": accuracy,
        "shipments": shipping["shipments"],
        "backlog": shipping["backlog"],
        "by_warehouse": shipping["by_warehouse"],
        "alerts": [a.view() for a in view.alerts().alerts.values() if a.active],
        "daily": daily,
    }


DASHBOARDS: dict[str, Callable[[View, report.Range], dict[str, Any]]] = {
    "management": _management,
    "operations": _operations,
    "warehouse": _warehouse,
}

__all__ = ["View", "create_api", "micros"]
