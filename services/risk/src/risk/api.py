"""HTTP API of the risk service: the exception queues with every order's reasons, the
operators' release / cancel / close, the blacklist, the statistics and the rules in
force. Thin routes over the application and read models."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from shopfloor_runtime.web import MAX_OFFSET, Body, Code, Day, ErrorTable, Text, error_responses

from risk.application import RiskApplication
from risk.domain import BlacklistEntry, Case, CaseNotFound, EntryNotFound, Refused, case_id
from risk.projection import RiskQueries

Kind = Literal["customer", "address", "device"]


class OperatorIn(Body):
    operator: Code
    comment: Text


class CancelIn(OperatorIn):
    fraud: bool = Field(True, description="counts towards the customer's automatic blacklisting")


class BlacklistIn(Body):
    kind: Kind
    value: Code = Field(
        description="customer id, address fingerprint (OrderPlaced.destination) or device id"
    )
    reason: Text
    added_by: Code


class ExceptionOut(BaseModel):
    exception_id: str
    order_id: str
    customer_id: str | None
    status: str
    queue: str | None
    level: str | None
    hold: bool
    assessments: int
    reasons: list[dict[str, Any]]
    opened_at: str | None
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, case: Case) -> ExceptionOut:
        return cls(
            exception_id=str(case.id),
            order_id=case.order_id,
            customer_id=case.placed["customer_id"] if case.placed else None,
            status=case.status,
            queue=case.queue,
            level=case.level,
            hold=case.hold,
            assessments=case.assessments,
            reasons=case.reasons,
            opened_at=case.opened_at.isoformat() if case.opened_at else None,
            history=[{**h, "at": h["at"].isoformat()} for h in case.history],
        )


class EntryOut(BaseModel):
    entry_id: str
    kind: str
    value: str
    reason: str
    added_by: str
    automatic: bool
    active: bool
    added_at: str

    @classmethod
    def of(cls, entry: BlacklistEntry) -> EntryOut:
        return cls(
            entry_id=str(entry.id),
            kind=entry.kind,
            value=entry.value,
            reason=entry.reason,
            added_by=entry.added_by,
            automatic=entry.automatic,
            active=entry.active,
            added_at=entry.added_at.isoformat(),
        )


def app(request: Request) -> RiskApplication:
    found: RiskApplication = request.app.state.risk
    return found


def queries(request: Request) -> RiskQueries:
    found: RiskQueries = request.app.state.queries
    return found


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/exceptions", responses=error_responses(422))
    def list_exceptions(
        request: Request,
        queue: Literal["front_line", "specialist"] | None = None,
        level: Literal["ordinary", "serious"] | None = None,
        status: Literal["open", "released", "cancelled", "closed"] | None = None,
        reason: Annotated[
            Code | None, Query(description='a rule id or its group ("velocity")')
        ] = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[dict[str, Any]]:
        """Flagged orders, newest first, each with every reason and the figures behind it."""
        return queries(request).exceptions(queue, level, status, reason, limit, offset)

    @api.get("/exceptions/counts")
    def counts(request: Request) -> dict[str, int]:
        """How many exceptions are in each status, and `held`: the open ones holding
        their order (from the projection: eventually current)."""
        return queries(request).counts()

    @api.get("/exceptions/stats", responses=error_responses(422))
    def stats(
        request: Request,
        since: Annotated[Day | None, Query(alias="from")] = None,
        until: Annotated[Day | None, Query(alias="to")] = None,
    ) -> dict[str, Any]:
        """Exceptions by reason, level and day (default: the last 30 days)."""
        today = app(request).clock.now().date()
        last = until or today
        first = since or date.fromordinal(last.toordinal() - 30)
        return queries(request).stats(first.isoformat(), last.isoformat())

    @api.get(
        "/exceptions/{exception_id}",
        response_model=ExceptionOut,
        responses=error_responses(404, 422),
    )
    def get_exception(exception_id: UUID, request: Request) -> ExceptionOut:
        """One exception: its reasons, level, queue, hold and what operators did."""
        return ExceptionOut.of(app(request).get_case(exception_id))

    @api.get(
        "/orders/{order_id}/assessment",
        response_model=ExceptionOut,
        responses=error_responses(404, 422),
    )
    def order_assessment(order_id: Code, request: Request) -> ExceptionOut:
        """The latest assessment of an order, flagged or not."""
        return ExceptionOut.of(app(request).get_case(case_id(order_id)))

    @api.post(
        "/exceptions/{exception_id}/release",
        response_model=ExceptionOut,
        responses=error_responses(404, 409, 422),
    )
    def release(exception_id: UUID, body: OperatorIn, request: Request) -> ExceptionOut:
        """Let a held order go on (the order service confirms or ships it)."""
        return ExceptionOut.of(app(request).release(exception_id, body.operator, body.comment))

    @api.post(
        "/exceptions/{exception_id}/cancel",
        response_model=ExceptionOut,
        responses=error_responses(404, 409, 422),
    )
    def cancel(exception_id: UUID, body: CancelIn, request: Request) -> ExceptionOut:
        """Cancel the order (the order service cancels it and its stock is freed)."""
        risk = app(request)
        return ExceptionOut.of(risk.cancel(exception_id, body.operator, body.comment, body.fraud))

    @api.post(
        "/exceptions/{exception_id}/close",
        response_model=ExceptionOut,
        responses=error_responses(404, 409, 422),
    )
    def close(exception_id: UUID, body: OperatorIn, request: Request) -> ExceptionOut:
        """Close an ordinary exception that holds nothing, after looking into it."""
        return ExceptionOut.of(app(request).close_case(exception_id, body.operator, body.comment))

    @api.post(
        "/blacklist",
        status_code=201,
        response_model=EntryOut,
        responses=error_responses(409, 422),
    )
    def add_to_blacklist(body: BlacklistIn, request: Request) -> EntryOut:
        """Blacklist a customer, an address (by fingerprint) or a device: their next orders
        are held."""
        entry = app(request).add_to_blacklist(body.kind, body.value, body.reason, body.added_by)
        return EntryOut.of(entry)

    @api.get("/blacklist", responses=error_responses(422))
    def list_blacklist(request: Request, active: bool | None = True) -> list[dict[str, Any]]:
        """Blacklist entries, who added each and why (active ones by default)."""
        return queries(request).blacklist(active)

    @api.delete(
        "/blacklist/{entry_id}",
        response_model=EntryOut,
        responses=error_responses(404, 409, 422),
    )
    def remove_from_blacklist(
        entry_id: UUID, request: Request, removed_by: Code, reason: Text
    ) -> EntryOut:
        """Remove an entry (kept in the history, with who removed it and why)."""
        return EntryOut.of(app(request).remove_from_blacklist(entry_id, removed_by, reason))

    @api.get("/rules")
    def rules(request: Request) -> dict[str, Any]:
        """The rules in force (the defaults, or the file RISK_RULES_FILE names)."""
        return app(request).rules.model_dump(mode="json")

    return api


ERRORS: ErrorTable = {CaseNotFound: 404, EntryNotFound: 404, Refused: 409}
