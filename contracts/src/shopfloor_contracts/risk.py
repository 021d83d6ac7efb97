"""Events on `risk.v1`, produced by the risk service, keyed by order id (blacklist events:
the entry id), and on `risk.velocity.v1`, the risk service's own stream-processor
output. Analysts read `risk.v1`: reasons name rules, counts and limits, and refer to
addresses and devices only by fingerprint or id, never by what identifies a person."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Strict

Level = Literal["ordinary", "serious"]
Queue = Literal["front_line", "specialist"]


class Reason(Strict):
    """One rule that fired, and the inputs that tripped it."""

    rule: str = Field(description='rule id, e.g. "velocity.address", "address.postcode"')
    level: Level
    detail: str = Field(
        description='for an operator: "5 orders in 10 min from address a1b2c3d4, limit 4"'
    )
    inputs: dict[str, str] = Field(
        default_factory=dict, description="the figures the rule compared, as strings"
    )


class OrderAssessed(Strict):
    """An order's risk picture, each time it changes (`assessment` counts up per order).
    `cleared`: no rule fires; `flagged`: the reasons, at the highest level among them.
    A serious flag holds the order until an operator releases or cancels it."""

    order_id: str
    customer_id: str
    assessment: int = Field(ge=1)
    outcome: Literal["cleared", "flagged"]
    level: Level | None = Field(None, description="None when cleared")
    hold: bool
    queue: Queue | None = Field(None, description="where the exception is worked")
    exception_id: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    assessed_at: AwareDatetime


class OrderEscalated(Strict):
    order_id: str
    exception_id: str
    from_queue: Queue
    to_queue: Queue
    reason: str
    escalated_at: AwareDatetime


class HoldReleased(Strict):
    """An operator released a held order: the order service lets it go on."""

    order_id: str
    exception_id: str
    operator: str
    comment: str = Field(
        description='always "by hand (the comment is in the exception\'s history)": an '
        "operator's words may quote a customer, so risk keeps them"
    )
    released_at: AwareDatetime


class OrderCancellationRequested(Strict):
    """An operator cancelled an exception order: the order service cancels it (its
    stock is released on the order's cancellation)."""

    order_id: str
    exception_id: str
    operator: str
    comment: str = Field(
        description='always "by hand (the comment is in the exception\'s history)": an '
        "operator's words may quote a customer, so risk keeps them"
    )
    fraud: bool = Field(description="counted towards the customer's automatic blacklisting")
    requested_at: AwareDatetime


class ExceptionClosed(Strict):
    """An ordinary (front-line) exception worked without a hold: closed by an operator."""

    order_id: str
    exception_id: str
    operator: str
    comment: str = Field(
        description='always "by hand (the comment is in the exception\'s history)": an '
        "operator's words may quote a customer, so risk keeps them"
    )
    closed_at: AwareDatetime


class CustomerBlacklisted(Strict):
    """A blacklist entry: a customer, an address (by the order service's fingerprint) or
    a device; by an operator or automatically after repeated fraud cancellations."""

    entry_id: str
    kind: Literal["customer", "address", "device"]
    value: str
    reason: str = Field(
        description="the rule's words for an automatic entry; an operator's entry reads "
        '"by hand (the reason is on the blacklist entry)" (GET /blacklist has the words)'
    )
    added_by: str
    automatic: bool
    added_at: AwareDatetime


class BlacklistEntryRemoved(Strict):
    entry_id: str
    kind: Literal["customer", "address", "device"]
    value: str
    removed_by: str
    reason: str = Field(description='"by hand (the reason is on the blacklist entry)"')
    removed_at: AwareDatetime


# -- risk.velocity.v1: what the stream processor counted ------------------------------


class WindowCount(Strict):
    """Distinct orders of one key within the window ending at an order's placement."""

    dimension: Literal["customer", "address", "device"]
    key: str = Field(description="customer id, address fingerprint or device id")
    window_s: int = Field(gt=0)
    count: int = Field(
        ge=1,
        description="distinct orders placed in (placed_at - window, "
        "placed_at], ties by order id, this order included",
    )
    order_ids: list[str] = Field(description="those orders, oldest first (at most 20)")


class VelocityObserved(Strict):
    """Written by the risk service's faust worker for every OrderPlaced, and again for an
    order whose counts changed because an earlier-placed order arrived late. The same
    order's counts are the same however often the stream is re-read: a consumer keeps
    the latest per order and ignores repeats."""

    order_id: str
    customer_id: str
    placed_at: AwareDatetime
    counts: list[WindowCount]
