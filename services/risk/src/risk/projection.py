"""Risk read models, fed from the risk store's own log: cases (the exception queues and
the timers' due lists), which rules fired in which exception and when (the statistics),
and the blacklist."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shopfloor_runtime.projection import Projector, ts
from shopfloor_runtime.store import ServiceApplication, SqlStore

from risk.domain import BlacklistEntry, Case

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS case_view (order_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, "
    "customer_id TEXT, status TEXT NOT NULL DEFAULT 'none', queue TEXT, level TEXT, "
    "hold INTEGER NOT NULL DEFAULT 0, reasons TEXT NOT NULL DEFAULT '[]', "
    "assessments INTEGER NOT NULL DEFAULT 0, seen_at TEXT, opened_at TEXT, updated_at TEXT, "
    "confirmed_at TEXT, shipped INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL "
    "DEFAULT 0, not_shipped INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS case_queue ON case_view (status, queue, opened_at)",
    "CREATE INDEX IF NOT EXISTS case_waiting ON case_view (assessments, seen_at)",
    "CREATE TABLE IF NOT EXISTS exception_reason (order_id TEXT NOT NULL, rule TEXT NOT NULL, "
    "level TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (order_id, rule))",
    "CREATE TABLE IF NOT EXISTS blacklist_view (entry_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "value TEXT NOT NULL, reason TEXT NOT NULL, added_by TEXT NOT NULL, automatic INTEGER "
    "NOT NULL, active INTEGER NOT NULL, added_at TEXT NOT NULL, removed_by TEXT, "
    "removed_reason TEXT, removed_at TEXT)",
]
DROP = [f"DROP TABLE IF EXISTS {t}" for t in ("case_view", "exception_reason", "blacklist_view")]


def _set(cur: Any, e: Any, **columns: Any) -> None:
    names = ", ".join(f"{name} = ?" for name in columns)
    cur.execute(
        f"UPDATE case_view SET {names} WHERE case_id = ?",  # noqa: S608 - names are ours
        (*columns.values(), str(e.originator_id)),
    )


def _case(cur: Any, e: Any) -> None:
    kind = type(e)
    if kind is Case.Opened:
        cur.execute(
            "INSERT INTO case_view (order_id, case_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (e.order_id, str(e.originator_id)),
        )
    elif kind is Case.Placed:
        _set(cur, e, customer_id=e.placed["customer_id"], seen_at=e.placed["seen_at"])
    elif kind is Case.Assessed:
        _set(
            cur,
            e,
            status=e.status,
            queue=e.queue,
            level=e.level,
            hold=int(e.hold),
            reasons=json.dumps(e.reasons),
            assessments=e.assessment,
            opened_at=ts(e.opened_at) if e.opened_at else None,
            updated_at=ts(e.at),
        )
        for row in e.reasons:
            cur.execute(
                "INSERT INTO exception_reason (order_id, rule, level, day) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (e.order_id, row["rule"], row["level"], e.at.date().isoformat()),
            )
    elif kind is Case.Confirmed:
        _set(cur, e, confirmed_at=ts(e.at))
    elif kind is Case.Shipped:
        _set(cur, e, shipped=1)
    elif kind is Case.Cancelled:
        _set(cur, e, cancelled=1, hold=0)
    elif kind is Case.NotShipped:
        _set(cur, e, not_shipped=1)
    elif kind is Case.Escalated:
        _set(cur, e, queue=e.to_queue, updated_at=ts(e.at))
    elif kind is Case.Released:
        _set(cur, e, status="released", hold=0, updated_at=ts(e.at))
    elif kind is Case.CancelRequested:
        _set(cur, e, status="cancelled", hold=0, updated_at=ts(e.at))
    elif kind is Case.Closed:
        _set(cur, e, status="closed", updated_at=ts(e.at))


def _entry(cur: Any, e: Any) -> None:
    kind, entry = type(e), str(e.originator_id)
    if kind in (BlacklistEntry.Added, BlacklistEntry.Readded):
        cur.execute(
            "INSERT INTO blacklist_view (entry_id, kind, value, reason, added_by, automatic, "
            "active, added_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (entry_id) DO UPDATE "
            "SET reason = excluded.reason, added_by = excluded.added_by, automatic = "
            "excluded.automatic, active = 1, added_at = excluded.added_at, removed_by = NULL, "
            "removed_reason = NULL, removed_at = NULL",
            (entry, e.kind, e.value, e.reason, e.added_by, int(e.automatic), ts(e.at)),
        )
    elif kind is BlacklistEntry.Removed:
        cur.execute(
            "UPDATE blacklist_view SET active = 0, removed_by = ?, removed_reason = ?, "
            "removed_at = ? WHERE entry_id = ?",
            (e.removed_by, e.reason, ts(e.at), entry),
        )


def apply(cur: Any, e: Any) -> None:
    if isinstance(e, Case.Event):
        _case(cur, e)
    elif isinstance(e, BlacklistEntry.Event):
        _entry(cur, e)


def projector(app: ServiceApplication, sql: SqlStore) -> Projector:
    return Projector("risk", app, sql, SCHEMA, apply, DROP)


class RiskQueries:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def _column(self, query: str, args: tuple[Any, ...]) -> list[str]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(query, args)
            return [row[0] for row in cur.fetchall()]

    def waiting_assessment(self, seen_before: datetime) -> list[str]:
        """Orders placed (as risk saw them) before then, never assessed, and neither
        shipped nor cancelled (nothing left to stop), the oldest first."""
        return self._column(
            "SELECT order_id FROM case_view WHERE assessments = 0 AND seen_at IS NOT NULL "
            "AND seen_at <= ? AND shipped = 0 AND cancelled = 0 ORDER BY seen_at LIMIT 1000",
            (seen_before.isoformat(),),
        )

    def escalation_due(self, opened_before: datetime) -> list[str]:
        return self._column(
            "SELECT order_id FROM case_view WHERE status = 'open' AND queue = 'front_line' "
            "AND opened_at <= ? LIMIT 1000",
            (ts(opened_before),),
        )

    def not_shipped_due(self, confirmed_before: datetime) -> list[str]:
        return self._column(
            "SELECT order_id FROM case_view WHERE confirmed_at IS NOT NULL AND confirmed_at <= ? "
            "AND shipped = 0 AND cancelled = 0 AND not_shipped = 0 LIMIT 1000",
            (ts(confirmed_before),),
        )

    def exceptions(
        self,
        queue: str | None,
        level: str | None,
        status: str | None,
        reason: str | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        """Flagged orders, newest first, with every reason."""
        where, args = ["status != 'none'"], []
        for column, value in (("queue", queue), ("level", level), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if reason is not None:
            where.append(
                "order_id IN (SELECT order_id FROM exception_reason WHERE rule = ? OR rule LIKE ?)"
            )
            args += [reason, f"{reason}.%"]
        columns = (
            "case_id, order_id, customer_id, status, queue, level, hold, reasons, "
            "assessments, opened_at, updated_at"
        )
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                f"SELECT {columns} FROM case_view WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY opened_at DESC, order_id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            )
            names = [c.strip() for c in columns.split(",")]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            row["exception_id"] = row.pop("case_id")
            row["hold"] = bool(row["hold"])
            row["reasons"] = json.loads(row["reasons"])
        return rows

    def counts(self) -> dict[str, int]:
        """Exceptions by status, and how many of the open ones hold their order."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT status, COUNT(*), SUM(hold) FROM case_view WHERE status != 'none' "
                "GROUP BY status"
            )
            rows = cur.fetchall()
        found = {str(status): int(n) for status, n, _ in rows}
        found["held"] = sum(int(held or 0) for status, _, held in rows if status == "open")
        return found

    def stats(self, since: str, until: str) -> dict[str, Any]:
        """Exceptions by reason, level and day (the day a rule first fired in each): an
        order flagged by two rules counts once under each rule and under each rule's
        level; `orders` counts each flagged order once."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT day, rule, level, COUNT(*) FROM exception_reason WHERE day >= ? AND "
                "day <= ? GROUP BY day, rule, level ORDER BY day, rule",
                (since, until),
            )
            rows = cur.fetchall()
            cur.execute(
                "SELECT COUNT(DISTINCT order_id) FROM exception_reason WHERE day >= ? AND day <= ?",
                (since, until),
            )
            (orders,) = cur.fetchone()
        by_reason: dict[str, int] = {}
        by_level: dict[str, int] = {}
        by_day: dict[str, dict[str, int]] = {}
        for day, rule, level, n in rows:
            by_reason[rule] = by_reason.get(rule, 0) + n
            by_level[level] = by_level.get(level, 0) + n
            by_day.setdefault(day, {})[rule] = by_day.get(day, {}).get(rule, 0) + n
        return {
            "from": since,
            "to": until,
            "orders": int(orders),
            "by_reason": by_reason,
            "by_level": by_level,
            "by_day": by_day,
        }

    def blacklist(self, active: bool | None) -> list[dict[str, Any]]:
        args: tuple[int, ...]
        columns = (
            "entry_id, kind, value, reason, added_by, automatic, active, added_at, removed_by, "
            "removed_reason, removed_at"
        )
        where, args = "", ()
        if active is not None:
            where, args = "WHERE active = ?", (int(active),)
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                f"SELECT {columns} FROM blacklist_view {where} ORDER BY added_at DESC, entry_id",  # noqa: S608
                args,
            )
            names = [c.strip() for c in columns.split(",")]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            row["automatic"], row["active"] = bool(row["automatic"]), bool(row["active"])
        return rows
