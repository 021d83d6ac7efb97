"""Process recorders whose transactions can move several consumer positions at once.

eventsourcing records one tracking position per transaction and only checks that it goes
up. A consumer that applies a whole poll (every partition it was given) in one
transaction needs one position per partition and producer, and, to keep positions in
memory between polls, a stricter check: a position moves only from the value the batch
was decided on (compare and set). If another worker moved it meanwhile, the transaction
fails with a conflict and the consumer reads the positions again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from psycopg.sql import SQL, Identifier

KWARG = "tracking_moves"


class TrackingMove(NamedTuple):
    name: str
    expected: int  # the position the batch started from; 0: none recorded yet
    position: int


def _moves(kwargs: dict[str, Any]) -> list[TrackingMove]:
    """In name order: two workers briefly sharing partitions lock rows in the same order."""
    return sorted(kwargs.get(KWARG, ()), key=lambda move: move.name)


def _check_layout(single_row_tracking: bool, db_functions: bool = False) -> None:
    if not single_row_tracking or db_functions:
        raise ValueError(
            "consumer positions need single-row tracking and no database functions "
            "(SINGLE_ROW_TRACKING, POSTGRES_ENABLE_DB_FUNCTIONS)"
        )


def _moved(name: str, expected: int, row: Any) -> None:
    if row is None:
        raise IntegrityError(
            f"tracking {name!r} is no longer at {expected}: another worker applied it"
        )


class PostgresMovingRecorder(PostgresProcessRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_layout(self.datastore.single_row_tracking, self.datastore.enable_db_functions)
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
        )
        self._first_move = SQL(
            "INSERT INTO {0} (application_name, notification_id) VALUES (%s, %s) "
            "ON CONFLICT (application_name) DO NOTHING RETURNING notification_id"
        ).format(table)
        self._next_move = SQL(
            "UPDATE {0} SET notification_id = %s "
            "WHERE application_name = %s AND notification_id = %s RETURNING notification_id"
        ).format(table)
        self._positions = SQL(
            "SELECT application_name, notification_id FROM {0} WHERE application_name = ANY(%s)"
        ).format(table)

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        for move in _moves(kwargs):
            if move.expected:
                curs.execute(self._next_move, (move.position, move.name, move.expected))
            else:
                curs.execute(self._first_move, (move.name, move.position))
            _moved(move.name, move.expected, curs.fetchone())
        super()._insert_events(curs, stored_events, **kwargs)

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._positions, (list(names),), prepare=True)
            found = {row["application_name"]: row["notification_id"] for row in curs.fetchall()}
        return {name: found.get(name) or 0 for name in names}


class SQLiteMovingRecorder(SQLiteProcessRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_layout(self.datastore.single_row_tracking)

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        for move in _moves(kwargs):
            if move.expected:
                c.execute(
                    "UPDATE tracking SET notification_id = ? "
                    "WHERE application_name = ? AND notification_id = ? RETURNING notification_id",
                    (move.position, move.name, move.expected),
                )
            else:
                c.execute(
                    "INSERT INTO tracking (application_name, notification_id) VALUES (?, ?) "
                    "ON CONFLICT (application_name) DO NOTHING RETURNING notification_id",
                    (move.name, move.position),
                )
            _moved(move.name, move.expected, c.fetchone())
        return super()._insert_events(c, stored_events, **kwargs)

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(names), 500):  # SQLite's limit on parameters
                chunk = list(names[start : start + 500])
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"SELECT application_name, notification_id FROM tracking "  # noqa: S608
                    f"WHERE application_name IN ({marks})",
                    chunk,
                )
                found.update({row[0]: row[1] for row in c.fetchall()})
        return {name: found.get(name) or 0 for name in names}


RECORDERS = {
    "eventsourcing.postgres": f"{__name__}:PostgresMovingRecorder",
    "eventsourcing.sqlite": f"{__name__}:SQLiteMovingRecorder",
}
