"""The service desk's rules: SLA targets, tiers, routing, escalation, the return window,
compensation standards and reply templates. A TOML file named by
SERVICE_DESK_RULES_FILE overrides the defaults below (any subset); an invalid file stops
the service at start with one readable line."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from shopfloor_runtime.rulesfile import RulesFileError as RulesFileError
from shopfloor_runtime.rulesfile import load_rules_file

Channel = Literal["chat", "phone", "email", "marketplace", "system"]
TicketType = Literal[
    "order_status",
    "delivery",
    "return",
    "refund",
    "payment",
    "product",
    "complaint",
    "risk_hold",
    "other",
]
Tier = Literal["new", "returning", "vip"]
Level = Literal["ordinary", "difficult", "extreme"]
LEVELS: tuple[Level, ...] = ("ordinary", "difficult", "extreme")
ReturnReason = Literal["damaged", "wrong_item", "not_as_described", "changed_mind"]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: what a template may fill in from the ticket and its order
PLACEHOLDERS = frozenset(
    {"ticket_id", "customer_id", "order_id", "order_status", "carrier", "tracking_number"}
)


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


HOUR = 3600.0


class SlaRules(_Rules):
    first_response_s: dict[str, float] = Field(
        default_factory=lambda: {
            "chat": 90.0,
            "phone": 60.0,
            "email": 4 * HOUR,
            "marketplace": 4 * HOUR,
            "system": 1 * HOUR,
        },
        description="first-response target per channel",
    )
    resolution_s: dict[str, float] = Field(
        default_factory=lambda: {
            "order_status": 4 * HOUR,
            "delivery": 24 * HOUR,
            "return": 48 * HOUR,
            "refund": 24 * HOUR,
            "payment": 8 * HOUR,
            "product": 24 * HOUR,
            "complaint": 48 * HOUR,
            "risk_hold": 2 * HOUR,
            "other": 24 * HOUR,
        },
        description="resolution target per type (time waiting for the customer not counted)",
    )
    vip_factor: float = Field(
        0.5, gt=0, le=1, description="VIP targets are this fraction of the others"
    )

    @model_validator(mode="after")
    def _known_keys(self) -> SlaRules:
        for name, given, known in (
            ("first_response_s", self.first_response_s, Channel.__args__),  # type: ignore[attr-defined]
            ("resolution_s", self.resolution_s, TicketType.__args__),  # type: ignore[attr-defined]
        ):
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}, known are {sorted(known)}")
        return self

    def first_response(self, channel: str, tier: str) -> float:
        return self._scaled(self.first_response_s.get(channel, 4 * HOUR), tier)

    def resolution(self, kind: str, tier: str) -> float:
        return self._scaled(self.resolution_s.get(kind, 24 * HOUR), tier)

    def _scaled(self, seconds: float, tier: str) -> float:
        return seconds * self.vip_factor if tier == "vip" else seconds


class TierRules(_Rules):
    vip_spend: Decimal = Field(
        Decimal(1000), gt=0, description="paid over the window at least this: VIP"
    )
    vip_orders: int = Field(10, ge=1, description="... or at least this many paid orders")
    window_days: int = Field(365, ge=1, description="the window spend and orders count over")


class Route(_Rules):
    """Tickets matching every given condition go to `queue` (first match wins)."""

    type: TicketType | None = None
    tier: Tier | None = None
    queue: str = Field(min_length=1, max_length=60)

    def describe(self) -> str:
        parts = [f"{k} {v}" for k, v in (("type", self.type), ("tier", self.tier)) if v]
        return f"{' and '.join(parts) or 'any ticket'} -> {self.queue}"


def _routes() -> tuple[Route, ...]:
    return (
        Route(type="risk_hold", queue="risk-desk"),
        Route(tier="vip", queue="vip"),
        Route(type="delivery", queue="logistics"),
        Route(type="return", queue="after-sales"),
        Route(type="refund", queue="after-sales"),
        Route(type="payment", queue="billing"),
        Route(type="complaint", queue="complaints"),
        Route(queue="front-desk"),
    )


class EscalationRules(_Rules):
    difficult_queue: str = Field("escalations", description="where difficult tickets go")
    specialists: dict[str, str] = Field(
        default_factory=lambda: {
            "complaint": "mira.complaints",
            "risk_hold": "ravi.fraud",
            "delivery": "lena.logistics",
            "default": "sam.specialist",
        },
        description="the named specialist for an extreme ticket, by type ('default' else)",
    )

    def specialist(self, kind: str) -> str:
        return self.specialists.get(kind) or self.specialists.get("default", "specialist")


class Compensation(_Rules):
    """A published standard: the same case gets the same offer, whoever asks."""

    id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    reason: ReturnReason
    offer: str = Field(min_length=1, max_length=200)
    refund: bool = Field(description="received units are refunded at their price")
    refund_damaged: bool = Field(True, description="... also those that come back damaged")
    replacement: bool = Field(
        False, description="goods instead of money may be asked: a re-ship or an exchange"
    )


def _compensations() -> tuple[Compensation, ...]:
    return (
        Compensation(
            id="damaged-in-transit",
            reason="damaged",
            offer="re-ship or full refund, the customer's choice",
            refund=True,
            replacement=True,
        ),
        Compensation(
            id="wrong-item",
            reason="wrong_item",
            offer="the right item re-shipped, or a full refund",
            refund=True,
            replacement=True,
        ),
        Compensation(
            id="not-as-described",
            reason="not_as_described",
            offer="full refund",
            refund=True,
        ),
        Compensation(
            id="changed-mind",
            reason="changed_mind",
            offer="refund of the returned items in resellable condition, or an exchange",
            refund=True,
            refund_damaged=False,
            replacement=True,
        ),
    )


class LateDelivery(_Rules):
    """The published standard for a late parcel: delivered more than `after_days` after
    the promised date opens a delivery ticket with this offer, the same for everyone."""

    id: str = Field("late-2-days", pattern=r"^[a-z0-9-]{1,40}$")
    after_days: float = Field(2, gt=0)
    offer: str = Field("a 10.00 coupon for the next order", min_length=1, max_length=200)


class Template(_Rules):
    id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    type: TicketType
    title: str = Field(min_length=1, max_length=120)
    text: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _known_placeholders(self) -> Template:
        unknown = set(PLACEHOLDER.findall(self.text)) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"template {self.id}: unknown placeholders {sorted(unknown)}")
        return self

    def needs(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.text))


def _templates() -> tuple[Template, ...]:
    return (
        Template(
            id="where-is-my-order",
            type="order_status",
            title="Where is my order?",
            text="Your order {order_id} is {order_status}. It travels with {carrier}, "
            "tracking number {tracking_number}.",
        ),
        Template(
            id="delivery-failed",
            type="delivery",
            title="A delivery attempt failed",
            text="The carrier {carrier} could not deliver order {order_id} (tracking "
            "{tracking_number}). It will try again on the next working day.",
        ),
        Template(
            id="return-how-to",
            type="return",
            title="How do I return an item?",
            text="You can return items within 7 days of delivery. Tell us which items of "
            "order {order_id} and why; we send you a return label.",
        ),
        Template(
            id="refund-timing",
            type="refund",
            title="When do I get my money back?",
            text="Refunds for order {order_id} reach your account within 3-5 working days "
            "of the return arriving at our warehouse.",
        ),
        Template(
            id="payment-failed",
            type="payment",
            title="My payment was refused",
            text="The payment for order {order_id} was not accepted. You can pay again "
            "from your account within 30 minutes of placing the order.",
        ),
    )


class DeskRules(_Rules):
    sla: SlaRules = SlaRules()
    tiers: TierRules = TierRules()
    routes: tuple[Route, ...] = Field(default_factory=_routes)
    escalation: EscalationRules = EscalationRules()
    return_window_days: int = Field(7, ge=0, description="returns accepted after delivery")
    refund_ticket_over: Decimal = Field(
        Decimal(100), ge=0, description="a refund above this opens a ticket"
    )
    compensation: tuple[Compensation, ...] = Field(default_factory=_compensations)
    late_delivery: LateDelivery = LateDelivery()
    templates: tuple[Template, ...] = Field(default_factory=_templates)

    @model_validator(mode="after")
    def _complete(self) -> DeskRules:
        if not any(r.type is None and r.tier is None for r in self.routes):
            raise ValueError("routes: the last route must match any ticket (no type, no tier)")
        reasons = {c.reason for c in self.compensation}
        missing = set(ReturnReason.__args__) - reasons  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"compensation: no standard for {sorted(missing)}")
        return self

    def route(self, kind: str, tier: str) -> Route:
        return next(r for r in self.routes if r.type in (None, kind) and r.tier in (None, tier))

    def standard_for(self, reason: str) -> Compensation:
        return next(c for c in self.compensation if c.reason == reason)

    def template(self, template_id: str) -> Template | None:
        return next((t for t in self.templates if t.id == template_id), None)


def load_rules(path: Path | None) -> DeskRules:
    """The rules from a TOML file over the defaults (None: the defaults)."""
    return load_rules_file(path, DeskRules)
