"""A service's port is written once, as its settings' default (the registry reads it from
there). The deploy files have to repeat it: these tests fail when a Dockerfile, the compose
file or the Prometheus targets disagree with the registry, leave a registered service out,
or put the dev stack into a service image."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics.settings import AnalyticsSettings
from shopfloor_devstack.parts import parts, standalone
from shopfloor_runtime.registry import ServiceSpec, services

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SPECS = services()


def dockerfile(spec: ServiceSpec) -> str:
    path = ROOT / "services" / spec.name / "Dockerfile"
    assert path.is_file(), f"{spec.name} has no {path.relative_to(ROOT)}"
    return path.read_text()


def compose_services() -> dict[str, list[str]]:
    """The compose file's `services:` entries, each with its own lines. A tiny reader for
    the one layout the file uses (two-space indents), so the check needs no YAML library."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    inside = False
    for line in (DEPLOY / "compose.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside, current = line.rstrip() == "services:", None
        elif inside and (key := re.fullmatch(r"  ([\w-]+):\s*", line)):
            current = entries.setdefault(key[1], [])
        elif inside and current is not None:
            current.append(line.strip())
    return entries


def prometheus_targets() -> set[str]:
    text = (DEPLOY / "prometheus.yml").read_text()
    return {t for group in re.findall(r"targets:\s*\[([^\]]*)\]", text) for t in _quoted(group)}


def _quoted(text: str) -> list[str]:
    return re.findall(r"[\"']([^\"']+)[\"']", text)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_dockerfile_exposes_and_checks_the_port_the_settings_default_to(
    spec: ServiceSpec,
) -> None:
    text = dockerfile(spec)
    assert re.findall(r"^EXPOSE\s+(\d+)\s*$", text, re.M) == [str(spec.default_port)]
    health = re.findall(r"^HEALTHCHECK .*", text, re.M)
    assert len(health) == 1
    assert re.findall(r"://[\w.-]+:(\d+)/", health[0]) == [str(spec.default_port)], health[0]
    assert re.search(rf'^CMD \["python", "-m", "{spec.package}"\]', text, re.M)
    assert re.search(rf"^ENV {spec.env_prefix}API__HOST=0\.0\.0\.0\b", text, re.M)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_service_image_does_not_install_the_dev_stack(spec: ServiceSpec) -> None:
    steps = [ln for ln in dockerfile(spec).splitlines() if ln.startswith(("COPY", "RUN", "ADD"))]
    assert not [step for step in steps if "devstack" in step], steps


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_compose_runs_every_service_on_its_port_from_its_dockerfile(spec: ServiceSpec) -> None:
    entry = compose_services().get(spec.name)
    assert entry is not None, f"{spec.name} is missing from deploy/compose.yaml"
    port = spec.default_port
    assert [ln for ln in entry if ln.startswith("ports:")] == [
        f'ports: ["127.0.0.1:{port}:{port}"]'
    ], entry
    assert any(f"dockerfile: services/{spec.name}/Dockerfile" in ln for ln in entry), entry


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_compose_runs_every_worker_make_run_starts_beside_its_service(spec: ServiceSpec) -> None:
    for companion in parts([spec.name])[spec.name].companions:
        entry = compose_services().get(companion.name)
        assert entry is not None, f"{companion.name} is missing from deploy/compose.yaml"
        assert f'command: ["python", "-m", "{companion.module}"]' in entry, entry
        assert any(f"dockerfile: services/{spec.name}/Dockerfile" in ln for ln in entry), entry
        assert not [ln for ln in entry if ln.startswith("ports:")], "a worker serves no port"


@pytest.mark.parametrize("name", sorted(standalone(s.name for s in SPECS)))
def test_compose_runs_every_worker_of_its_own_make_run_starts_on_its_port(name: str) -> None:
    worker = standalone(s.name for s in SPECS)[name].worker
    assert worker is not None
    entry = compose_services().get(name)
    assert entry is not None, f"{name} is missing from deploy/compose.yaml"
    port = worker.default_port
    assert f'ports: ["127.0.0.1:{port}:{port}"]' in entry, entry
    assert any(f"dockerfile: services/{name}/Dockerfile" in ln for ln in entry), entry
    image = (ROOT / f"services/{name}/Dockerfile").read_text()
    assert re.search(rf'^CMD \["python", "-m", "{worker.module}"\]', image, re.M)
    assert f"{name}:{port}" in prometheus_targets()


#: the analytics worker serves an API and metrics but is no store-backed service of the
#: registry (a faust worker): its port from its own settings
ANALYTICS_PORT = AnalyticsSettings.model_fields["api"].default.port


def test_prometheus_scrapes_every_service_on_its_port_and_nothing_else() -> None:
    expected = {f"{spec.name}:{spec.default_port}" for spec in SPECS}
    assert prometheus_targets() == expected | {f"analytics:{ANALYTICS_PORT}"}


def test_compose_runs_the_analytics_worker_on_its_port_from_its_dockerfile() -> None:
    entry = compose_services()["analytics"]
    assert f'ports: ["127.0.0.1:{ANALYTICS_PORT}:{ANALYTICS_PORT}"]' in entry, entry
    assert any("dockerfile: services/analytics/Dockerfile" in ln for ln in entry), entry
    image = (ROOT / "services/analytics/Dockerfile").read_text()
    assert re.search(r'^CMD \["python", "-m", "analytics"\]', image, re.M)
    assert f"127.0.0.1:{ANALYTICS_PORT}/health" in image


def test_the_readers_see_what_the_files_hold() -> None:
    """Guards the hand-rolled readers above: they must find the entries that are there."""
    assert {"kafka", "postgres", "prometheus"} <= set(compose_services())
    assert {"order", "inventory"} <= {target.split(":")[0] for target in prometheus_targets()}


@functools.cache
def analytics_samples() -> tuple[tuple[str, frozenset[tuple[str, str]]], ...]:
    """Every sample (name, labels) the analytics worker's /metrics shows after a day and a
    bit of recorded traffic: its own collector, over figures built from the harness."""
    from analytics.alerts import AlertBook
    from analytics.figures import Figures
    from analytics.harness import traffic
    from analytics.metrics import FiguresCollector
    from analytics.processing import Processor
    from analytics.rules import AnalyticsRules

    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    processor = Processor({}, Figures())
    messages = traffic(200, start, seed=1)
    assert processor.apply((i, t, k, v) for i, (t, k, v) in enumerate(messages)) == []
    collector = FiguresCollector(
        lambda: processor.figures,
        lambda: processor.progress,
        AnalyticsRules,
        AlertBook,
        lambda: start.date() + timedelta(days=1),  # picks, packs and shipments that day
    )
    return tuple(
        (sample.name, frozenset(sample.labels.items()))
        for family in collector.collect()
        for sample in family.samples
    )


@pytest.mark.parametrize("role", ["management", "operations", "warehouse"])
def test_each_role_has_a_grafana_dashboard_on_metrics_the_analytics_worker_exports(role: str):
    """Every series a panel selects (metric name and label matchers) is one the worker
    exports: a renamed metric or label value fails here, not on an empty panel."""
    board = json.loads((ROOT / f"deploy/grafana/{role}.json").read_text())
    assert board["uid"] == f"shopfloor-{role}" and board["panels"]
    exported = analytics_samples()
    for panel in board["panels"]:
        for target in panel["targets"]:
            selectors = re.findall(r"(analytics_[a-z_]+)(?:\{([^}]*)\})?", target["expr"])
            assert selectors, panel["title"]
            for name, matchers in selectors:
                wanted = set(re.findall(r'(\w+)="([^"]*)"', matchers))
                assert any(n == name and wanted <= labels for n, labels in exported), (
                    f"{panel['title']}: {name}{{{matchers}}} is not exported"
                )


def test_the_warehouse_board_shows_picking_accuracy():
    board = json.loads((ROOT / "deploy/grafana/warehouse.json").read_text())
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    assert 'analytics_accuracy_ratio{window="30d",check="picking"}' in exprs


def test_risk_and_its_velocity_worker_run_on_the_deployed_rules_file():
    """compose mounts deploy/risk-rules.toml into both risk processes (one file: the
    service and the worker cannot disagree on a window), and the file as shipped holds
    the defaults, so deploying it changes nothing until an operator edits it."""
    from risk.rules import RiskRules, load_rules

    assert load_rules(DEPLOY / "risk-rules.toml") == RiskRules()
    entries = compose_services()
    for name, variable in (
        ("risk", "RISK_RULES_FILE"),
        ("risk-windows", "RISK_WINDOWS_RULES_FILE"),
    ):
        lines = "\n".join(entries[name])
        assert f"{variable}: /etc/shopfloor/risk-rules.toml" in lines, name
        assert "./risk-rules.toml:/etc/shopfloor/risk-rules.toml:ro" in lines, name
