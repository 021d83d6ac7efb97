"""`python -m order`: run the order service (API, relay, consumer, read model, deadlines).

Operator commands on the same store:
  python -m order republish            publish every stored event again from position 1
  python -m order rebuild-projections  drop and rebuild the read model from the event log
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError
from shopfloor_runtime.launcher import port_in_use

from order.bootstrap import build
from order.settings import Settings


def serve(settings: Settings) -> int:
    if port_in_use(settings.api.host, settings.api.port):
        print(
            f"order: {settings.api.host}:{settings.api.port} is already in use "
            "(set ORDER_API__PORT)",
            file=sys.stderr,
        )
        return 1
    service = build(settings)
    print(
        f"order: API on http://{settings.api.host}:{settings.api.port} "
        f"(docs at /docs), broker {settings.broker.bootstrap_servers}",
        flush=True,
    )
    try:
        uvicorn.run(
            service.http, host=settings.api.host, port=settings.api.port, log_level="warning"
        )
    finally:
        service.close()
    return 0


def republish(settings: Settings) -> int:
    service = build(settings)
    try:
        old = service.relay.states.reset()
    finally:
        service.close()
    print(f"order: the relay will publish every event again from position 1 (it was at {old})")
    return 0


def rebuild(settings: Settings) -> int:
    service = build(settings)
    try:
        count = service.projector.rebuild()
    finally:
        service.close()
    print(f"order: read model rebuilt from {count} stored events")
    return 0


COMMANDS = {"serve": serve, "republish": republish, "rebuild-projections": rebuild}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m order",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s order %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        print(
            f"order: bad setting ORDER_{'__'.join(map(str, first['loc'])).upper()}: {first['msg']}",
            file=sys.stderr,
        )
        return 2
    try:
        return COMMANDS[args.command](settings)
    except Exception as error:  # noqa: BLE001 - one readable line, never a traceback
        print(f"order: {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
