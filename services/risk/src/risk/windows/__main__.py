"""`python -m risk.windows`: the velocity worker (see risk.windows)."""

from __future__ import annotations

import asyncio

import faust
from shopfloor_contracts.topics import ORDERS, RISK_VELOCITY
from shopfloor_runtime.broker import ensure_topics

from risk.windows.app import create_app
from risk.windows.settings import WindowsSettings


def main() -> None:
    settings = WindowsSettings()
    # with the contracts' partition counts; faust would only ever create its own topics
    asyncio.run(ensure_topics(settings.broker, [ORDERS.name, RISK_VELOCITY.name]))
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, loop=asyncio.new_event_loop())
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
