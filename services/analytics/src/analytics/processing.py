"""Applying a batch of messages: read each (facts.py), group by entity, apply each
entity's facts to its state in arrival order (entities.py), write each changed state
once, and replace its contribution to the figures. Pure apart from the table it is
given (a faust table in the worker, a dict in tests and in `rebuild`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from analytics.entities import State, Unusable, apply
from analytics.facts import Fact, Unreadable, read
from analytics.figures import Figures

T = TypeVar("T")  # what the caller knows a message by (a faust event, an offset)


class Entities(Protocol):
    """Where the processor keeps entity states: a dict, or the worker's table."""

    def get(self, key: str, /) -> State | None: ...

    def __setitem__(self, key: str, value: State, /) -> None: ...


@dataclass
class Progress:
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0  # event types analytics does not read
    rejected: int = 0
    batches: int = 0
    #: topic -> the newest occurred_at applied (event time; a late event does not lower it)
    last_event_us: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected(Generic[T]):
    handle: T
    error: str


class Processor:
    """`incremental`: keep the figures up to date with every changed entity (the worker);
    without, they are left alone and built once from the table at the end (`rebuild`:
    one contribution per entity instead of two per change)."""

    def __init__(self, table: Entities, figures: Figures, incremental: bool = True) -> None:
        self.table, self.figures, self.incremental = table, figures, incremental
        self.progress = Progress()

    def apply(
        self, messages: Iterable[tuple[T, str, bytes | None, bytes | None]]
    ) -> list[Rejected[T]]:
        """(handle, topic, key, value) in arrival order; returns what to dead-letter."""
        rejected: list[Rejected[T]] = []
        by_entity: dict[str, list[tuple[T, Fact]]] = {}
        for handle, topic, key, value in messages:
            try:
                fact = read(topic, key, value)
            except Unreadable as error:
                rejected.append(Rejected(handle, str(error)))
                continue
            if fact is None:
                self.progress.skipped += 1
                continue
            by_entity.setdefault(fact.entity, []).append((handle, fact))
        for entity, facts in by_entity.items():
            old: State | None = self.table.get(entity)
            state = old
            for handle, fact in facts:
                try:
                    new = apply(state, fact)
                except Unusable as error:
                    rejected.append(Rejected(handle, str(error)))
                    continue
                if new is None:
                    self.progress.duplicates += 1
                    continue
                state = new
                self.progress.applied += 1
                seen = self.progress.last_event_us
                seen[fact.topic] = max(seen.get(fact.topic, 0), fact.occurred_us)
            if state is not old and state is not None:
                self.table[entity] = state
                if self.incremental:
                    self.figures.replace(entity, old, state)
        self.progress.batches += 1
        self.progress.rejected += len(rejected)
        return rejected
