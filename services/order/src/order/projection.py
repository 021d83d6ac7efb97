"""The order list read model (`order_view`): status, customer and payment deadlines; the
end of each delivered order's return window (`order_completion`), and risk's holds on
open orders (`order_hold`): tables of their own, so a store made before deliveries or
holds existed needs no new column. An open order with a hold shows as `on_hold`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from shopfloor_runtime.projection import Projector, ts
from shopfloor_runtime.store import ServiceApplication, SqlStore

from order.domain import AWAITING_PAYMENT, DELIVERED, ON_HOLD, OPEN, Order

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS order_view (order_id TEXT PRIMARY KEY, customer_id TEXT "
    "NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL, total TEXT NOT NULL, currency "
    "TEXT NOT NULL, placed_at TEXT NOT NULL, reminder_at TEXT NOT NULL, due_at TEXT NOT NULL, "
    "reminded INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS order_view_customer ON order_view (customer_id, placed_at)",
    "CREATE INDEX IF NOT EXISTS order_view_status ON order_view (status, due_at)",
    "CREATE TABLE IF NOT EXISTS order_completion (order_id TEXT PRIMARY KEY, "
    "completes_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS order_completion_due ON order_completion (completes_at)",
    "CREATE TABLE IF NOT EXISTS order_hold (order_id TEXT PRIMARY KEY, exception_id TEXT "
    "NOT NULL, held_at TEXT NOT NULL)",
]
DROP = [
    "DROP TABLE IF EXISTS order_view",
    "DROP TABLE IF EXISTS order_completion",
    "DROP TABLE IF EXISTS order_hold",
]
_OPEN = ", ".join(f"'{s}'" for s in OPEN)
#: the status column as people see it (Order.state)
_SHOWN = (
    f"CASE WHEN h.order_id IS NOT NULL AND v.status IN ({_OPEN}) THEN '{ON_HOLD}' ELSE v.status END"
)

_STATUS = {
    Order.Paid: "paid",
    Order.Confirmed: "confirmed",
    Order.Cancelled: "cancelled",
    Order.Shipped: "shipped",
    Order.Delivered: "delivered",
    Order.Completed: "completed",
}


def apply(cur: Any, e: Any) -> None:
    order_id, now = str(e.originator_id), ts(e.timestamp)
    if isinstance(e, Order.Placed):
        cur.execute(
            "INSERT INTO order_view (order_id, customer_id, channel, status, total, currency, "
            "placed_at, reminder_at, due_at, reminded, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (order_id) DO NOTHING",
            (
                order_id,
                e.customer_id,
                e.channel,
                AWAITING_PAYMENT,
                str(e.total),
                e.currency,
                ts(e.placed_at),
                ts(e.payment_reminder_at),
                ts(e.payment_due_at),
                now,
            ),
        )
    elif type(e) in _STATUS:
        cur.execute(
            "UPDATE order_view SET status = ?, updated_at = ? WHERE order_id = ?",
            (_STATUS[type(e)], now, order_id),
        )
        _completion(cur, e, order_id)
    elif isinstance(e, Order.Held):
        cur.execute(
            "INSERT INTO order_hold (order_id, exception_id, held_at) VALUES (?, ?, ?) "
            "ON CONFLICT (order_id) DO UPDATE SET exception_id = excluded.exception_id, "
            "held_at = excluded.held_at",
            (order_id, e.exception_id, ts(e.held_at)),
        )
        cur.execute("UPDATE order_view SET updated_at = ? WHERE order_id = ?", (now, order_id))
    elif isinstance(e, Order.Released):
        cur.execute("DELETE FROM order_hold WHERE order_id = ?", (order_id,))
        cur.execute("UPDATE order_view SET updated_at = ? WHERE order_id = ?", (now, order_id))
    elif isinstance(e, Order.PaymentReminderSent):
        cur.execute(
            "UPDATE order_view SET reminded = 1, updated_at = ? WHERE order_id = ?", (now, order_id)
        )
    elif isinstance(e, Order.Refunded) and e.fully_refunded:
        cur.execute(
            "UPDATE order_view SET status = 'refunded', updated_at = ? "
            "WHERE order_id = ? AND status <> 'cancelled'",
            (now, order_id),
        )
        # a refunded order never completes (Order.complete): no deadline left to watch
        cur.execute("DELETE FROM order_completion WHERE order_id = ?", (order_id,))


def _completion(cur: Any, e: Any, order_id: str) -> None:
    if isinstance(e, Order.Delivered):
        cur.execute(
            "INSERT INTO order_completion (order_id, completes_at) VALUES (?, ?) "
            "ON CONFLICT (order_id) DO NOTHING",
            (order_id, ts(e.completes_at)),
        )
    elif isinstance(e, Order.Completed):
        cur.execute("DELETE FROM order_completion WHERE order_id = ?", (order_id,))


def projector(app: ServiceApplication, sql: SqlStore) -> Projector:
    return Projector("order_view", app, sql, SCHEMA, apply, DROP)


class OrderQueries:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def list_orders(
        self, status: str | None, customer: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if status == ON_HOLD:
            where.append(f"h.order_id IS NOT NULL AND v.status IN ({_OPEN})")
        elif status is not None:
            where.append(f"v.status = ? AND NOT (h.order_id IS NOT NULL AND v.status IN ({_OPEN}))")
            params.append(status)
        if customer is not None:
            where.append("v.customer_id = ?")
            params.append(customer)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        columns = [
            "order_id",
            "customer_id",
            "channel",
            "status",
            "total",
            "currency",
            "placed_at",
            "updated_at",
        ]
        selected = ", ".join(_SHOWN if c == "status" else f"v.{c}" for c in columns)
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                f"SELECT {selected} FROM order_view v "  # noqa: S608
                f"LEFT JOIN order_hold h ON h.order_id = v.order_id {clause} "
                "ORDER BY v.placed_at DESC, v.order_id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]

    def due_deadlines(self, now: datetime, limit: int = 500) -> list[UUID]:
        """Unpaid orders whose reminder or payment deadline has passed, and delivered
        ones whose return window has closed (one refunded meanwhile is not due)."""
        moment = ts(now)
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT order_id FROM order_view WHERE status = ? AND "
                "((reminded = 0 AND reminder_at <= ?) OR due_at <= ?) ORDER BY due_at LIMIT ?",
                (AWAITING_PAYMENT, moment, moment, limit),
            )
            due = [UUID(row[0]) for row in cur.fetchall()]
            cur.execute(
                "SELECT c.order_id FROM order_completion c JOIN order_view v "
                "ON v.order_id = c.order_id WHERE v.status = ? AND c.completes_at <= ? "
                "ORDER BY c.completes_at LIMIT ?",
                (DELIVERED, moment, limit),
            )
            return due + [UUID(row[0]) for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                f"SELECT {_SHOWN}, COUNT(*) FROM order_view v "  # noqa: S608
                "LEFT JOIN order_hold h ON h.order_id = v.order_id GROUP BY 1"
            )
            return {row[0]: int(row[1]) for row in cur.fetchall()}
