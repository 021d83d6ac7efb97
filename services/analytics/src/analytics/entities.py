"""The state analytics keeps per entity (an order, the shipments under one fulfilment
key or the scans of one wave, a SKU's receipts, a ticket): plain JSON, the value of one
faust table key. Every state carries its own watermark per topic (`w`: the highest
envelope position applied from that topic), so an event is applied to it at most once
however often it arrives: a redelivery, a re-publish, the replay after a SIGKILL. The
watermark and the state change travel in one changelog record, so no crash can
separate them.

Each field is set by the events of one topic, so the state does not depend on how
events of different topics interleave (an OrderAssessed before or after its
OrderPaid gives the same state)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from analytics.facts import Fact
from analytics.timeutil import day_of, parse_us

State = dict[str, Any]


class Unusable(ValueError):
    """A readable envelope whose payload lacks what the figures need."""


def apply(state: State | None, fact: Fact) -> State | None:
    """The entity's state after `fact`; None when the fact was applied before."""
    seen: dict[str, int] = (state or {}).get("w", {})
    if fact.position <= seen.get(fact.topic, 0):
        return None
    new: State = dict(state or {})
    try:
        REDUCERS[fact.event_type](new, fact.payload, fact)
    except (KeyError, TypeError, ValueError, InvalidOperation) as error:
        raise Unusable(f"{fact.event_type}: {type(error).__name__}: {error}") from None
    new["w"] = {**seen, fact.topic: fact.position}
    # the newest event time applied to it (any order of arrival gives the same): after
    # a restart, the figures' "now" is the newest of these (Figures.newest_us)
    new["at"] = max(new.get("at", 0), fact.occurred_us)
    return new


def cents(amount: object) -> int:
    """A money string ("19.90") as integer cents, exactly."""
    value = Decimal(str(amount)) * 100
    if value != value.to_integral_value():
        raise ValueError(f"not a money amount: {amount!r}")
    return int(value)


def _first(state: State, field: str, value: Any) -> None:
    if field not in state:
        state[field] = value


# -- orders.v1 and risk.v1 (kind "order") ---------------------------------------------------


def _placed(s: State, p: dict[str, Any], f: Fact) -> None:
    s["placed"] = parse_us(p["placed_at"])
    s["channel"] = str(p["channel"])
    s["customer"] = str(p["customer_id"])
    s["total"] = cents(p["total"])
    s["discount"] = cents(p.get("discount", "0"))
    s["lines"] = [[str(li["sku"]), int(li["qty"]), cents(li["unit_price"])] for li in p["lines"]]
    s["method"] = p.get("payment_method")


def _paid(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "paid", parse_us(p["paid_at"]))
    s["paid_cents"] = s.get("paid_cents", 0) + cents(p["amount"])


def _confirmed(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "confirmed", parse_us(p["confirmed_at"]))


def _shipped(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "shipped", parse_us(p["shipped_at"]))
    s["carrier"] = str(p["carrier"])


def _delivered(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "delivered", parse_us(p["delivered_at"]))


def _cancelled(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "cancelled", f.occurred_us)
    s["cancel_reason"] = str(p["reason"])


def _refunded(s: State, p: dict[str, Any], f: Fact) -> None:
    s["refunded"] = max(s.get("refunded", 0), cents(p["refunded_total"]))
    if str(p["refund_id"]).startswith("return:"):
        _first(s, "returned", f.occurred_us)


def _assessed(s: State, p: dict[str, Any], f: Fact) -> None:
    number = int(p["assessment"])
    if number <= s.get("assessment", 0):
        return  # an older picture arriving late
    s["assessment"] = number
    s["assessed"] = parse_us(p["assessed_at"])
    s["risk"] = [str(p["outcome"]), p.get("level"), sorted(str(r["rule"]) for r in p["reasons"])]


# -- fulfilment.v1 (kind "shipping": the shipments under one message key) ------------------


def _shipment(s: State, p: dict[str, Any], **more: Any) -> None:
    """One shipment of the key updated with the carrier, warehouse and promise every
    shipment event names, and `more`."""
    shipments = dict(s.get("shipments", {}))
    one = dict(shipments.get(str(p["shipment_id"]), {}))
    one.update(
        warehouse=str(p["warehouse"]),
        carrier=str(p["carrier"]),
        promised=parse_us(p["promised_by"]),
        **more,
    )
    shipments[str(p["shipment_id"])] = one
    s["shipments"] = shipments


def _allocated(s: State, p: dict[str, Any], f: Fact) -> None:
    _shipment(s, p)


def _dispatched(s: State, p: dict[str, Any], f: Fact) -> None:
    replacements = p.get("replaces", {})
    _shipment(
        s,
        p,
        dispatched=parse_us(p["dispatched_at"]),
        orders=len([o for o in p["order_ids"] if o not in replacements]),
    )


def _tally(s: State, field: str, at: int, wrong: bool) -> None:
    """One more right (or wrong) in `field`'s [right, wrong] pair for the day of `at`."""
    tally = dict(s.get(field, {}))
    day = str(day_of(at))
    pair = list(tally.get(day, (0, 0)))
    pair[int(wrong)] += 1
    tally[day] = pair
    s[field] = tally


def _packed(s: State, p: dict[str, Any], f: Fact) -> None:
    """A pack check passed (the shipment is then labelled and dispatched)."""
    _tally(s, "checks", parse_us(p["packed_at"]), wrong=False)


def _flagged(s: State, p: dict[str, Any], f: Fact) -> None:
    """A pack check failed: a wrong or missing item, or a wrong weight."""
    _tally(s, "checks", parse_us(p["at"]), wrong=True)


# -- fulfilment.v1, wave keys (kind "shipping" too: the scans of one wave) ---------------


def _picked(s: State, p: dict[str, Any], f: Fact) -> None:
    """An accepted scan. Fulfilment publishes one ItemPicked per pick-list line a scan
    filled, one after another in one transaction (the same picker, bin, SKU, serial and
    time), so an event that repeats the previous one's scan is the same scan, and is not
    counted again: picking accuracy counts scans, as fulfilment does, not lines."""
    at = parse_us(p["picked_at"])
    scan = [str(p["picker"]), str(p["bin"]), str(p["sku"]), p.get("serial"), at]
    if scan != s.get("scan"):
        _tally(s, "scans", at, wrong=False)
    s["scan"] = scan


def _scan_refused(s: State, p: dict[str, Any], f: Fact) -> None:
    _tally(s, "scans", parse_us(p["refused_at"]), wrong=True)
    s["scan"] = None


# -- inventory.v1 (kind "stock": one SKU's receipts) ---------------------------------------


def _received(s: State, p: dict[str, Any], f: Fact) -> None:
    qty = int(p["qty"])
    s["received"] = s.get("received", 0) + qty
    cost = p.get("unit_cost")
    if cost is not None:  # optional: receipts before costs were recorded have none
        s["costed"] = s.get("costed", 0) + qty
        s["cost"] = s.get("cost", 0) + qty * cents(cost)


# -- service-desk.v1 (kind "ticket") --------------------------------------------------------


def _opened(s: State, p: dict[str, Any], f: Fact) -> None:
    s["opened"] = parse_us(p["opened_at"])
    s["type"] = str(p["type"])
    s["channel"] = str(p["channel"])


def _answered(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "first_response_ms", round(float(p["first_response_s"]) * 1000))


def _resolved(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "resolved", parse_us(p["resolved_at"]))
    _first(s, "resolution_ms", round(float(p["resolution_s"]) * 1000))
    s["breached"] = bool(p["breached"])


def _rated(s: State, p: dict[str, Any], f: Fact) -> None:
    _first(s, "rating", int(p["score"]))  # once per ticket (the desk refuses a second)


REDUCERS: dict[str, Callable[[State, dict[str, Any], Fact], None]] = {
    "OrderPlaced": _placed,
    "OrderPaid": _paid,
    "OrderConfirmed": _confirmed,
    "OrderShipped": _shipped,
    "OrderDelivered": _delivered,
    "OrderCancelled": _cancelled,
    "RefundIssued": _refunded,
    "OrderAssessed": _assessed,
    "ShipmentAllocated": _allocated,
    "ShipmentDispatched": _dispatched,
    "ShipmentPacked": _packed,
    "ShipmentFlagged": _flagged,
    "ItemPicked": _picked,
    "ScanRefused": _scan_refused,
    "StockReceived": _received,
    "TicketOpened": _opened,
    "TicketAnswered": _answered,
    "TicketResolved": _resolved,
    "TicketRated": _rated,
}
