"""`shopfloor trace ORDER_ID`: one order's whole story across every topic, in order.

Reads every contract topic (the private `orders.private.v1` too: this is an operator's
tool, and the recipient is part of the story) and every dead-letter topic from the
beginning up to the end offsets found when it starts, without a consumer group (nothing
is committed, no topic is created), and keeps the messages that concern the order: on
the contract topics, an envelope whose `correlation_id`, `aggregate_id` or
`payload.order_id` is the order id, or whose `payload.order_ids` names it (a wave, a
merged shipment) (a key is not enough: `StockReturned` is keyed by SKU and names its order
only in the payload); on `dlq.<service>`, a dead letter whose
original key is the order id or whose original envelope concerns the order, even when
that envelope cannot be decoded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.topics import TOPICS, dlq_topic

from shopfloor_runtime import broker as brokerlib  # importing it stops topic auto-creation
from shopfloor_runtime.settings import BrokerSettings

BOOTSTRAP_VARIABLE = "SHOPFLOOR_BOOTSTRAP"
DLQ_PREFIX = dlq_topic("")
SUMMARY_WIDTH = 120


class TraceError(RuntimeError):
    """A trace that cannot be given: no broker, no events, or too slow to read."""


@dataclass(frozen=True)
class Found:
    """One message of the order's story, where it was found."""

    topic: str
    partition: int
    offset: int
    at: datetime  # occurred_at; for a dead letter, when it failed
    key: str | None
    envelope: InboundEnvelope | None  # None: a dead letter whose bytes are no envelope
    raw: Any  # the message as it was (JSON), or its text if it is not JSON
    dead_letter: dict[str, str] | None = None  # dlq.* headers, without the prefix

    @property
    def place(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def order(self) -> tuple[datetime, int, str, int, int]:
        # One stored event published on two topics (OrderPlaced and its private half)
        # has one time: the registry's topic order puts the public message first.
        rank = list(TOPICS).index(self.topic) if self.topic in TOPICS else len(TOPICS)
        return self.at, rank, self.topic, self.partition, self.offset


@dataclass(frozen=True)
class Story:
    order_id: str
    events: list[Found]
    topics: list[str]  # the topics read
    messages: int  # how many messages were read


def default_bootstrap(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(BOOTSTRAP_VARIABLE) or BrokerSettings().bootstrap_servers


def print_trace(
    order_id: str, bootstrap: str, *, as_json: bool = False, timeout: float = 30.0
) -> int:
    """The `shopfloor trace` command: prints the story; 0, or TraceError for the CLI."""
    # aiokafka logs every refused connection; with no logging set up Python would print
    # those to stderr, and an unreachable broker must end with one line only.
    client_log = logging.getLogger("aiokafka")
    if not client_log.handlers:
        client_log.addHandler(logging.NullHandler())
    if not timeout > 0:
        raise TraceError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    story = asyncio.run(read_story(order_id, bootstrap, timeout))
    if not story.events:
        read = ", ".join(story.topics) or "no topics (the broker is empty)"
        raise TraceError(f"no events for order {order_id} ({story.messages} messages on {read})")
    # With --json, stdout carries only JSON lines, so the header goes to stderr.
    print(header(story), file=sys.stderr if as_json else sys.stdout)
    write(story, sys.stdout, as_json)
    return 0


async def read_story(order_id: str, bootstrap: str, timeout: float = 30.0) -> Story:
    """The order's story as the broker holds it now; `timeout` bounds the whole read."""
    settings = BrokerSettings(bootstrap_servers=bootstrap)
    try:
        return await asyncio.wait_for(_read(order_id, settings, timeout), timeout)
    except TimeoutError:
        raise TraceError(
            f"could not read the topics at {bootstrap} to their end within {timeout:g} s"
        ) from None
    except KafkaError as error:
        raise TraceError(f"reading from {bootstrap} failed: {error!r}") from None


async def _read(order_id: str, settings: BrokerSettings, timeout: float) -> Story:
    if not await brokerlib.ping(settings, timeout=min(timeout, 5.0)):
        raise TraceError(f"no Kafka broker answers at {settings.bootstrap_servers}")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=settings.request_timeout_ms,
        fetch_max_wait_ms=50,  # Tansu answers a waiting fetch only when this expires
    )
    await consumer.start()
    try:
        topics = _story_topics(await consumer.topics())
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        records = brokerlib.records_until(
            consumer, {tp: end for tp, end in ends.items() if end > 0}
        )
        found, messages = [], 0
        async for record in records:
            messages += 1
            if (item := select(order_id, record)) is not None:
                found.append(item)
    finally:
        await consumer.stop()
    return Story(order_id, sorted(found, key=Found.order), topics, messages)


def _story_topics(existing: Iterable[str]) -> list[str]:
    """Contract topics first, in the registry's order, then every dead-letter topic."""
    existing = set(existing)
    dead = sorted(t for t in existing if t.startswith(DLQ_PREFIX))
    return [t for t in TOPICS if t in existing] + dead


def select(order_id: str, record: ConsumerRecord[bytes, bytes]) -> Found | None:
    """The record as part of the order's story, or None if it is not."""
    key = record.key.decode(errors="replace") if record.key is not None else None
    if not _may_mention(order_id, record.value) and key != order_id:
        return None
    raw, envelope = _decode(record.value)
    concerns = envelope is not None and _concerns(envelope, order_id)
    if not record.topic.startswith(DLQ_PREFIX):
        if envelope is None or not concerns:
            return None  # undecodable or someone else's: skipped silently
        return Found(
            record.topic, record.partition, record.offset, envelope.occurred_at, key, envelope, raw
        )
    if not (concerns or key == order_id):
        return None
    headers = {
        name.removeprefix(DLQ_PREFIX): value.decode(errors="replace")
        for name, value in record.headers
        if name.startswith(DLQ_PREFIX)
    }
    at = _failed_at(headers, envelope, record.timestamp)
    return Found(record.topic, record.partition, record.offset, at, key, envelope, raw, headers)


def _may_mention(order_id: str, value: bytes | None) -> bool:
    """A cheap test before decoding: a message about the order holds its id verbatim,
    unless JSON had to escape it (then decode everything)."""
    plain = json.dumps(order_id)[1:-1] == order_id
    return value is not None and (not plain or order_id.encode() in value)


def _decode(value: bytes | None) -> tuple[Any, InboundEnvelope | None]:
    try:
        raw = json.loads(value or b"")
    except (ValueError, TypeError):
        return (value or b"").decode(errors="replace"), None
    try:
        return raw, InboundEnvelope.model_validate(raw)
    except ValueError:  # pydantic's ValidationError
        return raw, None


def _concerns(envelope: InboundEnvelope, order_id: str) -> bool:
    named = (envelope.correlation_id, envelope.aggregate_id, envelope.payload.get("order_id"))
    # a merged shipment's events and a wave's name their orders in a list
    return order_id in named or order_id in (envelope.payload.get("order_ids") or ())


def _failed_at(headers: dict[str, str], envelope: InboundEnvelope | None, ms: int) -> datetime:
    try:
        at = datetime.fromisoformat(headers["failed_at"])
    except (KeyError, ValueError):
        return envelope.occurred_at if envelope else datetime.fromtimestamp(ms / 1000, UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# -- output -------------------------------------------------------------------------


def header(story: Story) -> str:
    per_topic = Counter(f.topic for f in story.events)
    where = ", ".join(f"{topic} {n}" for topic, n in per_topic.items())
    dead = sum(f.dead_letter is not None for f in story.events)
    dead_note = f", {dead} of them dead letters" if dead else ""
    return (
        f"order {story.order_id}: {len(story.events)} events ({where}){dead_note}; "
        f"{story.messages} messages read on {len(story.topics)} topics"
    )


def write(story: Story, out: TextIO, as_json: bool) -> None:
    if as_json:
        for found in story.events:
            print(json.dumps(as_document(found), ensure_ascii=False), file=out)
        return
    rows = [columns(f, story.order_id) for f in story.events]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)


def columns(found: Found, order_id: str) -> list[str]:
    """time, where, who, what, aggregate version, and a summary."""
    when = found.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    envelope, dead = found.envelope, found.dead_letter
    if dead is None:
        assert envelope is not None
        what = [envelope.producer, envelope.event_type, f"v{envelope.aggregate_version}"]
        return [when, found.place, *what, summary(envelope.payload, order_id)]
    original = envelope.event_type if envelope else "undecodable message"
    source = f"{dead.get('topic', '?')}[{dead.get('partition', '?')}]@{dead.get('offset', '?')}"
    error = dead.get("error", "no error recorded")
    what = [dead.get("service", "?"), "DeadLetter", "-"]
    return [when, found.place, *what, f"{original} from {source}: {error}"]


def as_document(found: Found) -> dict[str, Any]:
    """A JSON line: where the message was, and the full envelope (or the dead letter)."""
    document: dict[str, Any] = {
        "topic": found.topic,
        "partition": found.partition,
        "offset": found.offset,
        "key": found.key,
        "envelope": found.raw if found.envelope is not None else None,
    }
    if found.dead_letter is not None:
        document["dead_letter"] = found.dead_letter
        if found.envelope is None:
            document["value"] = found.raw
    return document


def summary(payload: dict[str, Any], order_id: str) -> str:
    """The payload in one short line: scalars and line items; the order's own id, times
    (the line has one) and nested objects are left out (--json has everything)."""
    parts = []
    for name, value in payload.items():
        if name.endswith("_at") or (name == "order_id" and value == order_id):
            continue
        text = _brief(value)
        if text:
            parts.append(f"{name}={text}")
    text = " ".join(parts)
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 3] + "..."


def _brief(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_item(v) for v in value)
    if isinstance(value, dict) or value is None:
        return ""
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _item(value: Any) -> str:
    if isinstance(value, dict) and "sku" in value:
        if "qty" in value:
            return f"{value['sku']}x{value['qty']}"
        if "requested" in value:
            return f"{value['sku']}x{value['requested']}(available={value.get('available')})"
        return str(value["sku"])
    return "{...}" if isinstance(value, dict) else _brief(value)
