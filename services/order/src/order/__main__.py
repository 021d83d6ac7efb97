"""`python -m order`: the order service (API, relay, consumer, read model, deadlines)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError
from shopfloor_runtime.launcher import port_in_use

from order.bootstrap import build
from order.settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s order %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        print(f"order: bad setting ORDER_{'__'.join(map(str, first['loc'])).upper()}: "
              f"{first['msg']}", file=sys.stderr)
        return 2
    if port_in_use(settings.api.host, settings.api.port):
        print(f"order: {settings.api.host}:{settings.api.port} is already in use "
              "(set ORDER_API__PORT)", file=sys.stderr)
        return 1
    service = build(settings)
    print(f"order: API on http://{settings.api.host}:{settings.api.port} "
          f"(docs at /docs), broker {settings.broker.bootstrap_servers}", flush=True)
    try:
        uvicorn.run(service.http, host=settings.api.host, port=settings.api.port,
                    log_level="warning")
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
