"""Fulfilment read models, fed from the fulfilment store's own log: shipments (status,
promise, delay), which order is in which shipment, waves by status and warehouse,
picker performance, and orders waiting for a warehouse."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from shopfloor_runtime.projection import Projector, ts
from shopfloor_runtime.store import ServiceApplication, SqlStore

from fulfilment.domain import OrderFile, Picker, Shipment, Wave

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS shipment_view (shipment_id TEXT PRIMARY KEY, "
    "warehouse TEXT NOT NULL, zone TEXT NOT NULL, carrier TEXT NOT NULL, status TEXT NOT NULL, "
    "promised_by TEXT NOT NULL, delayed INTEGER NOT NULL DEFAULT 0, wave_id TEXT, "
    "allocated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS shipment_due ON shipment_view (delayed, promised_by)",
    "CREATE TABLE IF NOT EXISTS shipment_order (order_id TEXT NOT NULL, shipment_id TEXT "
    "NOT NULL, PRIMARY KEY (order_id, shipment_id))",
    "CREATE TABLE IF NOT EXISTS wave_view (wave_id TEXT PRIMARY KEY, warehouse TEXT NOT NULL, "
    "zone TEXT NOT NULL, sequence BIGINT NOT NULL, orders BIGINT NOT NULL, units BIGINT NOT "
    "NULL, picked BIGINT NOT NULL DEFAULT 0, trigger TEXT NOT NULL, released_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS picker_view (picker TEXT PRIMARY KEY, picks BIGINT NOT NULL "
    "DEFAULT 0, units BIGINT NOT NULL DEFAULT 0, refused BIGINT NOT NULL DEFAULT 0, "
    "first_at TEXT, last_at TEXT)",
    "CREATE TABLE IF NOT EXISTS pick_velocity (warehouse TEXT NOT NULL, sku TEXT NOT NULL, "
    "hour TEXT NOT NULL, picks BIGINT NOT NULL, PRIMARY KEY (warehouse, sku, hour))",
    "CREATE TABLE IF NOT EXISTS unallocated_view (order_id TEXT PRIMARY KEY, reason TEXT "
    "NOT NULL, since TEXT NOT NULL)",
]
DROP = [
    f"DROP TABLE IF EXISTS {t}"
    for t in (
        "shipment_view",
        "shipment_order",
        "wave_view",
        "picker_view",
        "pick_velocity",
        "unallocated_view",
    )
]
DONE = ("delivered", "pulled", "reallocated")

_STATUS = {
    Shipment.StockInPlace: "waiting",
    Shipment.InWave: "in_wave",
    Shipment.Picked: "picked",
    Shipment.Reallocated: "reallocated",
    Shipment.Dispatched: "dispatched",
}


def _status(cur: Any, e: Any, status: str) -> None:
    cur.execute(
        "UPDATE shipment_view SET status = ? WHERE shipment_id = ?", (status, str(e.originator_id))
    )


def _shipment(cur: Any, e: Any) -> None:
    kind, sid = type(e), str(e.originator_id)
    if kind is Shipment.Allocated:
        cur.execute(
            "INSERT INTO shipment_view (shipment_id, warehouse, zone, carrier, status, "
            "promised_by, allocated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                sid,
                e.warehouse,
                e.zone,
                f"{e.carrier} {e.service}",
                "waiting" if e.in_place else "awaiting_stock",
                ts(e.promised_by),
                ts(e.allocated_at),
            ),
        )
        _order(cur, e.order_id, sid)
    elif kind is Shipment.Joined:
        _order(cur, e.order_id, sid)
    elif kind is Shipment.InWave:
        cur.execute(
            "UPDATE shipment_view SET status = 'in_wave', wave_id = ? WHERE shipment_id = ?",
            (e.wave_id, sid),
        )
    elif kind is Shipment.Pulled and e.empty:
        _status(cur, e, "pulled")
    elif kind is Shipment.Tracked:
        status = {"delivered": "delivered", "failed": "failed"}.get(e.milestone, "in_transit")
        _status(cur, e, status)
    elif kind is Shipment.Delayed:
        cur.execute("UPDATE shipment_view SET delayed = 1 WHERE shipment_id = ?", (sid,))
    elif kind in _STATUS:
        _status(cur, e, _STATUS[kind])


def _order(cur: Any, order_id: str, sid: str) -> None:
    cur.execute(
        "INSERT INTO shipment_order (order_id, shipment_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (order_id, sid),
    )
    cur.execute("DELETE FROM unallocated_view WHERE order_id = ?", (order_id,))


def _wave(cur: Any, e: Any) -> None:
    wid = str(e.originator_id)
    if type(e) is Wave.Released:
        cur.execute(
            "INSERT INTO wave_view (wave_id, warehouse, zone, sequence, orders, units, trigger, "
            "released_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                wid,
                e.warehouse,
                e.zone,
                e.sequence,
                len(e.order_ids),
                sum(ln["qty"] for ln in e.pick_list),
                e.trigger,
                ts(e.released_at),
            ),
        )
    elif type(e) is Wave.Picked:
        cur.execute("UPDATE wave_view SET picked = picked + ? WHERE wave_id = ?", (e.qty, wid))
        cur.execute(
            "INSERT INTO pick_velocity (warehouse, sku, hour, picks) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (warehouse, sku, hour) DO UPDATE SET picks = pick_velocity.picks + 1",
            (e.warehouse, e.sku, ts(e.at)[:13]),
        )
    elif type(e) is Wave.Pulled:
        back = sum(ln["qty"] for ln in e.returned)
        cur.execute(
            "UPDATE wave_view SET units = units - ?, picked = picked - ?, orders = orders - 1 "
            "WHERE wave_id = ?",
            (e.units, back, wid),
        )


def _picker(cur: Any, e: Any) -> None:
    if type(e) is Picker.Registered:
        cur.execute(
            "INSERT INTO picker_view (picker) VALUES (?) ON CONFLICT DO NOTHING", (e.picker,)
        )
    elif type(e) is Picker.Scanned:
        cur.execute(
            "UPDATE picker_view SET picks = picks + 1, units = units + ?, last_at = ?, "
            "first_at = COALESCE(first_at, ?) WHERE picker = ?",
            (e.units, ts(e.at), ts(e.at), e.picker),
        )
    elif type(e) is Picker.ScanRefused:
        cur.execute("UPDATE picker_view SET refused = refused + 1 WHERE picker = ?", (e.picker,))


def apply(cur: Any, e: Any) -> None:
    if isinstance(e, Shipment.Event):
        _shipment(cur, e)
    elif isinstance(e, Wave.Event):
        _wave(cur, e)
    elif isinstance(e, Picker.Event):
        _picker(cur, e)
    elif type(e) is OrderFile.Unallocated:
        cur.execute(
            "INSERT INTO unallocated_view (order_id, reason, since) VALUES (?, ?, ?) "
            "ON CONFLICT (order_id) DO UPDATE SET reason = excluded.reason",
            (e.order_id, e.reason, ts(e.at)),
        )
    elif type(e) is OrderFile.Cancelled:
        cur.execute("DELETE FROM unallocated_view WHERE order_id = ?", (e.order_id,))


def projector(app: ServiceApplication, sql: SqlStore) -> Projector:
    return Projector("fulfilment", app, sql, SCHEMA, apply, DROP)


class FulfilmentQueries:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def due_delays(self, now: datetime) -> list[UUID]:
        """Shipments past their promised date, not delivered, not yet flagged."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT shipment_id FROM shipment_view WHERE delayed = 0 AND promised_by < ? "
                "AND status NOT IN ('delivered', 'pulled', 'reallocated') LIMIT 1000",
                (ts(now),),
            )
            return [UUID(row[0]) for row in cur.fetchall()]

    def unallocated(self, limit: int = 500) -> list[str]:
        with self.sql.transaction(write=False) as cur:
            cur.execute("SELECT order_id FROM unallocated_view ORDER BY since LIMIT ?", (limit,))
            return [row[0] for row in cur.fetchall()]

    def shipments_of(self, order_id: str) -> list[UUID]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT shipment_id FROM shipment_order WHERE order_id = ? ORDER BY shipment_id",
                (order_id,),
            )
            return [UUID(row[0]) for row in cur.fetchall()]

    def waves(
        self, status: str | None, warehouse: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if warehouse:
            where.append("warehouse = ?")
            params.append(warehouse)
        condition = _WAVE_STATUS.get(status or "")
        if condition:
            where.append(condition)
        clause = " WHERE " + " AND ".join(where) if where else ""  # constants only
        columns = "wave_id, warehouse, zone, sequence, orders, units, picked, trigger, released_at"
        order = "ORDER BY released_at DESC, wave_id LIMIT ? OFFSET ?"
        sql = f"SELECT {columns} FROM wave_view{clause} {order}"  # noqa: S608
        with self.sql.transaction(write=False) as cur:
            cur.execute(sql, (*params, limit, offset))
            rows = cur.fetchall()
        keys = (
            "wave_id",
            "warehouse",
            "zone",
            "sequence",
            "orders",
            "units",
            "picked",
            "trigger",
            "released_at",
        )
        waves = [dict(zip(keys, row, strict=True)) for row in rows]
        for wave in waves:
            wave["status"] = wave_status(wave["units"], wave["picked"])
        return waves

    def velocity(self, since: datetime, min_picks: int) -> dict[str, list[str]]:
        """Per warehouse, the SKUs picked at least `min_picks` times since `since` (by
        the hour), fastest first."""
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT warehouse, sku, SUM(picks) AS n FROM pick_velocity WHERE hour >= ? "
                "GROUP BY warehouse, sku HAVING SUM(picks) >= ? ORDER BY warehouse, n DESC, sku",
                (ts(since)[:13], min_picks),
            )
            rows = cur.fetchall()
        found: dict[str, list[str]] = {}
        for warehouse, sku, _ in rows:
            found.setdefault(warehouse, []).append(sku)
        return found

    def picker_stats(self) -> list[dict[str, Any]]:
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT picker, picks, units, refused, first_at, last_at FROM picker_view "
                "ORDER BY picker"
            )
            rows = cur.fetchall()
        stats = []
        for picker, picks, units, refused, first_at, last_at in rows:
            hours = _hours(first_at, last_at)
            scans = picks + refused
            stats.append(
                {
                    "picker": picker,
                    "picks": picks,
                    "units": units,
                    "refused_scans": refused,
                    "accuracy": round(picks / scans, 4) if scans else None,
                    "picks_per_hour": round(picks / hours, 1) if hours else None,
                    "first_pick_at": first_at,
                    "last_pick_at": last_at,
                }
            )
        return stats


def wave_status(units: int, picked: int) -> str:
    if units <= 0:
        return "cancelled"
    if picked >= units:
        return "picked"
    return "picking" if picked else "released"


_WAVE_STATUS = {
    "released": "picked = 0 AND units > 0",
    "picking": "picked > 0 AND picked < units",
    "picked": "units > 0 AND picked >= units",
    "cancelled": "units <= 0",
}


def _hours(first: str | None, last: str | None) -> float:
    """Hours between a picker's first and last pick; at least a minute, so a first pick
    does not make an infinite rate."""
    if not first or not last:
        return 0.0
    span = datetime.fromisoformat(last.replace("Z", "+00:00")) - datetime.fromisoformat(
        first.replace("Z", "+00:00")
    )
    return max(span.total_seconds(), 60.0) / 3600
