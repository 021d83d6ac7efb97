"""The edge types between a service and the plumbing: what its translation hands the
relay (`Outbound`), what the consumer hands its policies (`Handler`, `UnitOfWork`).
Small on purpose: a service's policies and translation import only this module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError
from pydantic import BaseModel
from shopfloor_contracts.envelope import InboundEnvelope

from shopfloor_runtime.store import ServiceApplication

Agg = TypeVar("Agg", bound=Aggregate)
T = TypeVar("T")


@dataclass(frozen=True)
class Outbound:
    """What a service's translation says to publish for one of its domain events."""

    topic: str
    key: str
    payload: BaseModel
    correlation_id: str
    causation_id: str | None = None


#: A service's translation: the messages to publish for a stored domain event (empty
#: for events that stay inside the service). At most one per topic: a consumer tracks
#: one position per topic and partition, and a second message with the same position
#: would look like a repeat. The first message keeps the event's historic id.
Translate = Callable[[Any], Sequence[Outbound]]


def on_topic(topic: str, to_contract: Callable[[Any], tuple[str, BaseModel] | None]) -> Translate:
    """The translation of a service that publishes on one topic: `to_contract` says, for
    a stored domain event, (key, contract payload), or None to keep it inside. The key is
    also the correlation id; the event's `caused_by`, if it has one, the causation id."""

    def translate(domain_event: Any) -> list[Outbound]:
        found = to_contract(domain_event)
        if found is None:
            return []
        key, payload = found
        caused_by = getattr(domain_event, "caused_by", None)
        return [Outbound(topic, key, payload, correlation_id=key, causation_id=caused_by)]

    return translate


class UnitOfWork:
    """Aggregates touched while applying consumed messages (or one command); saved
    together, with the consumer's tracking, in one transaction."""

    def __init__(self, app: ServiceApplication, careful: bool = False) -> None:
        self.app, self.careful = app, careful
        self._aggregates: dict[UUID, Aggregate] = {}

    def get_new(self, aggregate_id: UUID) -> Any | None:
        """An aggregate a message normally creates (its id derives from the message).
        A first try does not query the store for it: tracking already keeps repeats
        out, and should it exist all the same, the save fails on its version and the
        retry (careful) looks. A copy this process holds in its cache is used (it costs
        no query, and another message of the same story may have made it). Saves a
        query per message."""
        if aggregate_id in self._aggregates or self.careful or self.app.cached(aggregate_id):
            return self.get(aggregate_id)
        return None

    @overload
    def get(self, aggregate_id: UUID, kind: None = None) -> Any | None: ...
    @overload
    def get(self, aggregate_id: UUID, kind: type[Agg]) -> Agg | None: ...

    def get(self, aggregate_id: UUID, kind: type[Aggregate] | None = None) -> Any | None:
        """The aggregate (of `kind`, if given) as this unit of work holds it, loading it
        the first time; None if there is none."""
        if aggregate_id not in self._aggregates:
            found = self.app.find(aggregate_id)
            if found is None:
                return None
            self._aggregates[aggregate_id] = found
        found = self._aggregates[aggregate_id]
        return found if kind is None or isinstance(found, kind) else None

    def __contains__(self, aggregate_id: object) -> bool:
        """Whether this unit of work holds the aggregate already (no query)."""
        return aggregate_id in self._aggregates

    @property
    def ids(self) -> list[UUID]:
        return list(self._aggregates)

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    @property
    def aggregates(self) -> list[Aggregate]:
        return list(self._aggregates.values())

    def take(self) -> list[Aggregate]:
        """The aggregates touched so far, forgetting them (they are saved or dropped)."""
        aggregates = self.aggregates
        self._aggregates.clear()
        return aggregates


#: A policy: one inbound contract event applied through the application's use cases.
Handler = Callable[[InboundEnvelope, Any, UnitOfWork], None]
#: A service's policies, looked up by the contract class they handle.
Handlers = dict[type[BaseModel], Handler]


def command(app: ServiceApplication, act: Callable[[UnitOfWork], T], attempts: int = 8) -> T:
    """A command over several aggregates: run `act` on a unit of work and save what it
    touched in one transaction; on a version conflict, forget the stale copies and run
    it again."""
    for attempt in range(attempts):
        uow = UnitOfWork(app, careful=attempt > 0)
        result = act(uow)
        try:
            app.record(uow.aggregates)
            return result
        except RecordConflictError:
            app.forget(uow.ids)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
