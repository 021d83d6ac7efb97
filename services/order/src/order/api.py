"""HTTP API of the order service: thin routes over the application.

No `from __future__ import annotations` here: two bodies are models made when the
router is built (their schemas list the configured channels and payment methods), and
FastAPI must see those classes, not their names, in the route signatures."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, cast
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    JsonValue,
    StringConstraints,
    field_validator,
)
from shopfloor_runtime.groupcommit import GroupCommit, Stopped
from shopfloor_runtime.web import (
    MAX_OFFSET,
    Amount,
    Body,
    Code,
    ErrorTable,
    PositiveAmount,
    Text,
    Whole,
    error_responses,
    field_error,
    rule_broken,
)

from order.application import OrderApplication, PlacementRequest
from order.countries import COUNTRIES
from order.domain import (
    Address,
    IdempotencyConflict,
    IllegalTransition,
    InvalidOrder,
    Line,
    Order,
    OrderNotFound,
    OrderRules,
    PaymentConflict,
    PaymentRefused,
    Placement,
    PlacementResult,
    price,
)
from order.projection import OrderQueries

#: Coupon codes as configured (case does not matter: "welcome10" is WELCOME10).
Coupon = Annotated[str, StringConstraints(min_length=2, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
#: As people type them: digits, an optional leading +, spaces and ()./- between.
Phone = Annotated[
    str,
    StringConstraints(max_length=32, pattern=r"^\+?[0-9][0-9 ()./-]{3,30}$"),
]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@ \t\n\r]{1,64}@[^@ \t\n\r]+\.[^@ \t\n\r]+$"),
]
Status = Literal[
    "awaiting_payment",
    "on_hold",
    "paid",
    "confirmed",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "refunded",
]
ServiceLevel = Literal["standard", "express"]


class LineIn(Body):
    sku: Code
    qty: Whole = Field(gt=0, le=10_000)
    unit_price: PositiveAmount


class AddressIn(Body):
    name: Text
    line1: Text
    line2: Text | None = None
    city: Text
    postal_code: Annotated[
        str,
        StringConstraints(min_length=2, max_length=12, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$"),
    ]
    country: str = Field(
        description="ISO 3166-1 alpha-2, upper case, e.g. DE",
        json_schema_extra={"enum": list[JsonValue](sorted(COUNTRIES))},
    )
    phone: Phone | None = Field(None, description="the recipient's, for the carrier")

    @field_validator("country")
    @classmethod
    def known_country(cls, value: str) -> str:
        if value not in COUNTRIES:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (upper case)")
        return value


class PlaceOrderIn(Body):
    customer_id: Code
    channel: Code
    lines: list[LineIn] = Field(min_length=1, max_length=200)
    shipping_address: AddressIn
    coupon: Coupon | None = None
    payment_method: Code | None = None
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")
    customer_email: Email | None = Field(
        None, description="where the service desk reaches the customer (private topic only)"
    )
    service_level: ServiceLevel = Field("standard", description="the delivery promise chosen")
    device_id: Code | None = Field(
        None, description="the shop's opaque id of the buyer's device (risk's velocity rules)"
    )
    client_ip: IPvAnyAddress | None = Field(
        None,
        description="the buyer's IP address as the shop saw it (personal data: it travels "
        "only on the private topic, to risk)",
    )

    def placement(self) -> Placement:
        return Placement(
            customer_id=self.customer_id,
            channel=self.channel,
            lines=tuple(Line(ln.sku, ln.qty, ln.unit_price) for ln in self.lines),
            address=Address(**self.shipping_address.model_dump()),
            currency=self.currency,
            coupon=self.coupon,
            payment_method=self.payment_method,
            customer_email=self.customer_email,
            service_level=self.service_level,
            device_id=self.device_id,
            client_ip=None if self.client_ip is None else str(self.client_ip),
        )


class PaymentIn(Body):
    amount: Amount = Field(description="0.00 pays an order discounted to nothing")
    method: Code
    reference: Code = Field(description="the payment provider's id; repeats are idempotent")


class CancelIn(Body):
    reason: Literal["customer", "operator"] = "operator"
    detail: Annotated[str, StringConstraints(max_length=500)] = ""


class RefundIn(Body):
    amount: PositiveAmount
    reason: Text
    reference: Code | None = Field(
        None, description="repeats with the same reference are idempotent"
    )


class OrderOut(BaseModel):
    id: UUID
    status: Status
    customer_id: str
    channel: str
    lines: list[dict[str, Any]]
    currency: str
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    coupon: str | None
    payment_method: str | None
    shipping_address: dict[str, Any]
    customer_email: str | None
    service_level: ServiceLevel
    placed_at: datetime
    payment_reminder_at: datetime
    payment_due_at: datetime
    payment: dict[str, Any] | None
    required_checks: list[str]
    passed_checks: list[str]
    refunded_total: Decimal
    cancel_reason: str | None
    shipment: dict[str, Any] | None = Field(
        description="carrier, tracking number and when it left, once fulfilment shipped it"
    )
    delivered_at: datetime | None
    completes_at: datetime | None = Field(description="when the return window closes")
    hold: dict[str, Any] | None = Field(
        description="risk's hold while the order is on_hold: exception id, reason, since when"
    )
    version: int

    @classmethod
    def of(cls, order: Order, **extra: Any) -> Self:
        return cls(
            **extra,
            id=order.id,
            status=cast(Status, order.state),
            customer_id=order.customer_id,
            channel=order.channel,
            lines=order.lines,
            currency=order.currency,
            subtotal=order.subtotal,
            discount=order.discount,
            total=order.total,
            coupon=order.coupon,
            payment_method=order.payment_method,
            shipping_address=order.shipping_address,
            customer_email=getattr(order, "customer_email", None),
            service_level=cast(ServiceLevel, order.service_level),
            placed_at=order.placed_at,
            payment_reminder_at=order.payment_reminder_at,
            payment_due_at=order.payment_due_at,
            payment=order.payment,
            required_checks=order.required_checks,
            passed_checks=sorted(order.passed_checks),
            refunded_total=order.refunded_total,
            cancel_reason=order.cancel_reason,
            shipment=order.shipment,
            delivered_at=order.delivered_at,
            completes_at=order.completes_at,
            hold=order.held if order.state == "on_hold" else None,
            version=order.version,
        )


class PlacedOut(OrderOut):
    duplicate: bool
    notes: list[str]


class HistoryOut(BaseModel):
    event_type: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]


class OrderSummary(BaseModel):
    order_id: UUID
    customer_id: str
    channel: str
    status: Status
    total: Decimal
    currency: str
    placed_at: str
    updated_at: str


def with_choices(model: type[Body], **choices: frozenset[str]) -> type[Body]:
    """`model` with the configured values of some fields listed in its OpenAPI schema
    (channels and payment methods are settings, so the enum is made when the router is,
    not written here). The code still checks them, with the business rule's message."""

    def extra(schema: dict[str, Any]) -> None:
        for name, values in choices.items():
            prop = schema["properties"][name]
            target = next(o for o in prop.get("anyOf", [prop]) if o.get("type") == "string")
            target["enum"] = sorted(values)

    config = ConfigDict(**{**model.model_config, "json_schema_extra": extra})  # type: ignore[typeddict-item]
    return type(model.__name__, (model,), {"model_config": config, "__module__": __name__})


def _link(operation: str, **body: str) -> dict[str, Any]:
    link: dict[str, Any] = {
        "operationId": operation,
        "parameters": {"order_id": "$response.body#/id"},
    }
    if body:
        link["requestBody"] = body
    return link


def order_links(rules: OrderRules) -> dict[str, Any]:
    """Where an order's answer leads: what the stateful fuzzer walks, and what a reader of
    the document learns about an order's life (place, then pay, cancel, refund; fulfilment
    ships it, through its own topic, not through this API)."""
    method = sorted(rules.payment_methods)[0] if rules.payment_methods else "card"
    payment = {
        "amount": "$response.body#/total",
        "method": method,
        "reference": "{$response.body#/id}",
    }
    return {
        "links": {
            "GetOrder": _link("get_order"),
            "GetOrderHistory": _link("order_history"),
            "PayOrder": _link("pay_order", **payment),
            "CancelOrder": _link("cancel_order", reason="customer"),
            "RefundOrder": _link("refund_order", amount="$response.body#/total", reason="goodwill"),
        }
    }


def router(rules: OrderRules) -> APIRouter:
    api = APIRouter(tags=["orders"])
    place_in = with_choices(
        PlaceOrderIn, channel=rules.channels, payment_method=rules.payment_methods
    )
    payment_in = with_choices(PaymentIn, method=rules.payment_methods)
    links = order_links(rules)
    linked = {"responses": {"200": links}}

    def app(request: Request) -> OrderApplication:
        return request.app.state.orders  # type: ignore[no-any-return]

    @api.post(
        "/orders",
        status_code=201,
        response_model=PlacedOut,
        operation_id="place_order",
        responses={
            **error_responses(409, 422, 503),
            200: {"model": PlacedOut, "description": "a repeat: the first order"},
        },
        openapi_extra={"responses": {"201": links, "200": links}},
    )
    async def place_order(
        body: place_in,  # type: ignore[valid-type]
        request: Request,
        response: Response,
        idempotency_key: Annotated[Code | None, Header()] = None,
    ) -> PlacedOut:
        """Place an order; a repeated Idempotency-Key returns the first order."""
        placement = body.placement()  # type: ignore[attr-defined]
        pricing = price(placement, app(request).rules)  # a broken rule: 422, nothing queued
        placer: GroupCommit[PlacementRequest, PlacementResult] = request.app.state.placer
        result = await placer.submit(PlacementRequest(placement, pricing, idempotency_key))
        if result.duplicate:
            response.status_code = 200
        return PlacedOut.of(result.order, duplicate=result.duplicate, notes=result.notes)

    @api.post(
        "/orders/{order_id}/payments",
        response_model=OrderOut,
        operation_id="pay_order",
        responses=error_responses(404, 409, 422),
        openapi_extra=linked,
    )
    def pay_order(order_id: UUID, body: payment_in, request: Request) -> OrderOut:  # type: ignore[valid-type]
        """Record a payment result; the amount must equal the order total."""
        order = app(request).pay_order(order_id, body.amount, body.method, body.reference)  # type: ignore[attr-defined]
        return OrderOut.of(order)

    @api.post(
        "/orders/{order_id}/cancel",
        response_model=OrderOut,
        operation_id="cancel_order",
        responses=error_responses(404, 409, 422),
        openapi_extra=linked,
    )
    def cancel_order(order_id: UUID, body: CancelIn, request: Request) -> OrderOut:
        """Cancel an order that has not shipped; a paid order is refunded in full."""
        detail = body.detail or f"cancelled by {body.reason}"
        return OrderOut.of(app(request).cancel_order(order_id, body.reason, detail))

    @api.post(
        "/orders/{order_id}/refunds",
        response_model=OrderOut,
        operation_id="refund_order",
        responses=error_responses(404, 409, 422),
        openapi_extra=linked,
    )
    def refund_order(order_id: UUID, body: RefundIn, request: Request) -> OrderOut:
        """Refund part or all of what was paid, never more."""
        order = app(request).refund_order(order_id, body.amount, body.reason, body.reference)
        return OrderOut.of(order)

    @api.get("/orders/counts", response_model=dict[Status, int], operation_id="count_orders")
    def count_orders(request: Request) -> dict[str, int]:
        """How many orders are in each status (from the order_view projection)."""
        queries: OrderQueries = request.app.state.queries
        return queries.counts()

    @api.get(
        "/orders/{order_id}",
        response_model=OrderOut,
        operation_id="get_order",
        responses=error_responses(404, 422),
        openapi_extra=linked,
    )
    def get_order(order_id: UUID, request: Request) -> OrderOut:
        """The order as it is now."""
        return OrderOut.of(app(request).get_order(order_id))

    @api.get(
        "/orders/{order_id}/history",
        response_model=list[HistoryOut],
        operation_id="order_history",
        responses=error_responses(404, 422),
    )
    def order_history(order_id: UUID, request: Request) -> list[HistoryOut]:
        """Every event of the order's story, in order."""
        return [HistoryOut(**vars(e)) for e in app(request).order_history(order_id)]

    @api.get(
        "/orders",
        response_model=list[OrderSummary],
        operation_id="list_orders",
        responses=error_responses(422),
    )
    def list_orders(
        request: Request,
        status: Status | None = None,
        customer: Code | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[OrderSummary]:
        """Orders by status and customer, newest first (a projection: eventually current)."""
        queries: OrderQueries = request.app.state.queries
        rows = queries.list_orders(status, customer, limit, offset)
        return [OrderSummary(**row) for row in rows]

    return api


def _refused(error: PaymentRefused) -> dict[str, Any]:
    kind = f"payment_refused.{error.reason}"
    return field_error(error.field, error.detail, kind, reason=error.reason)


ERRORS: ErrorTable = {
    InvalidOrder: (422, rule_broken),
    PaymentRefused: (422, _refused),
    PaymentConflict: (409, _refused),
    OrderNotFound: 404,
    IllegalTransition: (409, lambda e: {"detail": str(e), "status": e.status}),
    IdempotencyConflict: 409,
    Stopped: 503,
}
