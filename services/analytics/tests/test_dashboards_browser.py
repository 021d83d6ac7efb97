"""Each dashboard page in real headless Chromium (Debian's `chromium`, driven by
Playwright with its executable path; `.ci/run` installs it): the page loads the vendored
Chart.js (no CDN), draws its charts, and shows the numbers the JSON API returns, in its
tiles and in its charts' data. The API is the real one over figures from recorded
traffic, served by uvicorn; no broker is involved. With SHOPFLOOR_SCREENSHOTS=<dir> the
screenshots go there (docs/ holds the committed ones)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from analytics.api import View, create_api
from analytics.group import GroupView, Member
from analytics.harness import recorded_view, traffic
from shopfloor_runtime.testing import free_port

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROLES = ("management", "operations", "warehouse")


@contextmanager
def serving(view: View) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_api(view), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=24)
    alert = {
        "alert_id": "backlog",
        "rule": "backlog",
        "level": "yellow",
        "summary": "412 confirmed orders not shipped: 41.2 % of the daily capacity",
        "figures": {"unshipped": "412"},
        "raised_at": "2026-12-04T10:00:00+00:00",
        "as_of": "2026-12-04",
    }
    # three weeks of orders
    view = recorded_view(traffic(3000, start, seed=9, spacing_s=600), [alert])
    with serving(view) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (apt-get install chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def money(value: str | None) -> str:
    return "–" if value is None else f"{Decimal(value):,.2f}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


@pytest.mark.parametrize("role", ROLES)
def test_each_page_draws_the_numbers_the_api_returns(served, browser, role, tmp_path):
    api = httpx.get(f"{served}/dashboards/{role}", headers={"accept": "application/json"}).json()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    seen_requests: list[str] = []
    page.on("request", lambda r: seen_requests.append(r.url))
    page.goto(f"{served}/dashboards/{role}")
    page.wait_for_function("window.dashboard && window.dashboard.updates >= 1", timeout=15_000)
    assert all(u.startswith(served) for u in seen_requests), "nothing from outside (no CDN)"

    def tile(name: str) -> str:
        return page.get_by_test_id(f"kpi-{name}").inner_text()

    def chart(name: str) -> dict[str, Any]:
        return page.evaluate(
            f"(() => {{ const c = window.dashboard.charts['{name}'];"
            " return {labels: c.data.labels, values: c.data.datasets[0].data}; })()"
        )

    if role == "management":
        assert tile("gmv") == money(api["gmv"])
        assert tile("orders") == f"{api['orders']:,}"
        assert tile("margin") == money(api["margin"]["margin"])
        daily = chart("daily_gmv")
        assert daily["labels"] == [d["day"] for d in api["daily"]]
        assert daily["values"] == [float(d["gmv"]) for d in api["daily"]]
        assert chart("channel_gmv")["labels"] == [c["channel"] for c in api["by_channel"]]
        by_channel = api["margin"]["by_channel"]
        assert chart("channel_margin") == {
            "labels": [c["channel"] for c in by_channel],
            "values": [float(c["margin_before_shipping"]) for c in by_channel],
        }
    elif role == "operations":
        assert tile("paid_rate") == share(api["conversion"]["paid_rate"])
        assert tile("aov") == money(api["aov"])
        funnel = chart("funnel")
        assert funnel["values"] == [
            api["funnel"][k] for k in ("placed", "paid", "shipped", "delivered")
        ]
        assert chart("exceptions_by_rule")["values"] == list(api["exceptions"]["by_rule"].values())
        assert tile("exceptions") == f"{api['exceptions']['orders']:,}"
        assert tile("satisfaction") == f"{api['tickets']['satisfaction']:.2f}"
    else:
        assert tile("backlog") == f"{api['backlog']:,}"
        assert tile("on_time_rate") == share(api["on_time_rate"])
        assert tile("picking_accuracy") == share(api["picking_accuracy"]) != "–"
        assert tile("pack_check_rate") == share(api["accuracy"]["pack_check_rate"]) != "–"
        assert chart("picking_accuracy")["values"] == [
            None if d["picking_accuracy"] is None else 100 * d["picking_accuracy"]
            for d in api["daily"]
        ]
        assert chart("shipments_per_day")["values"] == [d["shipments"] for d in api["daily"]]
        assert chart("by_warehouse")["labels"] == list(api["by_warehouse"])
        assert (
            "412 confirmed orders not shipped" in page.get_by_test_id("alert-backlog").inner_text()
        )
    # the charts are really drawn: each canvas has pixels that are not blank
    for name in page.evaluate("Object.keys(window.dashboard.charts)"):
        painted = page.evaluate(
            f"""(() => {{ const c = document.querySelector('[data-testid="chart-{name}"]');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }})()"""
        )
        assert painted > 500, f"chart {name} is blank"
    out = Path(os.environ.get("SHOPFLOOR_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"analytics-{role}.png"), full_page=True)
    page.close()


def test_a_page_says_when_its_figures_miss_a_worker_s_partitions(browser):
    """With two workers, one that does not answer leaves its partitions out of the
    group's figures: the page shows what it has, marked partial, naming the partitions
    and the worker's error, instead of passing a part off as the whole."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    view = recorded_view(traffic(200, start, seed=4, spacing_s=600))
    peer = "http://analytics-2:8006"

    async def group() -> GroupView:
        return GroupView(
            view.figures,
            6,
            {0, 1, 2},
            view.newest_event_us(),
            [Member("http://analytics-1:8006", [0, 1, 2]), Member(peer, [3, 4, 5], "timeout")],
        )

    view.group = group
    with serving(view) as url:
        page = browser.new_page()
        page.goto(f"{url}/dashboards/management")
        page.wait_for_function("window.dashboard && window.dashboard.updates >= 1", timeout=15_000)
        status = page.locator("#updated").inner_text()
        assert "partial: partitions 3, 4, 5 of 6 not counted" in status
        assert f"{peer}: timeout" in status
        assert "stale" in (page.locator("#live").get_attribute("class") or "")
        page.close()


def test_a_page_shows_new_figures_without_being_reloaded(browser):
    """The page reads the JSON again every 5 s: an order counted meanwhile shows up on
    the open page, as it does while `make run` runs."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    view = recorded_view(traffic(120, start, seed=5, spacing_s=600))
    with serving(view) as url:
        page = browser.new_page()
        page.goto(f"{url}/dashboards/management")
        page.wait_for_function("window.dashboard && window.dashboard.updates >= 1", timeout=15_000)
        before = page.get_by_test_id("kpi-orders").inner_text()
        newest = view.figures.newest_us or 0
        more = view.figures.copy()  # a new order counted (swapped in whole: no torn read)
        more.replace(
            "order:live-1",
            None,
            {
                "placed": newest,
                "channel": "shop",
                "customer": "cust-live",
                "total": 1000,
                "discount": 0,
                "lines": [["SKU-001", 1, 1000]],
                "method": "card",
            },
        )
        view.figures = more
        page.wait_for_function("window.dashboard.updates >= 2", timeout=15_000)
        assert before == "120"
        assert page.get_by_test_id("kpi-orders").inner_text() == "121"
        page.close()
