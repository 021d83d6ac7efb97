"""`python -m analytics`: the analytics worker (faust) with its HTTP API on
ANALYTICS_API__PORT (8006), bound to 127.0.0.1 unless ANALYTICS_API__HOST says otherwise."""

from __future__ import annotations

import asyncio

import faust
from faust.contrib.asgi import serve_asgi
from shopfloor_contracts.topics import dlq_topic
from shopfloor_runtime.broker import ensure_topics
from shopfloor_runtime.rulesfile import RulesFileError

from analytics.api import View, create_api
from analytics.app import SERVICE, create_app
from analytics.facts import TOPICS
from analytics.settings import AnalyticsSettings


def main() -> None:
    settings = AnalyticsSettings()
    # with the contracts' partition counts; faust would only ever create its own topics
    asyncio.run(ensure_topics(settings.broker, [*TOPICS, dlq_topic(SERVICE)]))
    try:
        worker = create_app(settings)
    except RulesFileError as error:
        raise SystemExit(f"analytics: {error}") from None
    app, analytics, rules = worker.app, worker.analytics, worker.rules

    async def ready() -> bool:
        return True  # the API starts only once the table is recovered

    def status() -> dict[str, object]:
        table = analytics.processor.table
        held = table.held_partitions() if hasattr(table, "held_partitions") else set()
        return {"partitions": sorted(held), "entities": len(table)}

    view = View(
        figures=analytics.processor.figures,
        progress=lambda: analytics.progress,
        rules=lambda: rules,
        status=status,
        ready=ready,
        alerts=lambda: worker.alerts.book,
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
    main()
