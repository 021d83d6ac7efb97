"""A faust-streaming worker that batches "shipment ready" records into picking waves, one
lane (warehouse + zone) at a time: the stream design that `bench.faust_waves` puts through
SIGKILLs and rebalances. Run by that bench as a separate process:

    WAVES_BROKER=127.0.0.1:PORT ... python -m faust -A bench.faust_wave_app worker -l info

Input (`WAVES_INPUT`, keyed by lane, JSON values):
- `{"kind": "shipment", "lane": "WH-BER:B", "id": "s-000123", "at": <epoch s>}`
- `{"kind": "tick", "lane": ..., "at": <epoch s>, "flush": bool}`: the window clock. A
  faust timer cannot write a table (a table write needs the source event, for its
  changelog partition) and would read the wall clock, so a replay would cut different
  waves; time comes through the log instead, as one tick per lane from the producer.

State: a table `lane -> {"released": n, "waiting": [ids], "opened": at, "offset": o}`.
A shipment joins `waiting`; at `WAVES_SIZE` (50) the lane releases wave `released + 1`
as `WaveReleased {"wave_id": f"{lane}:{n}", "shipments": [...]}` on `WAVES_OUTPUT`; a tick
releases a non-empty lane whose first shipment is `WAVES_WINDOW_S` old (or any, on flush).

`WAVES_VARIANT`:
- `naive`: exactly that (what the design reads like in faust's documentation);
- `guarded`: the lane state also carries the input offset it has applied, and records at
  or below it are skipped (a replay after a kill re-reads from the last committed offset,
  but the restored table may already contain those records); and the WaveReleased send
  is awaited until the broker acknowledged it before the table is written, so a
  changelog entry that says "wave n released" never exists without wave n on the output.

Settings (environment): `WAVES_BROKER`, `WAVES_APP_ID`, `WAVES_STORE` (`memory://` or
`rocksdb://`), `WAVES_DATADIR`, `WAVES_INPUT`, `WAVES_OUTPUT`, `WAVES_PARTITIONS` (6),
`WAVES_SIZE` (50), `WAVES_WINDOW_S` (300), `WAVES_SESSION_TIMEOUT_S` (6),
`WAVES_COMMIT_INTERVAL_S` (faust's 2.8), `WAVES_CONSISTENCY_CHECK` (1: faust's default),
`WAVES_WORKER` (a name put in each wave).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable
from typing import Any

import faust

BROKER = os.environ.get("WAVES_BROKER", "127.0.0.1:9092")
VARIANT = os.environ.get("WAVES_VARIANT", "naive")
SIZE = int(os.environ.get("WAVES_SIZE", "50"))
WINDOW_S = float(os.environ.get("WAVES_WINDOW_S", "300"))
PARTITIONS = int(os.environ.get("WAVES_PARTITIONS", "6"))
WORKER = os.environ.get("WAVES_WORKER", f"pid-{os.getpid()}")
GUARDED = VARIANT == "guarded"
if VARIANT not in ("naive", "guarded"):
    raise SystemExit(f"WAVES_VARIANT must be naive or guarded, not {VARIANT!r}")

app = faust.App(
    os.environ.get("WAVES_APP_ID", "shopfloor-waves"),
    broker=f"kafka://{BROKER}",
    store=os.environ.get("WAVES_STORE", "memory://"),
    datadir=os.environ.get("WAVES_DATADIR", "faust-data"),
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    broker_session_timeout=float(os.environ.get("WAVES_SESSION_TIMEOUT_S", "6")),
    broker_heartbeat_interval=1.0,
    broker_commit_interval=float(os.environ.get("WAVES_COMMIT_INTERVAL_S", "2.8")),
    consumer_auto_offset_reset="earliest",
    processing_guarantee="at_least_once",  # exactly_once needs transactions: not on Tansu
    producer_acks=-1,
    web_enabled=False,
    # faust's check that a RocksDB file's changelog offset is not past the changelog's
    # end; Tansu reports that end too low (see bench/faust_waves.py), so it can fail
    recovery_consistency_check=os.environ.get("WAVES_CONSISTENCY_CHECK", "1") == "1",
    key_serializer="json",  # the table's keys and values
    value_serializer="json",
)

shipments = app.topic(
    os.environ.get("WAVES_INPUT", "waves.shipments"),
    key_serializer="raw",
    value_serializer="json",
    partitions=PARTITIONS,
)
released = app.topic(
    os.environ.get("WAVES_OUTPUT", "waves.released"),
    key_serializer="raw",
    value_serializer="json",
    partitions=PARTITIONS,
)
lanes = app.Table(
    "lanes",
    default=None,
    partitions=PARTITIONS,
)


def fresh() -> dict[str, Any]:
    return {"released": 0, "waiting": [], "opened": None, "offset": -1}


async def release(lane: str, state: dict[str, Any], trigger: str, source: Any) -> dict[str, Any]:
    sequence = state["released"] + 1
    wave = {
        "wave_id": f"{lane}:{sequence}",
        "lane": lane,
        "sequence": sequence,
        "shipments": state["waiting"],
        "trigger": trigger,
        "worker": WORKER,
        "source": [source.partition, source.offset],
    }
    sent = await released.send(key=lane.encode(), value=wave)
    if GUARDED:
        await sent  # acknowledged by the broker before the changelog says "released"
    return {**state, "released": sequence, "waiting": [], "opened": None}


first_seen: set[str] = set()


@app.agent(shipments)
async def batch(stream: AsyncIterable[Any]) -> None:
    async for event in stream.events():  # type: ignore[attr-defined]
        record, message = event.value, event.message
        lane = record["lane"]
        state = lanes.get(lane) or fresh()
        if lane not in first_seen:  # where this process starts, against its restored table
            first_seen.add(lane)
            print(
                f"FIRST partition={message.partition} offset={message.offset} lane={lane} "
                f"table_offset={state['offset']}",
                flush=True,
            )
        if GUARDED and message.offset <= state["offset"]:
            continue  # already in the restored table: a replay after a kill
        state = {**state, "offset": message.offset}
        if record["kind"] == "shipment":
            if not state["waiting"]:
                state["opened"] = record["at"]
            state["waiting"] = [*state["waiting"], record["id"]]
            if len(state["waiting"]) >= SIZE:
                state = await release(lane, state, "size", message)
        elif (
            record["kind"] == "tick"
            and state["waiting"]
            and (record.get("flush") or record["at"] - state["opened"] >= WINDOW_S)
        ):
            state = await release(lane, state, "window", message)
        lanes[lane] = state  # a new value each time: faust sends only what is assigned


if __name__ == "__main__":
    app.main()
