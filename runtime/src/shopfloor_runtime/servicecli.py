"""The command line every service shares: `python -m <service> [serve|republish|...]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from argparse import Namespace
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from shopfloor_runtime import deadletters
from shopfloor_runtime.consumer import TrackedConsumer
from shopfloor_runtime.ports import port_in_use
from shopfloor_runtime.projection import Projector
from shopfloor_runtime.redrive import RedriveFailed
from shopfloor_runtime.relay import OutboxRelay
from shopfloor_runtime.service import Service
from shopfloor_runtime.settings import ServiceSettings
from shopfloor_runtime.store import ServiceApplication


class RunnableService(Protocol):
    """What the commands need of an assembled service (a `service.Service`)."""

    settings: ServiceSettings
    app: ServiceApplication
    relay: OutboxRelay
    consumer: TrackedConsumer
    projectors: list[Projector]
    http: FastAPI

    def rebuild(self) -> int: ...

    def close(self) -> None: ...


Build = Callable[[ServiceSettings], RunnableService]

USAGE = """Operator commands, on the service's own store:
  republish            publish every stored event again from position 1
  rebuild-projections  drop and rebuild the read models from the event log (stop the
                       service first)
  dead-letters [list]  the dead letters not yet redriven (--all: every one)
  dead-letters show REF...     one letter in full: where it came from, why, the message
  dead-letters redrive REF...  apply letters again with the current code, once each
                       (--all: every pending one); REF is partition:offset from the list
"""


def _serve(name: str, settings: ServiceSettings, build: Build, args: Namespace) -> int:
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


def _republish(name: str, settings: ServiceSettings, build: Build, args: Namespace) -> int:
    service = build(settings)
    try:
        old = service.relay.states.reset()
    finally:
        service.close()
    print(f"{name}: the relay will publish every event again from position 1 (it was at {old})")
    return 0


def _rebuild(name: str, settings: ServiceSettings, build: Build, args: Namespace) -> int:
    service = build(settings)
    try:
        count = service.rebuild()
    finally:
        service.close()
    print(f"{name}: read models rebuilt from {count} stored events")
    return 0


def _dead_letters(name: str, settings: ServiceSettings, build: Build, args: Namespace) -> int:
    action, *refs = args.args or ["list"]
    if action not in ("list", "show", "redrive"):
        raise UsageError(f"dead-letters {action}: expected list, show or redrive")
    if action != "list" and not refs and not (action == "redrive" and args.all):
        raise UsageError(f"dead-letters {action}: name the letters (partition:offset)")
    letters = asyncio.run(deadletters.read(settings.broker, name))
    service = build(settings)
    try:
        names = [letter.tracking_name for letter in letters]
        done = service.app.tracked_positions(names) if names else {}
        pending = [letter for letter in letters if not done[letter.tracking_name]]
        if action == "list":
            print(f"{name}: {len(pending)} pending of {len(letters)} dead letters on dlq.{name}")
            for letter in letters if args.all else pending:
                state = "redriven" if done[letter.tracking_name] else "pending"
                print(
                    f"{letter.ref:>8}  {state:<8}  {letter.headers.get('dlq.failed_at', '?')}  "
                    f"{letter.event_type}  from {letter.source}: {letter.error}"
                )
            return 0
        chosen = deadletters.pick(letters, refs) if refs else pending
        if action == "show":
            for letter in chosen:
                state = "redriven" if done[letter.tracking_name] else "pending"
                print(json.dumps({**letter.describe(), "state": state}, indent=2))
            return 0
        return _redrive(name, service, chosen)
    finally:
        service.close()


def _redrive(name: str, service: RunnableService, letters: list[deadletters.DeadLetter]) -> int:
    failed = 0
    for letter in letters:
        try:
            outcome = service.consumer.redrive(letter.record, letter.tracking_name)
        except RedriveFailed as error:
            failed += 1
            print(f"{letter.ref:>8}  still failing (stays pending): {error}")
            continue
        print(f"{letter.ref:>8}  {outcome}  {letter.event_type} from {letter.source}")
    print(f"{name}: {len(letters) - failed} of {len(letters)} dead letters redriven")
    return 1 if failed else 0


class UsageError(Exception):
    pass


COMMANDS = {
    "serve": _serve,
    "republish": _republish,
    "rebuild-projections": _rebuild,
    "dead-letters": _dead_letters,
}


def main(
    service: type[Service[Any, Any]],
    argv: Sequence[str] | None = None,
    settings: ServiceSettings | None = None,
) -> int:
    """`python -m <package> [command]` for the service class `service`; its settings
    from the environment unless given."""
    name, settings_type, build = service.name, service.settings_type, service
    parser = argparse.ArgumentParser(
        prog=f"python -m {name.replace('-', '_')}",
        description=f"The {name} service.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    parser.add_argument("args", nargs="*", help="the command's own arguments")
    parser.add_argument("--all", action="store_true", help="dead-letters: include every one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    prefix = name.upper().replace("-", "_")
    try:
        settings = settings or settings_type()
    except ValidationError as error:
        first = error.errors()[0]
        print(
            f"{name}: bad setting {prefix}_{'__'.join(map(str, first['loc'])).upper()}: "
            f"{first['msg']}",
            file=sys.stderr,
        )
        return 2
    try:
        return COMMANDS[args.command](name, settings, build, args)
    except UsageError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except LookupError as error:
        print(f"{name}: {args.command}: {error.args[0]}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - one readable line, never a traceback
        print(f"{name}: {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
