"""Event store wiring (eventsourcing on SQLite or PostgreSQL) and a small SQL helper for
the few tables that are not event streams: relay state and read-model projections."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, overload
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    Notification,
    ProcessRecorder,
    RecordConflictError,
    Recording,
    Tracking,
)
from psycopg.conninfo import conninfo_to_dict

from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.recorders import KWARG, RECORDERS, TrackingMove
from shopfloor_runtime.settings import StoreSettings

T = TypeVar("T")
#: Saved domain events kept per process for the relay and the projectors to read back.
RECENT_EVENTS = 20_000
Agg = TypeVar("Agg", bound=Aggregate)


def sqlite_path(store: StoreSettings, service: str) -> Path:
    return store.data_dir / f"{service}.sqlite"


def eventsourcing_env(store: StoreSettings, service: str) -> dict[str, str]:
    """Environment for an eventsourcing Application: SQLite file or PostgreSQL DSN."""
    if store.dsn is None:
        path = sqlite_path(store, service)
        path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "PROCESS_RECORDER_TOPIC": RECORDERS["eventsourcing.sqlite"],
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    info = conninfo_to_dict(store.dsn.get_secret_value())
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "PROCESS_RECORDER_TOPIC": RECORDERS["eventsourcing.postgres"],
        "POSTGRES_DBNAME": str(info.get("dbname", "postgres")),
        "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_USER": str(info.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        "POSTGRES_POOL_SIZE": str(store.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(store.pool_size),
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }


@contextmanager
def schema_lock(store: StoreSettings) -> Iterator[None]:
    """Hold while creating tables: two processes of one service starting at once on a new
    PostgreSQL database would otherwise race on CREATE TABLE IF NOT EXISTS."""
    if store.dsn is None:
        yield
        return
    import psycopg

    with psycopg.connect(store.dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('shopfloor.schema'))")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('shopfloor.schema'))")


class ServiceApplication(Application[UUID]):
    """An eventsourcing Application that can record tracking with its events."""

    recorder: ProcessRecorder
    #: Aggregates kept in memory per process (0: none). Cached ones are not re-read
    #: before a command (no fast-forward): every save checks versions, and a conflict
    #: drops the stale copy before the command is tried again (`retry`). Reads for
    #: callers who must see the stored state use `read` / `find(fresh=True)`.
    cache_size: ClassVar[int] = 0

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None) -> None:
        cache = {}
        if self.cache_size:
            cache = {
                "AGGREGATE_CACHE_MAXSIZE": str(self.cache_size),
                "AGGREGATE_CACHE_FASTFORWARD": "n",
            }
        super().__init__({**cache, **(env or {})})
        self.clock: Clock = clock or SystemClock()
        # Counts saves in this process: the relay and projectors wake on it instead of
        # waiting out their poll interval.
        self._saves = 0
        self._saved = threading.Condition()
        # The domain events this process saved last, by notification id: the relay and
        # the projectors read them back from the log moments later, and decoding each
        # stored event twice was ~10 % of the order service's interpreter time.
        self._recent: OrderedDict[int, Any] = OrderedDict()

    def construct_recorder(self) -> ProcessRecorder:  # type: ignore[override]
        return self.factory.process_recorder()

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        super()._notify(recordings)
        if recordings:
            with self._saved:
                for recording in recordings:
                    self._recent[recording.notification.id] = recording.domain_event
                while len(self._recent) > RECENT_EVENTS:
                    self._recent.popitem(last=False)
                self._saves += 1
                self._saved.notify_all()

    def domain_event(self, notification: Notification) -> Any:
        """The domain event a notification of this store's log stands for: the one this
        process saved, if it was saved lately (domain events are immutable), else
        decoded from the stored record."""
        saved = self._recent.get(notification.id)
        return saved if saved is not None else self.mapper.to_domain_event(notification)

    @property
    def saves(self) -> int:
        return self._saves

    def wait_for_saves(self, seen: int, timeout: float) -> None:
        """Block until this process saved events after `seen` saves, or `timeout` passed."""
        with self._saved:
            self._saved.wait_for(lambda: self._saves != seen, timeout)

    def record(
        self,
        aggregates: Iterable[Aggregate],
        tracking: Tracking | None = None,
        moves: Sequence[TrackingMove] = (),
    ) -> list[Recording[UUID]]:
        """Save the aggregates' pending events, the tracking and the consumer positions'
        moves in one transaction (a move fails the whole of it with a conflict if its
        position is no longer where it started)."""
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.collect_events(*aggregates)
        if moves:
            processing.saved_kwargs[KWARG] = list(moves)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def retry(self, ids: Iterable[UUID], attempt: Callable[[], T], attempts: int = 8) -> T:
        """Optimistic concurrency: on a version conflict, drop the cached copies of `ids`
        (they were stale), load again and decide again."""
        for _ in range(attempts - 1):
            try:
                return attempt()
            except RecordConflictError:
                self.forget(ids)
        return attempt()

    def change(
        self,
        aggregate_id: UUID,
        act: Callable[[Agg], object],
        *,
        kind: type[Agg],
        missing: Callable[[], Exception],
        new: Callable[[], Agg] | None = None,
    ) -> Agg:
        """A command on one aggregate: load it (or make it with `new`; without `new`, a
        missing one raises `missing()`), act on it, save it; on a version conflict, load
        again and act again. Returns the aggregate as saved."""

        def act_then(aggregate: Agg) -> Agg:
            act(aggregate)
            return aggregate

        return self.decide(aggregate_id, act_then, kind=kind, missing=missing, new=new)

    def decide(
        self,
        aggregate_id: UUID,
        act: Callable[[Agg], T],
        *,
        kind: type[Agg],
        missing: Callable[[], Exception],
        new: Callable[[], Agg] | None = None,
    ) -> T:
        """Like `change`, returning what `act` returned (e.g. whether a deadline fired)."""

        def attempt() -> T:
            aggregate = self.find(aggregate_id)
            if not isinstance(aggregate, kind):
                if new is None:
                    raise missing()
                aggregate = new()
            result = act(aggregate)
            self.save(aggregate)
            return result

        return self.retry([aggregate_id], attempt)

    def read(self, aggregate_id: UUID) -> Any:
        """The aggregate as stored now, not as this process last cached it (another
        worker may have changed it since); AggregateNotFoundError if there is none."""
        return self.repository.get(aggregate_id, version=sys.maxsize)

    @overload
    def find(self, aggregate_id: UUID, kind: None = None, fresh: bool = False) -> Any | None: ...
    @overload
    def find(self, aggregate_id: UUID, kind: type[Agg], fresh: bool = False) -> Agg | None: ...

    def find(
        self, aggregate_id: UUID, kind: type[Aggregate] | None = None, fresh: bool = False
    ) -> Any | None:
        """The aggregate (of `kind`, if given), or None if there is none. For a command,
        possibly this process's cached copy (its save checks the version); `fresh` for
        callers who must see what is stored now."""
        try:
            found = self.read(aggregate_id) if fresh else self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if kind is None or isinstance(found, kind) else None

    def cached(self, aggregate_id: UUID) -> bool:
        """Whether this process holds a copy of the aggregate in its cache (no query)."""
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(aggregate_id)
        except KeyError:
            return False
        return True

    def forget(self, aggregate_ids: Iterable[UUID]) -> None:
        """Drop aggregates from the cache (after a write conflict showed them stale)."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in aggregate_ids:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def tracked_position(self, name: str) -> int:
        return self.recorder.max_tracking_id(name) or 0

    def tracked_positions(self, names: Sequence[str]) -> dict[str, int]:
        """Consumer positions by name, in one query (0: none recorded)."""
        recorder: Any = self.recorder
        if hasattr(recorder, "positions"):
            return recorder.positions(names)  # type: ignore[no-any-return]
        return {name: self.tracked_position(name) for name in names}


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class _PgCursor:
    """Lets the same `?`-style SQL run on psycopg."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("?", "%s"), rows)

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


class SqlStore:
    """Transactions on the service's own database, for SQL that both SQLite and
    PostgreSQL understand (write `?` placeholders)."""

    def __init__(self, store: StoreSettings, service: str) -> None:
        self.dialect = "sqlite" if store.dsn is None else "postgres"
        self._local = threading.local()
        self._pool: Any = None
        if store.dsn is None:
            self._path = sqlite_path(store, service)
            self._path.parent.mkdir(parents=True, exist_ok=True)
        else:
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(
                store.dsn.get_secret_value(), min_size=1, max_size=4, open=True, timeout=30
            )

    def _sqlite(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        """One transaction. On SQLite a writing one takes the file's write lock at once
        (BEGIN IMMEDIATE); never call the event store while holding it, because the
        event store's own connections wait for the same lock."""
        if self._pool is not None:
            with self._pool.connection() as conn, conn.transaction():
                yield _PgCursor(conn.cursor())
            return
        conn = self._sqlite()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn.cursor()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def serialize(self, cur: Any, name: str) -> None:
        """Inside a writing transaction: wait for any other holder of `name` (another
        process of the same service) until this transaction ends. SQLite's write lock
        already serializes writers; PostgreSQL takes a transaction advisory lock."""
        if self.dialect == "postgres":
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
