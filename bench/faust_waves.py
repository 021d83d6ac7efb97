"""Do picking waves stay exact in a faust-streaming design on the embedded broker when a
worker is killed with SIGKILL mid-stream, or when workers join and leave?

Every run starts from nothing: a fresh embedded broker (Tansu) on a free port, an input
topic of "shipment ready" records (6 partitions, keyed by lane, a few lanes with skewed
rates) and an output topic, then the faust worker of `bench/faust_wave_app.py` as separate
processes. Scenarios (`--scenarios`):

- `kill`: one worker; while the records are produced at `--rate`, it is killed with
  SIGKILL `--kills` (3) times, each time a random 0.5-4 s after it became ready again,
  and restarted at once (same data directory);
- `rebalance`: worker A; B joins at 20% of the stream; A leaves (SIGTERM) at 45%; A
  joins again at 60%; B leaves (SIGTERM) at 80%. No kill;
- `pause` (not in the default set): workers A and B (B joins at 15%); A is frozen with
  SIGSTOP at 40% for two session timeouts, then continued (SIGCONT); B the same at 70%.
  A frozen worker loses its partitions but wakes up believing it still has them (a long
  GC pause, a frozen VM): the case that Kafka transactions fence and nothing here does;
- `backlog`: no faults: `--backlog-records` records written first, then one worker
  started; the agent's throughput (records/s) and a control for the counts.

After the last record a flush tick per lane releases the waves still filling; once the
worker group has committed the end of every input partition, the output is read back and
checked against the input: shipments in no wave (lost), in two or more waves or twice in
one (doubled), wave ids emitted with different contents (split), waves over the size, and
waves that differ from the one deterministic answer (the input log replayed, crash-free,
through the same rules). Each combination of `--variants` (naive, guarded: see the app
module), `--stores` (`memory`; `rocksdb`: rocksdict, with faust's recovery consistency
check off; `rocksdb+check`: with it on, faust's default) and scenario runs `--runs` times;
the table gives every run and the median, and how many runs failed (a worker that could
not start again). JSON with every detail in `bench/results/faust_waves-<UTC>.json`.

Run from the workspace root: `python -m bench.faust_waves [--quick]`. Before each run it
waits until no `bench.peak` process is running (they would disturb each other).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from shopfloor_devstack.launcher import EmbeddedBroker

# Imported for its side effect: aiokafka then never creates a topic by looking it up.
from shopfloor_runtime import broker as _brokerlib  # noqa: F401
from shopfloor_runtime.testing import free_port

from bench.harness import BenchError, describe_machine, machine, source_version, utc_stamp
from bench.harness import write_results as _write_results

ROOT = Path(__file__).resolve().parent.parent
INPUT, OUTPUT = "waves.shipments", "waves.released"
GROUP = "shopfloor-waves"  # the faust app id, which is its consumer group
PARTITIONS = 6
SIZE = 50
WINDOW_S = 5.0  # the 5-minute window, scaled down to seconds
TICK_EVERY_S = 1.0
SESSION_TIMEOUT_S = 6.0
# lane -> share of the shipments: one slow lane, so windows release waves too
LANES = {"WH-BER:A": 0.40, "WH-BER:B": 0.30, "WH-AMS:A": 0.25, "WH-AMS:C": 0.05}
# memory://; rocksdb:// (rocksdict) with faust's recovery consistency check off; the same
# with the check on (faust's default), which a restart after a SIGKILL can fail on Tansu
STORES = ("memory", "rocksdb", "rocksdb+check")
READY_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0


# -- the faust workers ----------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    tmp: Path
    bootstrap: str
    variant: str
    store: str
    starts: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    def start(self) -> Worker:
        self.starts += 1
        self.log_path = self.tmp / f"{self.name}-{self.starts}.log"
        datadir = self.tmp / f"data-{self.name}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "WAVES_BROKER": self.bootstrap,
            "WAVES_APP_ID": GROUP,
            "WAVES_STORE": "memory://" if self.store == "memory" else "rocksdb://",
            "WAVES_CONSISTENCY_CHECK": "0" if self.store == "rocksdb" else "1",
            "WAVES_DATADIR": str(datadir),
            "WAVES_INPUT": INPUT,
            "WAVES_OUTPUT": OUTPUT,
            "WAVES_PARTITIONS": str(PARTITIONS),
            "WAVES_SIZE": str(SIZE),
            "WAVES_WINDOW_S": str(WINDOW_S),
            "WAVES_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
            "WAVES_VARIANT": self.variant,
            "WAVES_WORKER": f"{self.name}-{self.starts}",
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faust",
                    "-A",
                    "bench.faust_wave_app",
                    "worker",
                    "--without-web",
                    "-l",
                    "info",
                ],
                env=env,
                cwd=self.tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.events.append((time.monotonic(), "start"))
        return self

    def log_text(self) -> str:
        assert self.log_path is not None
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    async def ready(self) -> float:
        """Until the worker logs that it is ready (group joined, tables recovered)."""
        began = time.monotonic()
        while "[^Worker]: Ready" not in self.log_text():
            assert self.process is not None
            if self.process.poll() is not None:
                reasons = [ln for ln in self.log_text().splitlines() if "Crashed reason=" in ln]
                why = reasons[-1].split("Crashed reason=", 1)[1][:160] if reasons else ""
                raise BenchError(
                    f"faust worker {self.name} (start {self.starts}) exited with "
                    f"{self.process.returncode} {why}; see {self.log_path}"
                )
            if time.monotonic() - began > READY_TIMEOUT_S:
                raise BenchError(f"faust worker {self.name} not ready; see {self.log_path}")
            await asyncio.sleep(0.1)
        self.events.append((time.monotonic(), "ready"))
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.events.append((time.monotonic(), "SIGKILL"))

    def pause(self, seconds: float) -> None:
        """SIGSTOP: the process is alive but silent, as in a long GC pause or a frozen VM;
        past the session timeout the group gives its partitions to the other worker."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.events.append((time.monotonic(), f"SIGSTOP for {seconds:.0f}s"))

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)
        self.events.append((time.monotonic(), "SIGCONT"))

    async def stop(self) -> int | None:
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        began = time.monotonic()
        while process.poll() is None and time.monotonic() - began < STOP_TIMEOUT_S:
            await asyncio.sleep(0.1)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            self.events.append((time.monotonic(), "SIGTERM ignored: SIGKILL"))
        else:
            self.events.append((time.monotonic(), "SIGTERM"))
        return process.returncode


# -- the input --------------------------------------------------------------------------------


async def create_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1) for name in (INPUT, OUTPUT)], timeout_ms=10_000
        )
    finally:
        await admin.close()


class Producer:
    """`records` shipments with known ids, at `rate` per second (0: as fast as it can),
    a tick per lane every second, and a flush tick per lane at the end."""

    def __init__(self, bootstrap: str, records: int, rate: float, seed: int) -> None:
        self.bootstrap, self.records, self.rate = bootstrap, records, rate
        self.rng = random.Random(seed)
        self.sent = 0
        self.done, self.started = asyncio.Event(), asyncio.Event()
        self.began = self.ended = 0.0

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False, linger_ms=5
        )
        await producer.start()
        lanes, weights = list(LANES), list(LANES.values())
        try:
            self.began = time.monotonic()
            self.started.set()
            next_tick = self.began + TICK_EVERY_S
            step = 0.05
            while self.sent < self.records:
                due = (
                    self.records
                    if not self.rate
                    else int((time.monotonic() - self.began) * self.rate) + 1
                )
                batch = []
                while self.sent < min(due, self.records):
                    lane = self.rng.choices(lanes, weights)[0]
                    value = {
                        "kind": "shipment",
                        "lane": lane,
                        "id": f"s-{self.sent:06d}",
                        "at": time.time(),
                    }
                    batch.append(await producer.send(INPUT, encode(value), key=lane.encode()))
                    self.sent += 1
                if time.monotonic() >= next_tick:
                    next_tick += TICK_EVERY_S
                    for lane in lanes:
                        tick = {"kind": "tick", "lane": lane, "at": time.time()}
                        batch.append(await producer.send(INPUT, encode(tick), key=lane.encode()))
                if batch:
                    await asyncio.gather(*batch)
                if self.rate:
                    await asyncio.sleep(step)
            for lane in lanes:
                flush = {"kind": "tick", "lane": lane, "at": time.time(), "flush": True}
                await (await producer.send(INPUT, encode(flush), key=lane.encode()))
            self.ended = time.monotonic()
        finally:
            await producer.stop()
            self.done.set()


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


# -- reading back -----------------------------------------------------------------------------


async def true_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[Any, int]:
    """The log end offset of each partition. Tansu's ListOffsets answers the base offset of
    the partition's last batch + 1 (6 for a log of 8 records written in batches of 5 and 3),
    which is what `end_offsets` returns; the high watermark in a fetch response is right.
    So: seek to just before what ListOffsets says, fetch once, read the fetch's watermark."""
    listed = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, listed[tp] - 1))
    ends = {tp: listed[tp] for tp in tps}
    waiting = {tp for tp in tps if listed[tp] > 0}
    deadline = time.monotonic() + 10
    while waiting and time.monotonic() < deadline:
        await consumer.getmany(*waiting, timeout_ms=200)
        for tp in list(waiting):
            hw = consumer.highwater(tp)
            if hw is not None:
                ends[tp] = max(hw, listed[tp])
                waiting.discard(tp)
    return ends


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await true_ends(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while left:
            if time.monotonic() > deadline:
                raise BenchError(f"could not read {topic} to its end")
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, got in batches.items():
                records.extend(got)
                if got and got[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return records
    finally:
        await consumer.stop()


async def lag(bootstrap: str, group: str) -> int:
    """Records of the input the group has not committed yet. Read with a consumer of the
    group that never subscribes (so it never joins): aiokafka's admin client cannot decode
    Tansu's OffsetFetch response."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(INPUT, p) for p in range(PARTITIONS)]
        ends = await true_ends(consumer, tps)
        behind = 0
        for tp in tps:
            position = await consumer.committed(tp) or 0
            behind += max(0, ends[tp] - position)
        return behind
    finally:
        await consumer.stop()


def reference(inputs: list[Any]) -> set[tuple[str, tuple[str, ...]]]:
    """The one right answer: every partition's records in log order, crash-free, through
    the same rules as the app."""
    lanes: dict[str, dict[str, Any]] = {}
    waves: set[tuple[str, tuple[str, ...]]] = set()
    for record in sorted(inputs, key=lambda r: (r.partition, r.offset)):
        value = json.loads(record.value)
        state = lanes.setdefault(value["lane"], {"released": 0, "waiting": [], "opened": None})

        def cut(state: dict[str, Any] = state, lane: str = value["lane"]) -> None:
            state["released"] += 1
            waves.add((f"{lane}:{state['released']}", tuple(state["waiting"])))
            state["waiting"], state["opened"] = [], None

        if value["kind"] == "shipment":
            if not state["waiting"]:
                state["opened"] = value["at"]
            state["waiting"].append(value["id"])
            if len(state["waiting"]) >= SIZE:
                cut()
        elif state["waiting"] and (value.get("flush") or value["at"] - state["opened"] >= WINDOW_S):
            cut()
    return waves


def check(inputs: list[Any], outputs: list[Any]) -> dict[str, Any]:
    expected = {v["id"] for v in (json.loads(r.value) for r in inputs) if v["kind"] == "shipment"}
    emitted = [json.loads(r.value) for r in outputs]
    contents: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    emissions = Counter(w["wave_id"] for w in emitted)
    in_waves: dict[str, set[str]] = defaultdict(set)
    twice_in_one = set()
    for wave in emitted:
        shipments = tuple(wave["shipments"])
        contents[wave["wave_id"]].add(shipments)
        counts = Counter(shipments)
        twice_in_one |= {s for s, n in counts.items() if n > 1}
        for s in shipments:
            in_waves[s].add(wave["wave_id"])
    doubled = {s for s, ids in in_waves.items() if len(ids) > 1} | twice_in_one
    ref = reference(inputs)
    got = {(wid, c) for wid, cs in contents.items() for c in cs}
    return {
        "shipments": len(expected),
        "wave_records": len(emitted),
        "wave_ids": len(contents),
        "reference_waves": len(ref),
        "lost": len(expected - set(in_waves)),
        "doubled": len(doubled),
        "twice_in_one_wave": len(twice_in_one),
        "unknown": len(set(in_waves) - expected),
        "split_ids": sum(1 for cs in contents.values() if len(cs) > 1),
        "repeated_same": sum(
            1 for wid, n in emissions.items() if n > 1 and len(contents[wid]) == 1
        ),
        "oversize": sum(1 for w in emitted if len(w["shipments"]) > SIZE),
        "off_reference": len(got - ref),
        "reference_missing": len(ref - got),
        "exact": not (expected - set(in_waves)) and not doubled and got == ref,
        "examples": {
            "lost": sorted(expected - set(in_waves))[:5],
            "doubled": {s: sorted(in_waves[s]) for s in sorted(doubled)[:5]},
            "split": {wid: [len(c) for c in cs] for wid, cs in contents.items() if len(cs) > 1},
        },
    }


# -- one run ----------------------------------------------------------------------------------


async def wait_quiet_machine(label: str) -> None:
    """Until no bench.peak runs (it and this would disturb each other)."""
    said = False
    while subprocess.run(["pgrep", "-f", "bench.peak"], capture_output=True).returncode == 0:
        if not said:
            print(f"  {label}: waiting for bench.peak to finish", flush=True)
            said = True
        await asyncio.sleep(5)


async def settle(bootstrap: str, workers: list[Worker]) -> float:
    """Until the group committed every input record, then a second for stragglers."""
    began = time.monotonic()
    while True:
        behind = await lag(bootstrap, GROUP)
        if behind == 0:
            await asyncio.sleep(1.0)
            return time.monotonic() - began
        if time.monotonic() - began > SETTLE_TIMEOUT_S:
            raise BenchError(f"the workers did not commit the whole input ({behind} behind)")
        if not any(w.process and w.process.poll() is None for w in workers):
            raise BenchError("no faust worker is running")
        waited = time.monotonic() - began
        if int(waited) % 10 == 0 and int(waited) != int(waited - 0.5):
            print(f"    settling: {behind} input records not committed after {waited:.0f}s")
        await asyncio.sleep(0.5)


async def one_run(
    scenario: str, variant: str, store: str, run: int, args: argparse.Namespace, keep: bool
) -> dict[str, Any]:
    label = f"{scenario}/{variant}/{store} run {run}"
    await wait_quiet_machine(label)
    tmp = Path(tempfile.mkdtemp(prefix=f"faust-waves-{scenario}-"))
    broker = EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log").start()
    rng = random.Random(args.seed * 1000 + run)
    workers: list[Worker] = []
    producing: asyncio.Task[None] | None = None
    ok = False
    try:
        await create_topics(broker.bootstrap_servers)
        a = Worker("A", tmp, broker.bootstrap_servers, variant, store)
        b = Worker("B", tmp, broker.bootstrap_servers, variant, store)
        workers = [a, b]
        records = args.backlog_records if scenario == "backlog" else args.records
        producer = Producer(
            broker.bootstrap_servers,
            records,
            0 if scenario == "backlog" else args.rate,
            rng.randrange(10**6),
        )
        faults: list[str] = []
        began = time.monotonic()
        if scenario == "backlog":
            await producer.run()
            a.start()
            await a.ready()
        else:
            a.start()
            await a.ready()
            producing = asyncio.create_task(producer.run())
            await producer.started.wait()
            expected_s = records / args.rate

            def at(fraction: float) -> float:
                return producer.began + fraction * expected_s

            async def until(moment: float) -> None:
                await asyncio.sleep(max(0.0, moment - time.monotonic()))

            if scenario == "kill":
                for _ in range(args.kills):
                    await asyncio.sleep(rng.uniform(0.5, 4.0))
                    if producer.done.is_set():
                        break
                    sent, behind = producer.sent, await lag(broker.bootstrap_servers, GROUP)
                    a.kill()
                    faults.append(f"SIGKILL at {sent} sent, {behind} not committed")
                    a.start()
                    took = await a.ready()
                    faults.append(f"ready again in {took:.1f}s")
            elif scenario == "rebalance":
                await until(at(0.20))
                b.start()
                faults.append(f"B joins at {producer.sent} sent")
                await until(at(0.45))
                await a.stop()
                faults.append(f"A leaves at {producer.sent} sent")
                await until(at(0.60))
                a.start()
                faults.append(f"A joins at {producer.sent} sent")
                await until(at(0.80))
                await b.stop()
                faults.append(f"B leaves at {producer.sent} sent")
            elif scenario == "pause":
                await until(at(0.15))
                b.start()
                await b.ready()
                faults.append(f"B joins at {producer.sent} sent")
                for moment, worker in ((0.40, a), (0.70, b)):
                    await until(at(moment))
                    sent = producer.sent
                    worker.pause(2 * SESSION_TIMEOUT_S)
                    faults.append(
                        f"{worker.name} stopped (SIGSTOP) at {sent} sent for "
                        f"{2 * SESSION_TIMEOUT_S:.0f}s, then SIGCONT"
                    )
                    await asyncio.sleep(2 * SESSION_TIMEOUT_S)
                    worker.resume()
            await producing
        settle_s = await settle(broker.bootstrap_servers, workers)
        inputs = await read_all(broker.bootstrap_servers, INPUT)
        outputs = await read_all(broker.bootstrap_servers, OUTPUT)
        result = check(inputs, outputs)
        if scenario == "backlog" and outputs:
            stamps = sorted(r.timestamp for r in outputs)
            span_s = (stamps[-1] - stamps[0]) / 1000
            counted = sum(len(json.loads(r.value)["shipments"]) for r in outputs) - len(
                json.loads(min(outputs, key=lambda r: r.timestamp).value)["shipments"]
            )
            result["records_per_s"] = round(counted / span_s) if span_s > 0 else None
        result.update(
            scenario=scenario,
            variant=variant,
            store=store,
            run=run,
            faults=faults,
            settle_s=round(settle_s, 1),
            wall_s=round(time.monotonic() - began, 1),
            starts={w.name: w.starts for w in workers},
            discarded_commits_logged=sum(
                w.log_text().count("Discarded commit") for w in workers if w.log_path
            ),
            restarts=restarts(tmp, inputs),
        )
        print(f"  {label}: {summary(result)}", flush=True)
        ok = True
        return result
    finally:
        if producing is not None and not producing.done():
            producing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producing
        for w in workers:
            await w.stop()
        broker.stop()
        if ok and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  kept {tmp}", flush=True)


def restarts(tmp: Path, inputs: list[Any]) -> dict[str, int]:
    """What each (re)started worker did to each lane, from the app's FIRST line (the first
    input offset it processed for the lane, and the last offset the restored table says
    the lane applied) and the input log: `reread` counts the lane's records it read again
    although the restored table already had them (applied twice by `naive`, skipped by
    `guarded`); `skipped` the lane's records after the table's state that it never read
    (the table lost them, or the committed offset ran ahead of it)."""
    offsets: dict[tuple[int, str], list[int]] = defaultdict(list)
    for r in inputs:
        offsets[(r.partition, json.loads(r.value)["lane"])].append(r.offset)
    reread = skipped = 0
    for log in tmp.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if " FIRST partition=" not in line:
                continue
            fields = dict(f.split("=", 1) for f in line.split(" FIRST ", 1)[1].split())
            start, table = int(fields["offset"]), int(fields["table_offset"])
            lane = offsets[(int(fields["partition"]), fields["lane"])]
            reread += sum(1 for o in lane if start <= o <= table)
            skipped += sum(1 for o in lane if table < o < start)
    return {"reread": reread, "skipped": skipped}


def summary(r: dict[str, Any]) -> str:
    return (
        f"waves {r['wave_records']} ({r['wave_ids']} ids, reference {r['reference_waves']}), "
        f"lost {r['lost']}, doubled {r['doubled']}, split ids {r['split_ids']}, "
        f"repeated {r['repeated_same']}, oversize {r['oversize']}, "
        f"off-reference {r['off_reference']}, exact {r['exact']}"
        + f", re-read {r['restarts']['reread']}, skipped {r['restarts']['skipped']}"
        + (f", {r['records_per_s']} records/s" if r.get("records_per_s") else "")
        + (f"; {'; '.join(r['faults'])}" if r.get("faults") else "")
    )


# -- the table --------------------------------------------------------------------------------

COLUMNS = ("lost", "doubled", "split_ids", "oversize", "off_reference", "repeated_same")


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | variant | store | runs exact | runs failed | lost | doubled | split ids "
        "| > 50 | waves off the reference | same wave re-emitted | records/s |"
    )
    lines = [head, "|" + "---|" * 12]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["scenario"], r["variant"], r["store"])].append(r)
    for (scenario, variant, store), every in groups.items():
        rs = [r for r in every if "failed" not in r]
        failed = len(every) - len(rs)
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in rs]
            cells.append(
                f"{' / '.join(map(str, values))} (median {statistics.median(values):g})"
                if values
                else "-"
            )
        rates = [r["records_per_s"] for r in rs if r.get("records_per_s")]
        rate = (
            f"{' / '.join(map(str, rates))} (median {statistics.median(rates):g})" if rates else "-"
        )
        exact = f"{sum(r['exact'] for r in rs)} of {len(every)}"
        lines.append(
            f"| {scenario} | {variant} | {store} | {exact} | {failed} | "
            + " | ".join(cells)
            + f" | {rate} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    info = machine()
    print(describe_machine(info), flush=True)
    import faust

    print(f"faust-streaming {faust.__version__}", flush=True)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for run in range(1, args.runs + 1):
        for store in args.stores:
            for variant in args.variants:
                for scenario in args.scenarios:
                    try:
                        results.append(
                            await one_run(scenario, variant, store, run, args, args.keep)
                        )
                    except BenchError as error:
                        failures.append(f"{scenario}/{variant}/{store} run {run}: {error}")
                        print(f"  FAILED {failures[-1]}", flush=True)
                        results.append(
                            {
                                "scenario": scenario,
                                "variant": variant,
                                "store": store,
                                "run": run,
                                "failed": str(error),
                            }
                        )
    print()
    print(table(results))
    for failure in failures:
        print(f"failed: {failure}")
    path = _write_results(
        "faust_waves",
        utc_stamp(),
        {
            "settings": {k: v for k, v in vars(args).items()},
            "constants": {
                "size": SIZE,
                "window_s": WINDOW_S,
                "tick_every_s": TICK_EVERY_S,
                "session_timeout_s": SESSION_TIMEOUT_S,
                "lanes": LANES,
                "partitions": PARTITIONS,
            },
            "faust": faust.__version__,
            "machine": info,
            "source": source_version(),
            "results": results,
            "failures": failures,
        },
    )
    print(f"details: {path}")
    return 1 if failures else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=60.0, help="records/s in kill and rebalance")
    parser.add_argument("--backlog-records", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default="kill,rebalance,backlog")
    parser.add_argument("--variants", default="naive,guarded")
    parser.add_argument("--stores", default="memory,rocksdb")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep every run's logs")
    parser.add_argument("--quick", action="store_true", help="one run, fewer records: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.records, args.rate, args.backlog_records = 1, 1200, 60.0, 5000
        args.kills = min(args.kills, 2)
    for name in ("scenarios", "variants", "stores"):
        setattr(args, name, [s for s in getattr(args, name).split(",") if s])
    if set(args.scenarios) - {"kill", "rebalance", "pause", "backlog"}:
        parser.error("--scenarios: kill, rebalance, pause, backlog")
    if set(args.variants) - {"naive", "guarded"}:
        parser.error("--variants: naive, guarded")
    if set(args.stores) - set(STORES):
        parser.error(f"--stores: {', '.join(STORES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
