"""The HTTP API: the figures for a range of days (event time, UTC), the worker's
progress, and the operations routes every service has. It answers with the figures of
the whole group, whichever worker is asked (`analytics.group`): with one worker, its
own; with more, its own plus the others'."""

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
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.web import Day, error_responses, install_error_handlers, ops_router

from analytics import report
from analytics.alerts import AlertBook
from analytics.figures import Figures
from analytics.group import GroupView, own_view
from analytics.processing import Progress
from analytics.rules import AnalyticsRules
from analytics.timeutil import day_date, day_number, micros

DEFAULT_DAYS = 30


@dataclass
class View:
    """What the API reads: this worker's figures, progress and state, the rules, and the
    group's figures (`group`; without, this worker is taken to hold every partition)."""

    figures: Figures
    progress: Callable[[], Progress]
    rules: Callable[[], AnalyticsRules]
    status: Callable[[], dict[str, Any]]
    ready: Callable[[], Awaitable[bool]]
    alerts: Callable[[], AlertBook]
    group: Callable[[], Awaitable[GroupView]] | None = None

    def newest_event_us(self) -> int | None:
        """The newest event time of this worker's figures (recovered with them)."""
        return self.figures.newest_us

    async def current(self) -> GroupView:
        if self.group is not None:
            return await self.group()
        return own_view(self.figures, ORDERS.partitions, "this worker")


def latest_day(group: GroupView) -> date:
    """The day of the newest event (event time); today only when there are no figures."""
    newest = group.newest_day()
    return date.today() if newest is None else day_date(newest)


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

    async def scope(since: date | None, until: date | None) -> tuple[GroupView, report.Range]:
        """The group's figures as of now, and the range asked for (default: the 30 days
        up to their newest event)."""
        g = await view.current()
        return g, days(since, until, g)

    def days(since: date | None, until: date | None, group: GroupView) -> report.Range:
        last = until or latest_day(group)
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
        g, r = await scope(since, until)
        f, rules = g.figures, view.rules()
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
        g, r = await scope(since, until)
        return {**span(r), "by": by, "rows": report.sales(g.figures, r, by)}

    @api.get("/figures/funnel", responses=error_responses(422))
    async def funnel(since: From = None, until: To = None) -> dict[str, Any]:
        """Placed -> paid -> shipped -> delivered for the orders placed in the range;
        cancellation, return and repurchase rates."""
        g, r = await scope(since, until)
        return {**span(r), **report.funnel(g.figures, r)}

    @api.get("/figures/stages", responses=error_responses(422))
    async def stages(since: From = None, until: To = None) -> dict[str, Any]:
        """placed->paid, paid->shipped, shipped->delivered: count, mean, p50/p90/p99
        (within 1 %), variance and coefficient of variation, by the day a stage ended."""
        g, r = await scope(since, until)
        return {**span(r), "stages": report.stages(g.figures, r)}

    @api.get("/figures/margin", responses=error_responses(422))
    async def margin(since: From = None, until: To = None) -> dict[str, Any]:
        g, r = await scope(since, until)
        return {**span(r), **report.margin(g.figures, r, view.rules())}

    @api.get("/figures/abc", responses=error_responses(422))
    async def abc(since: From = None, until: To = None) -> dict[str, Any]:
        """SKUs by revenue with their ABC class (thresholds from the rules)."""
        g, r = await scope(since, until)
        return {**span(r), "skus": report.abc(g.figures, r, view.rules())}

    @api.get("/figures/segments", responses=error_responses(422))
    async def segments(
        at: Annotated[Day | None, Query(description="as of this day (default: newest)")] = None,
    ) -> dict[str, Any]:
        """Customers new / active / dormant / VIP as of a day."""
        g = await view.current()
        day = at or latest_day(g)
        counts = report.segments(g.figures, day_number(day), view.rules())
        return {"at": day.isoformat(), "segments": counts}

    @api.get("/figures/exceptions", responses=error_responses(422))
    async def exceptions(since: From = None, until: To = None) -> dict[str, Any]:
        """Orders flagged by risk, by rule, level and day (of the latest assessment)."""
        g, r = await scope(since, until)
        return {**span(r), **report.exceptions(g.figures, r)}

    @api.get("/figures/tickets", responses=error_responses(422))
    async def tickets(since: From = None, until: To = None) -> dict[str, Any]:
        g, r = await scope(since, until)
        return {**span(r), **report.tickets(g.figures, r)}

    @api.get("/figures/accuracy", responses=error_responses(422))
    async def accuracy(since: From = None, until: To = None) -> dict[str, Any]:
        """Picking accuracy (accepted scans / all scans, as fulfilment counts it) and
        the pack check's pass rate, for the range and by day (of the scan or check)."""
        g, r = await scope(since, until)
        f = g.figures
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
        g, r = await scope(since, until)
        if _wants_html(request):
            page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
            return HTMLResponse(page.replace("{{ROLE}}", role).replace("{{TITLE}}", role))
        board = DASHBOARDS[role](view, g.figures, r)
        return {"role": role, **span(r), **board, "coverage": g.coverage()}

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
        """Every figure of the group, as sorted lists (family -> [key, vector]), and the
        partitions they cover: the same events give the same figures, however many
        workers share them."""
        g = await view.current()
        return {"families": g.figures.snapshot(), "coverage": g.coverage()}

    @api.get("/figures/held")
    async def held() -> dict[str, Any]:
        """This worker's own figures and the partitions it holds: what the other
        workers of the group add to theirs."""
        mine = own_view(view.figures, ORDERS.partitions, "this worker")
        return {
            # the partitions the figures count (after a rebalance: once recovered)
            "partitions": sorted(mine.covered),
            "newest_event_us": mine.newest_event_us,
            "families": view.figures.snapshot(),
        }

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
            "group": (await view.current()).coverage(),
        }

    return api


STATIC = Path(__file__).parent / "static"


def _wants_html(request: Request) -> bool:
    """A browser's Accept header names text/html before any JSON."""
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def _daily(f: Figures, r: report.Range) -> list[dict[str, Any]]:
    rows = {row["day"]: row for row in report.sales(f, r, "day")}
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


def _management(view: View, f: Figures, r: report.Range) -> dict[str, Any]:
    before = report.Range(r.first - len(r.days()), r.first - 1)
    now, then = report.totals(f, r), report.totals(f, before)
    growth = report.rate(Decimal(now["gmv"]) - Decimal(then["gmv"]), Decimal(then["gmv"]))
    return {
        "gmv": now["gmv"],
        "orders": now["orders"],
        "margin": report.margin(f, r, view.rules()),
        "previous_period": {**then, "from": day_date(before.first).isoformat()},
        "gmv_growth": growth,
        "by_channel": report.sales(f, r, "channel"),
        "daily": _daily(f, r),
    }


def _operations(view: View, f: Figures, r: report.Range) -> dict[str, Any]:
    funnel = report.funnel(f, r)
    return {
        "conversion": {k: funnel[k] for k in ("paid_rate", "shipped_rate", "delivered_rate")},
        "aov": report.totals(f, r)["aov"],
        "repurchase_rate": funnel["repurchase_rate"],
        "cancellation_rate": funnel["cancellation_rate"],
        "return_rate": funnel["return_rate"],
        "funnel": funnel,
        "exceptions": report.exceptions(f, r),
        "tickets": report.tickets(f, r),
        "daily": _daily(f, r),
    }


def _warehouse(view: View, f: Figures, r: report.Range) -> dict[str, Any]:
    shipping = report.shipping(f, r)
    accuracy = report.accuracy(f, r)
    daily = []
    for day in r.days():
        one = report.Range(day, day)
        stage = report.stages(f, one)["paid_shipped"]
        ship = report.shipping(f, one)
        picking = report.accuracy(f, one)
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
        "stages": report.stages(f, r),
        "on_time_rate": shipping["on_time_rate"],
        "picking_accuracy": accuracy["accuracy"],
        "accuracy": accuracy,
        "shipments": shipping["shipments"],
        "backlog": shipping["backlog"],
        "by_warehouse": shipping["by_warehouse"],
        "alerts": [a.view() for a in view.alerts().alerts.values() if a.active],
        "daily": daily,
    }


DASHBOARDS: dict[str, Callable[[View, Figures, report.Range], dict[str, Any]]] = {
    "management": _management,
    "operations": _operations,
    "warehouse": _warehouse,
}

__all__ = ["View", "create_api", "micros"]
