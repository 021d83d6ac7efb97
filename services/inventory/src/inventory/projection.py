"""Inventory read models, fed from the inventory store's own log: stock per warehouse,
SKUs below safety stock with reorder advice, open reservation lines, serial histories."""

from __future__ import annotations

from typing import Any

from shopfloor_runtime.projection import Projector, ts
from shopfloor_runtime.store import ServiceApplication, SqlStore

from inventory.domain import PRESALE, Sku

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS stock_view (sku TEXT NOT NULL, warehouse TEXT NOT NULL, "
    "on_hand BIGINT NOT NULL, reserved BIGINT NOT NULL, PRIMARY KEY (sku, warehouse))",
    "CREATE TABLE IF NOT EXISTS sku_view (sku TEXT PRIMARY KEY, safety_stock BIGINT NOT NULL "
    "DEFAULT 0, below_safety INTEGER NOT NULL DEFAULT 0, suggested_qty BIGINT, "
    "daily_velocity DOUBLE PRECISION, lead_time_days BIGINT, suggested_at TEXT)",
    "CREATE TABLE IF NOT EXISTS reservation_view (order_id TEXT NOT NULL, sku TEXT NOT NULL, "
    "warehouse TEXT NOT NULL, qty BIGINT NOT NULL, PRIMARY KEY (order_id, sku, warehouse))",
    "CREATE TABLE IF NOT EXISTS serial_history (serial TEXT NOT NULL, position BIGINT NOT NULL, "
    "sku TEXT NOT NULL, event TEXT NOT NULL, warehouse TEXT, order_id TEXT, at TEXT NOT NULL, "
    "PRIMARY KEY (serial, position))",
]
DROP = [
    f"DROP TABLE IF EXISTS {t}"
    for t in ("stock_view", "sku_view", "reservation_view", "serial_history")
]

_ADD_STOCK = (
    "INSERT INTO stock_view (sku, warehouse, on_hand, reserved) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = stock_view.on_hand + "
    "excluded.on_hand, reserved = stock_view.reserved + excluded.reserved"
)


def _sku_row(cur: Any, sku: str) -> None:
    cur.execute("INSERT INTO sku_view (sku) VALUES (?) ON CONFLICT (sku) DO NOTHING", (sku,))


def _history(
    cur: Any,
    e: Any,
    sku: str,
    serials: list[str],
    what: str,
    warehouse: str | None,
    order_id: str | None,
) -> None:
    for serial in serials:
        cur.execute(
            "INSERT INTO serial_history (serial, position, sku, event, warehouse, "
            "order_id, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (serial, e.originator_version, sku, what, warehouse, order_id, ts(e.timestamp)),
        )


def _holds(cur: Any, e: Any, sku: str, sign: int, what: str) -> None:
    """Reserve (+1), release or commit (-1) an order's allocation on one SKU."""
    for part in e.allocation:
        if part["warehouse"] != PRESALE:
            committed = what == "shipped"
            cur.execute(
                _ADD_STOCK,
                (sku, part["warehouse"], -part["qty"] if committed else 0, sign * part["qty"]),
            )
        if sign > 0:
            cur.execute(
                "INSERT INTO reservation_view (order_id, sku, warehouse, qty) VALUES "
                "(?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (e.order_id, sku, part["warehouse"], part["qty"]),
            )
        _history(cur, e, sku, part["serials"], what, part["warehouse"], e.order_id)
    if sign < 0:
        cur.execute(
            "DELETE FROM reservation_view WHERE order_id = ? AND sku = ?", (e.order_id, sku)
        )


def _fill_presale(cur: Any, e: Any, sku: str) -> None:
    for fill in e.fills:
        cur.execute(_ADD_STOCK, (sku, e.warehouse, 0, fill["qty"]))
        cur.execute(
            "INSERT INTO reservation_view (order_id, sku, warehouse, qty) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (order_id, sku, warehouse) DO UPDATE SET "
            "qty = reservation_view.qty + excluded.qty",
            (fill["order_id"], sku, e.warehouse, fill["qty"]),
        )
        cur.execute(
            "UPDATE reservation_view SET qty = qty - ? WHERE order_id = ? AND sku = ? "
            "AND warehouse = ?",
            (fill["qty"], fill["order_id"], sku, PRESALE),
        )
        _history(cur, e, sku, fill["serials"], "reserved", e.warehouse, fill["order_id"])
    cur.execute("DELETE FROM reservation_view WHERE sku = ? AND qty <= 0", (sku,))


def _move_hold(cur: Any, e: Any, sku: str) -> None:
    """An order's units of one SKU now held in one warehouse: the moved ones left their
    warehouses (or presale), the order's rows are its allocation afterwards."""
    for part in e.moved:
        if part["warehouse"] != PRESALE:
            cur.execute(_ADD_STOCK, (sku, part["warehouse"], 0, -part["qty"]))
        _history(cur, e, sku, part["serials"], "released", part["warehouse"], e.order_id)
    cur.execute(_ADD_STOCK, (sku, e.warehouse, 0, sum(part["qty"] for part in e.moved)))
    _history(cur, e, sku, e.serials, "reserved", e.warehouse, e.order_id)
    cur.execute("DELETE FROM reservation_view WHERE order_id = ? AND sku = ?", (e.order_id, sku))
    for part in e.allocation:
        cur.execute(
            "INSERT INTO reservation_view (order_id, sku, warehouse, qty) VALUES (?, ?, ?, ?)",
            (e.order_id, sku, part["warehouse"], part["qty"]),
        )


def apply(cur: Any, e: Any) -> None:
    kind = type(e)
    if not isinstance(e, Sku.Event):
        return
    sku = e.sku
    if kind is Sku.Registered:
        _sku_row(cur, sku)
    elif kind is Sku.Received:
        cur.execute(_ADD_STOCK, (sku, e.warehouse, e.qty, 0))
        _history(cur, e, sku, e.serials, "received", e.warehouse, None)
    elif kind is Sku.Returned:
        cur.execute(_ADD_STOCK, (sku, e.warehouse, e.qty, 0))
        _history(cur, e, sku, e.serials, "returned", e.warehouse, e.order_id)
    elif kind is Sku.ReturnedDamaged:
        _history(cur, e, sku, e.serials, "returned damaged", e.warehouse, e.order_id)
    elif kind is Sku.Adjusted:
        cur.execute(_ADD_STOCK, (sku, e.warehouse, e.delta, 0))
    elif kind is Sku.Transferred:
        cur.execute(_ADD_STOCK, (sku, e.source, -e.qty, 0))
        _history(cur, e, sku, e.serials, "in transit", e.target, None)
    elif kind is Sku.TransferReceived:
        cur.execute(_ADD_STOCK, (sku, e.target, e.qty, 0))
        _history(cur, e, sku, e.serials, "transferred", e.target, None)
    elif kind is Sku.PresaleFilled:
        _fill_presale(cur, e, sku)
    elif kind is Sku.HoldMoved:
        _move_hold(cur, e, sku)
    elif kind is Sku.Reserved:
        _holds(cur, e, sku, +1, "reserved")
    elif kind is Sku.Released:
        _holds(cur, e, sku, -1, "released")
    elif kind is Sku.Committed:
        _holds(cur, e, sku, -1, "shipped")
    elif kind is Sku.PolicySet:
        cur.execute(
            "UPDATE sku_view SET safety_stock = ?, lead_time_days = ? WHERE sku = ?",
            (e.safety_stock, e.lead_time_days, sku),
        )
    elif kind is Sku.LowStockDetected:
        cur.execute("UPDATE sku_view SET below_safety = 1 WHERE sku = ?", (sku,))
    elif kind is Sku.Recovered:
        cur.execute(
            "UPDATE sku_view SET below_safety = 0, suggested_qty = NULL WHERE sku = ?", (sku,)
        )
    elif kind is Sku.ReorderSuggested:
        cur.execute(
            "UPDATE sku_view SET suggested_qty = ?, daily_velocity = ?, "
            "lead_time_days = ?, suggested_at = ? WHERE sku = ?",
            (e.quantity, e.daily_velocity, e.lead_time_days, ts(e.timestamp), sku),
        )


def projector(app: ServiceApplication, sql: SqlStore) -> Projector:
    return Projector("inventory_views", app, sql, SCHEMA, apply, DROP)


class InventoryQueries:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(sql, params)
            return [tuple(row) for row in cur.fetchall()]

    def below_safety(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT v.sku, v.safety_stock, COALESCE(SUM(s.on_hand), 0), "
            "COALESCE(SUM(s.reserved), 0) FROM sku_view v LEFT JOIN stock_view s "
            "ON s.sku = v.sku WHERE v.below_safety = 1 GROUP BY v.sku, v.safety_stock "
            "ORDER BY v.sku"
        )
        return [
            {
                "sku": r[0],
                "safety_stock": r[1],
                "on_hand": int(r[2]),
                "reserved": int(r[3]),
                "available": int(r[2]) - int(r[3]),
            }
            for r in rows
        ]

    def all_stock(self, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT sku, SUM(on_hand), SUM(reserved) FROM stock_view GROUP BY sku "
            "ORDER BY sku LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [
            {
                "sku": r[0],
                "on_hand": int(r[1]),
                "reserved": int(r[2]),
                "available": int(r[1]) - int(r[2]),
            }
            for r in rows
        ]

    def reorder_suggestions(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT sku, suggested_qty, daily_velocity, lead_time_days, safety_stock, "
            "suggested_at FROM sku_view WHERE below_safety = 1 AND suggested_qty IS NOT NULL "
            "ORDER BY sku"
        )
        keys = [
            "sku",
            "quantity",
            "daily_velocity",
            "lead_time_days",
            "safety_stock",
            "suggested_at",
        ]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def reconciliation(self) -> list[dict[str, Any]]:
        """Per SKU: the reserved total next to the sum of its open reservation lines."""
        rows = self._rows(
            "SELECT s.sku, s.reserved, COALESCE(r.held, 0) FROM "
            "(SELECT sku, SUM(reserved) AS reserved FROM stock_view GROUP BY sku) s "
            "LEFT JOIN (SELECT sku, SUM(qty) AS held FROM reservation_view "
            "WHERE warehouse <> ? GROUP BY sku) r ON r.sku = s.sku ORDER BY s.sku",
            (PRESALE,),
        )
        return [
            {
                "sku": r[0],
                "reserved": int(r[1]),
                "open_reservations": int(r[2]),
                "difference": int(r[1]) - int(r[2]),
            }
            for r in rows
        ]

    def serial_history(self, serial: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT sku, event, warehouse, order_id, at FROM serial_history "
            "WHERE serial = ? ORDER BY position",
            (serial,),
        )
        keys = ["sku", "event", "warehouse", "order_id", "at"]
        return [dict(zip(keys, r, strict=True)) for r in rows]
