"""The only module that knows both risk's domain events and the contracts. The address
the rules read, the customer's order history and the stream processor's order lists
stay inside; reasons name fingerprints and ids, never a person. What operators typed
(a comment on an exception, the reason for a blacklist entry) may quote a customer, so it
stays inside too: the exception's history and `GET /blacklist` show it, the topic says
only that it was done by hand."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from shopfloor_contracts import risk as contract
from shopfloor_contracts.topics import RISK
from shopfloor_runtime.edge import on_topic

from risk.domain import BlacklistEntry, Case

COMMENT_KEPT = "by hand (the comment is in the exception's history)"
REASON_KEPT = "by hand (the reason is on the blacklist entry)"


def _assessed(e: Any) -> contract.OrderAssessed:
    flagged = bool(e.reasons)
    return contract.OrderAssessed(
        order_id=e.order_id,
        customer_id=e.customer_id,
        assessment=e.assessment,
        outcome="flagged" if flagged else "cleared",
        level=e.level,
        hold=e.hold,
        queue=e.queue if flagged else None,
        exception_id=str(e.originator_id) if flagged else None,
        reasons=[contract.Reason(**row) for row in e.reasons],
        assessed_at=e.at,
    )


def _case(e: Any) -> BaseModel | None:
    kind, case = type(e), str(e.originator_id)
    if kind is Case.Assessed:
        return _assessed(e)
    if kind is Case.Escalated:
        return contract.OrderEscalated(
            order_id=e.order_id,
            exception_id=case,
            from_queue=e.from_queue,
            to_queue=e.to_queue,
            reason=e.reason,
            escalated_at=e.at,
        )
    if kind is Case.Released:
        return contract.HoldReleased(
            order_id=e.order_id,
            exception_id=case,
            operator=e.operator,
            comment=COMMENT_KEPT,
            released_at=e.at,
        )
    if kind is Case.CancelRequested:
        return contract.OrderCancellationRequested(
            order_id=e.order_id,
            exception_id=case,
            operator=e.operator,
            comment=COMMENT_KEPT,
            fraud=e.fraud,
            requested_at=e.at,
        )
    if kind is Case.Closed:
        return contract.ExceptionClosed(
            order_id=e.order_id,
            exception_id=case,
            operator=e.operator,
            comment=COMMENT_KEPT,
            closed_at=e.at,
        )
    return None


def _entry(e: Any) -> BaseModel | None:
    kind, entry = type(e), str(e.originator_id)
    if kind in (BlacklistEntry.Added, BlacklistEntry.Readded):
        return contract.CustomerBlacklisted(
            entry_id=entry,
            kind=e.kind,
            value=e.value,
            reason=e.reason if e.automatic else REASON_KEPT,
            added_by=e.added_by,
            automatic=e.automatic,
            added_at=e.at,
        )
    if kind is BlacklistEntry.Removed:
        return contract.BlacklistEntryRemoved(
            entry_id=entry,
            kind=e.kind,
            value=e.value,
            removed_by=e.removed_by,
            reason=REASON_KEPT,
            removed_at=e.at,
        )
    return None


def to_contract(e: Any) -> tuple[str, BaseModel] | None:
    if isinstance(e, Case.Event):
        found = _case(e)
        return None if found is None else (e.order_id, found)
    if isinstance(e, BlacklistEntry.Event):
        found = _entry(e)
        return None if found is None else (str(e.originator_id), found)
    return None


to_outbound = on_topic(RISK.name, to_contract)
