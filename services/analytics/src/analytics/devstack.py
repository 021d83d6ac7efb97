"""The analytics worker's part in the dev stack (`shopfloor run`): a part of its own, as
analytics is no store-backed service of the registry. The stack starts the worker
(`python -m analytics`, faust data in <data dir>/analytics) beside the services, waits for
its /ready, prints its dashboards, docs and metrics, and shows on the progress line what
the worker says of itself through its API: events applied, orders and GMV (the 30 days up
to the newest event), active alerts. It plays no users: it only reads the topics, and the
broker starts empty on every run, so it reads again whatever the services re-publish.
Only the dev stack imports this module (entry point `shopfloor.devstack`)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
from shopfloor_devstack.parts import Part, Probe, Worker

from analytics.settings import AnalyticsSettings


async def _get(client: httpx.AsyncClient, url: str, **params: str) -> Any:
    response = await client.get(url, params=params)
    response.raise_for_status()
    return response.json()


async def figures_so_far(client: httpx.AsyncClient, url: str) -> str:
    """ "5234 events applied, 812 orders, GMV €41,234.50, no active alerts", from
    GET /progress, /figures/summary and /alerts?status=active."""
    progress, summary, alerts = await asyncio.gather(
        _get(client, f"{url}/progress"),
        _get(client, f"{url}/figures/summary"),
        _get(client, f"{url}/alerts", status="active"),
    )
    totals = summary["totals"]
    shown = [
        f"{progress['applied']} events applied",
        f"{totals['orders']} orders",
        f"GMV €{Decimal(totals['gmv']):,}",
    ]
    if progress.get("dead_letters"):
        shown.append(f"{progress['dead_letters']} dead letters")
    if alerts:
        named = ", ".join(f"{a['rule']} {a['level']}" for a in alerts)
        shown.append(f"{len(alerts)} active alert{'s' if len(alerts) > 1 else ''} ({named})")
    else:
        shown.append("no active alerts")
    return ", ".join(shown)


PART = Part(
    probe=Probe("analytics", figures_so_far),
    worker=Worker(
        module="analytics",
        settings=AnalyticsSettings,
        data_dir_variable="ANALYTICS_DATADIR",
        # the page links the other roles' dashboards (operations, warehouse)
        links=(
            ("dashboards", "/dashboards/management"),
            ("docs", "/docs"),
            ("metrics", "/metrics"),
        ),
    ),
)
