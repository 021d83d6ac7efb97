"""The command line every service shares: `python -m <service> [serve|republish|...]`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from pydantic import ValidationError

from shopfloor_runtime.launcher import port_in_use

USAGE = """Operator commands, on the service's own store:
  republish            publish every stored event again from position 1
  rebuild-projections  drop and rebuild the read models from the event log (stop the
                       service first)
"""


def _serve(name: str, settings: Any, build: Callable[[Any], Any]) -> int:
    api = settings.api
    if port_in_use(api.host, api.port):
        prefix = name.upper().replace("-", "_")
        print(
            f"{name}: {api.host}:{api.port} is already in use (set {prefix}_API__PORT)",
            file=sys.stderr,
        )
        return 1
    service = build(settings)
    print(
        f"{name}: API on http://{api.host}:{api.port} (docs at /docs), broker "
        f"{settings.broker.bootstrap_servers}",
        flush=True,
    )
    try:
        uvicorn.run(service.http, host=api.host, port=api.port, log_level="warning")
    finally:
        service.close()
    return 0


def _republish(name: str, settings: Any, build: Callable[[Any], Any]) -> int:
    service = build(settings)
    try:
        old = service.relay.states.reset()
    finally:
        service.close()
    print(f"{name}: the relay will publish every event again from position 1 (it was at {old})")
    return 0


def _rebuild(name: str, settings: Any, build: Callable[[Any], Any]) -> int:
    service = build(settings)
    try:
        count = sum(projector.rebuild() for projector in service.projectors)
    finally:
        service.close()
    print(f"{name}: read models rebuilt from {count} stored events")
    return 0


COMMANDS = {"serve": _serve, "republish": _republish, "rebuild-projections": _rebuild}


def main(
    name: str,
    settings_type: Callable[[], Any],
    build: Callable[[Any], Any],
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {name.replace('-', '_')}",
        description=f"The {name} service.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    prefix = name.upper().replace("-", "_")
    try:
        settings = settings_type()
    except ValidationError as error:
        first = error.errors()[0]
        print(
            f"{name}: bad setting {prefix}_{'__'.join(map(str, first['loc'])).upper()}: "
            f"{first['msg']}",
            file=sys.stderr,
        )
        return 2
    try:
        return COMMANDS[args.command](name, settings, build)
    except Exception as error:  # noqa: BLE001 - one readable line, never a traceback
        print(f"{name}: {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
