"""`python -m analytics`: the analytics worker (faust) with its HTTP API on
ANALYTICS_API__PORT (8006), bound to 127.0.0.1 unless ANALYTICS_API__HOST says otherwise.
`python -m analytics rebuild`: its state computed again from every topic (rebuild.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import faust
from aiokafka.errors import KafkaError
from faust.contrib.asgi import serve_asgi
from prometheus_client import REGISTRY
from pydantic import ValidationError
from shopfloor_contracts.topics import dlq_topic
from shopfloor_runtime.applier import first_error
from shopfloor_runtime.broker import ensure_topics
from shopfloor_runtime.rulesfile import RulesFileError

from analytics.api import View, create_api, latest_day
from analytics.app import SERVICE, create_app
from analytics.facts import TOPICS
from analytics.metrics import FiguresCollector
from analytics.rebuild import current_generation, group_for, rebuild
from analytics.settings import AnalyticsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "rebuild"])
    args = parser.parse_args(argv)
    try:
        settings = AnalyticsSettings()
    except ValidationError as error:
        print(f"analytics: settings: {first_error(error)}", file=sys.stderr)
        return 2
    try:
        if args.command == "rebuild":
            asyncio.run(rebuild(settings.broker, settings.app_id))
            return 0
        serve(settings)
    except KafkaError as error:
        print(
            f"analytics: the broker at {settings.broker.bootstrap_servers}: {error}",
            file=sys.stderr,
        )
        return 1
    return 0


def serve(settings: AnalyticsSettings) -> None:
    # with the contracts' partition counts; faust would only ever create its own topics
    asyncio.run(ensure_topics(settings.broker, [*TOPICS, dlq_topic(SERVICE)]))
    generation = asyncio.run(current_generation(settings.broker, settings.app_id))
    settings = settings.model_copy(update={"app_id": group_for(settings.app_id, generation)})
    try:
        worker = create_app(settings)
    except RulesFileError as error:
        raise SystemExit(f"analytics: {error}") from None
    app, analytics, rules = worker.app, worker.analytics, worker.rules

    async def ready() -> bool:
        return True  # the API starts only once the table is recovered

    def status() -> dict[str, object]:
        table = analytics.table
        return {
            "partitions": sorted(table.held_partitions()),
            "entities": len(table),
            "generation": generation,
            "consumer_group": settings.app_id,
        }

    group = worker.group
    view = View(
        figures=analytics.processor.figures,
        progress=lambda: analytics.progress,
        rules=rules.current,
        status=status,
        ready=ready,
        alerts=lambda: worker.alerts.book,
        group=group.current,
    )
    REGISTRY.register(
        FiguresCollector(
            lambda: group.latest().figures,
            view.progress,
            view.rules,
            view.alerts,
            lambda: latest_day(group.latest()),
        )
    )
    serve_asgi(
        app,
        create_api(view),
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        lifespan="off",
    )
    runner = faust.Worker(app, loglevel=settings.log_level, loop=asyncio.new_event_loop())
    runner.execute_from_commandline()


if __name__ == "__main__":
    sys.exit(main())
