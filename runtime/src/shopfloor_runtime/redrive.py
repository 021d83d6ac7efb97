"""Redriving a dead letter after a fix: its message applied again with the current
handlers, outside its partition chain (the consumer moved past it when it dead-lettered
it), recorded as redriven with its effects in one transaction, so it applies at most
once however often and wherever `redrive` runs."""

from __future__ import annotations

from eventsourcing.persistence import RecordConflictError

from shopfloor_runtime.applier import (
    CONFLICT_RETRIES,
    TRANSIENT,
    BatchApplier,
    Poison,
    Record,
    pause,
)
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.recorders import TrackingMove


class RedriveFailed(Exception):
    """A dead letter that still cannot be applied; it stays pending."""


def redrive(applier: BatchApplier, record: Record, name: str) -> str:
    """Apply the letter's message; `name` records it as redriven. Returns "applied",
    "ignored" (no handler wants it) or "already" (redriven before), or raises
    `RedriveFailed` with the new error."""
    app = applier.app
    if app.tracked_positions([name])[name]:
        return "already"
    try:
        envelope = applier.envelope(record)
        payload = applier.payload(envelope)
    except Poison as poison:
        raise RedriveFailed(str(poison)) from None
    outcome = "ignored" if payload is None else "applied"
    for attempt in range(CONFLICT_RETRIES):
        uow = UnitOfWork(app, careful=True)
        if payload is not None:
            try:
                applier.handlers[envelope.event_type](envelope, payload, uow)
            except TRANSIENT:
                raise  # the store is away: the redrive fails, the letter is untouched
            except Exception as error:  # noqa: BLE001 - reported; the letter stays
                raise RedriveFailed(f"{type(error).__name__}: {error}") from None
        touched = uow.take()
        try:
            app.record(touched, moves=[TrackingMove(name, 0, 1)])
            return outcome
        except RecordConflictError:
            app.forget([aggregate.id for aggregate in touched])  # stale: load them again
            if app.tracked_positions([name])[name]:
                return "already"  # another redrive got there first
            pause(attempt)
    raise RedriveFailed(f"gave up after {CONFLICT_RETRIES} write conflicts in a row")
