"""Read models kept in the service's own database, fed from its notification log.

Each round applies a batch of stored events and moves the projection's position in the
same SQL transaction, so a crash never applies an event twice or skips one. Dropping the
tables and the position rebuilds the read model from the log (`rebuild`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shopfloor_runtime.store import ServiceApplication, SqlStore

log = logging.getLogger(__name__)

Apply = Callable[[Any, Any], None]  # (cursor, domain event)


def ts(moment: datetime) -> str:
    """A moment as text in read-model tables: UTC, fixed width, so text order is time
    order, and identical on SQLite and PostgreSQL (2026-01-01T12:00:00.000000Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Projector:
    def __init__(
        self,
        name: str,
        app: ServiceApplication,
        sql: SqlStore,
        schema: list[str],
        apply: Apply,
        drop: list[str],
        batch_size: int = 500,
    ) -> None:
        self.name, self.app, self.sql, self.apply = name, app, sql, apply
        self.schema, self.drop, self.batch_size = schema, drop, batch_size
        self.create()

    def create(self) -> None:
        with self.sql.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS projection_state "
                "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )
            for statement in self.schema:
                cur.execute(statement)

    def position(self) -> int:
        with self.sql.transaction(write=False) as cur:
            return self._position(cur)

    def _position(self, cur: Any) -> int:
        cur.execute("SELECT position FROM projection_state WHERE name = ?", (self.name,))
        row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def run_once(self) -> int:
        """Apply the next batch of stored events; returns how many were applied."""
        position = self.position()
        # Read the log before taking the write lock: on SQLite both share one file.
        notifications = self.app.recorder.select_notifications(
            start=position, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        events = [self.app.domain_event(n) for n in notifications]
        with self.sql.transaction() as cur:
            self.sql.serialize(cur, f"projection:{self.name}")
            if self._position(cur) != position:
                return 0  # another projector moved on meanwhile; read again
            for domain_event in events:
                self.apply(cur, domain_event)
            cur.execute(
                "INSERT INTO projection_state (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (self.name, notifications[-1].id),
            )
        return len(notifications)

    def catch_up(self) -> int:
        total = 0
        while moved := self.run_once():
            total += moved
        return total

    def rebuild(self) -> int:
        with self.sql.transaction() as cur:
            for statement in self.drop:
                cur.execute(statement)
            cur.execute("DELETE FROM projection_state WHERE name = ?", (self.name,))
        self.create()
        return self.catch_up()

    async def run(self, stopping: asyncio.Event, idle: float = 0.2) -> None:
        while not stopping.is_set():
            seen = self.app.saves
            try:
                moved = await asyncio.to_thread(self.run_once)
            except Exception as error:  # noqa: BLE001 - retried; position is transactional
                log.warning("projection %s: %s", self.name, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1.0)
                continue
            if not moved:  # a save in this process wakes it; other writers within `idle`
                await asyncio.to_thread(self.app.wait_for_saves, seen, idle)
