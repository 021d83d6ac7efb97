"""The service desk's read models, fed from its own store's log: tickets (the queue
views, the timers' due list, the KPIs) and returns. The queue view is one indexed range
scan: `(queue, status, opened_at)`, newest first, a page at a time."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from typing import Any

from shopfloor_runtime.projection import Projector, ts
from shopfloor_runtime.store import ServiceApplication, SqlStore

from service_desk.domain import Return, Ticket

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS ticket_view (ticket_id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
    "type TEXT NOT NULL, customer_id TEXT NOT NULL, order_id TEXT, tier TEXT NOT NULL, "
    "level TEXT NOT NULL, queue TEXT NOT NULL, specialist TEXT, status TEXT NOT NULL, "
    "source TEXT, opened_at TEXT NOT NULL, first_response_due TEXT NOT NULL, answered_at TEXT, "
    "first_agent TEXT, first_response_s REAL, first_missed INTEGER NOT NULL DEFAULT 0, "
    "resolution_due TEXT NOT NULL, resolution_missed INTEGER NOT NULL DEFAULT 0, "
    "resolved_at TEXT, resolved_by TEXT, resolution_s REAL, rating INTEGER, next_due TEXT, "
    "updated_at TEXT NOT NULL)",
    # a page of a queue is one range of this index, in its order: no sort, no scan
    "CREATE INDEX IF NOT EXISTS ticket_queue_page ON ticket_view "
    "(queue, status, opened_at, ticket_id)",
    "CREATE INDEX IF NOT EXISTS ticket_customer_page ON ticket_view "
    "(customer_id, opened_at, ticket_id)",
    "CREATE INDEX IF NOT EXISTS ticket_due ON ticket_view (next_due)",
    "CREATE INDEX IF NOT EXISTS ticket_opened ON ticket_view (opened_at)",
    "CREATE TABLE IF NOT EXISTS return_view (return_id TEXT PRIMARY KEY, ticket_id TEXT NOT "
    "NULL, order_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, requested_at "
    "TEXT NOT NULL, refund_amount TEXT, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS return_order ON return_view (order_id)",
]
DROP = [f"DROP TABLE IF EXISTS {t}" for t in ("ticket_view", "return_view")]

#: the next deadline a ticket can still miss, from its row (text times compare as times)
NEXT_DUE = (
    "UPDATE ticket_view SET next_due = CASE "
    "WHEN status = 'resolved' THEN NULL "
    "WHEN answered_at IS NULL AND first_missed = 0 AND status = 'open' AND resolution_missed = 0 "
    "THEN CASE WHEN first_response_due < resolution_due THEN first_response_due "
    "ELSE resolution_due END "
    "WHEN answered_at IS NULL AND first_missed = 0 THEN first_response_due "
    "WHEN status = 'open' AND resolution_missed = 0 THEN resolution_due "
    "ELSE NULL END WHERE ticket_id = ?"
)


def _set(cur: Any, e: Any, **columns: Any) -> None:
    names = ", ".join(f"{name} = ?" for name in columns)
    cur.execute(
        f"UPDATE ticket_view SET {names}, updated_at = ? WHERE ticket_id = ?",  # noqa: S608
        (*columns.values(), ts(e.at), str(e.originator_id)),
    )


def _opened(cur: Any, e: Any) -> None:
    cur.execute(
        "INSERT INTO ticket_view (ticket_id, channel, type, customer_id, order_id, tier, level, "
        "queue, status, source, opened_at, first_response_due, resolution_due, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'ordinary', ?, 'open', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            str(e.originator_id),
            e.channel,
            e.kind,
            e.customer_id,
            e.order_id,
            e.tier,
            e.queue,
            e.source,
            ts(e.at),
            ts(e.first_response_due),
            ts(e.resolution_due),
            ts(e.at),
        ),
    )


def _ticket(cur: Any, e: Any) -> None:
    kind = type(e)
    if kind is Ticket.Opened:
        _opened(cur, e)
    elif kind is Ticket.CustomerWrote:
        _set(cur, e, status="open", resolution_due=ts(e.resolution_due))
    elif kind is Ticket.AgentReplied:
        if e.first:
            _set(
                cur,
                e,
                answered_at=ts(e.at),
                first_agent=e.agent,
                first_response_s=e.first_response_s,
            )
        if e.waiting:
            cur.execute(
                "UPDATE ticket_view SET status = 'waiting_customer' WHERE ticket_id = ? "
                "AND status = 'open'",
                (str(e.originator_id),),
            )
    elif kind is Ticket.FirstResponseMoved:
        _set(cur, e, first_response_due=ts(e.due))
    elif kind is Ticket.FirstResponseMissed:
        _set(cur, e, first_missed=1)
    elif kind is Ticket.ResolutionMissed:
        _set(cur, e, resolution_missed=1)
    elif kind is Ticket.Escalated:
        _set(cur, e, level=e.to_level, queue=e.queue, specialist=e.specialist)
    elif kind is Ticket.Routed:
        _set(cur, e, queue=e.queue)
    elif kind is Ticket.Resolved:
        _set(
            cur,
            e,
            status="resolved",
            resolved_at=ts(e.at),
            resolved_by=e.agent,
            resolution_s=e.resolution_s,
        )
    elif kind is Ticket.Rated:
        _set(cur, e, rating=e.score)
    else:
        return
    cur.execute(NEXT_DUE, (str(e.originator_id),))


def _return(cur: Any, e: Any) -> None:
    kind, ret = type(e), str(e.originator_id)
    if kind is Return.Requested:
        cur.execute(
            "INSERT INTO return_view (return_id, ticket_id, order_id, status, reason, "
            "requested_at, updated_at) VALUES (?, ?, ?, 'requested', ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (ret, e.ticket, e.order_id, e.reason, ts(e.at), ts(e.at)),
        )
        return
    status = {Return.Authorized: "authorized", Return.Refused: "refused"}.get(kind)
    if status:
        cur.execute(
            "UPDATE return_view SET status = ?, updated_at = ? WHERE return_id = ?",
            (status, ts(e.at), ret),
        )
    elif kind is Return.Received:
        cur.execute(
            "UPDATE return_view SET status = 'received', refund_amount = ?, updated_at = ? "
            "WHERE return_id = ?",
            (e.refund_amount, ts(e.at), ret),
        )


def apply(cur: Any, e: Any) -> None:
    if isinstance(e, Ticket.Event):
        _ticket(cur, e)
    elif isinstance(e, Return.Event):
        _return(cur, e)


def projector(app: ServiceApplication, sql: SqlStore) -> Projector:
    return Projector("service-desk", app, sql, SCHEMA, apply, DROP)


COLUMNS = (
    "ticket_id, channel, type, customer_id, order_id, tier, level, queue, specialist, status, "
    "source, opened_at, first_response_due, answered_at, first_agent, first_response_s, "
    "first_missed, resolution_due, resolution_missed, resolved_at, resolved_by, "
    "resolution_s, rating"
)


def _row(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(names, row, strict=True))
    first, resolution = found.pop("first_missed"), found.pop("resolution_missed")
    found["breached"] = bool(first or resolution)
    return found


class DeskQueries:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def tickets(
        self,
        queue: str | None,
        level: str | None,
        status: str | None,
        customer: str | None,
        breached: bool | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        """Newest first; every filter is optional."""
        where, args = [], []
        for column, value in (
            ("queue", queue),
            ("level", level),
            ("status", status),
            ("customer_id", customer),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if breached is not None:
            where.append(
                "(first_missed = 1 OR resolution_missed = 1)"
                if breached
                else "(first_missed = 0 AND resolution_missed = 0)"
            )
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        query = (
            f"SELECT {COLUMNS} FROM ticket_view {clause} "  # noqa: S608 - columns are ours
            "ORDER BY opened_at DESC, ticket_id DESC LIMIT ? OFFSET ?"
        )
        with self.sql.transaction(write=False) as cur:
            cur.execute(query, (*args, limit, offset))
            names = [c.strip() for c in COLUMNS.split(",")]
            return [_row(names, row) for row in cur.fetchall()]

    def due(self, now: datetime, limit: int = 1000) -> list[str]:
        """Tickets with a deadline passed and not yet missed."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT ticket_id FROM ticket_view WHERE next_due IS NOT NULL AND next_due <= ? "
                "ORDER BY next_due LIMIT ?",
                (ts(now), limit),
            )
            return [row[0] for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self.sql.transaction(write=False) as cur:
            cur.execute("SELECT status, COUNT(*) FROM ticket_view GROUP BY status")
            found = {row[0]: int(row[1]) for row in cur.fetchall()}
            cur.execute(
                "SELECT COUNT(*) FROM ticket_view WHERE first_missed = 1 OR resolution_missed = 1"
            )
            found["breached"] = int(cur.fetchone()[0])
            cur.execute("SELECT COUNT(*) FROM ticket_view WHERE level != 'ordinary'")
            found["escalated"] = int(cur.fetchone()[0])
        return found

    def returns(self, order_id: str) -> list[dict[str, Any]]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT return_id, ticket_id, order_id, status, reason, requested_at, "
                "refund_amount FROM return_view WHERE order_id = ? ORDER BY requested_at",
                (order_id,),
            )
            names = ["return_id", "ticket_id", "order_id", "status", "reason", "requested_at"]
            return [
                dict(zip([*names, "refund_amount"], row, strict=True)) for row in cur.fetchall()
            ]

    def kpis(self, since: datetime, until: datetime) -> dict[str, Any]:
        """First response and resolution times (p50/p90, seconds), resolution rate, SLA
        breach rate and satisfaction of the tickets opened in [since, until), overall
        and per channel, type and agent."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT channel, type, first_agent, resolved_by, first_response_s, "
                "resolution_s, status, first_missed, resolution_missed, rating FROM "
                "ticket_view WHERE opened_at >= ? AND opened_at < ?",
                (ts(since), ts(until)),
            )
            rows = cur.fetchall()
        by: dict[str, dict[str, list[tuple[Any, ...]]]] = {"channel": {}, "type": {}, "agent": {}}
        for row in rows:
            by["channel"].setdefault(row[0], []).append(row)
            by["type"].setdefault(row[1], []).append(row)
            for agent in {row[2], row[3]} - {None}:
                by["agent"].setdefault(agent, []).append(row)
        return {
            "from": since.date().isoformat(),
            "to": (until - timedelta(microseconds=1)).date().isoformat(),  # the last day in
            **_figures(rows),
            **{
                f"by_{k}": {name: _figures(v) for name, v in sorted(g.items())}
                for k, g in by.items()
            },
        }


def _figures(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    first = [r[4] for r in rows if r[4] is not None]
    resolved = [r[5] for r in rows if r[5] is not None]
    ratings = [r[9] for r in rows if r[9] is not None]
    breached = sum(1 for r in rows if r[7] or r[8])
    return {
        "tickets": len(rows),
        "first_response_s": _percentiles(first),
        "resolution_s": _percentiles(resolved),
        "resolution_rate": _rate(len(resolved), len(rows)),
        "sla_breach_rate": _rate(breached, len(rows)),
        "satisfaction": round(statistics.fmean(ratings), 2) if ratings else None,
        "ratings": len(ratings),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None}
    ordered = sorted(values)

    def at(p: float) -> float:  # nearest rank
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {"p50": at(0.5), "p90": at(0.9)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
