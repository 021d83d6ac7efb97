"""The HTTP edge every service shares: the request types (`Code`, `Text`, `Body`, bounded
`Whole` and `Amount`), the documented error answers and their one shape (`field_error`,
`rule_broken`, the error table), and the endpoints every service exposes (/health,
/ready, /metrics)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from starlette.exceptions import HTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]

#: An identifier or code: SKUs, customers, warehouses, references. Not stripped: what
#: the pattern refuses (" SKU-1") is refused, as the OpenAPI document says.
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
]
#: A short human text: a name, a reason, a street line.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _iso_day(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a day as YYYY-MM-DD")
    return value


#: A calendar day, written YYYY-MM-DD (pydantic alone would also read "0" as 1970-01-01).
Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}),
]


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo is a 422, not ignored)."""

    model_config = ConfigDict(extra="forbid")


def _json_integer(value: Any) -> Any:
    # pydantic's lax mode takes `true` and "5" for integers; the OpenAPI document says
    # integer, so what it refuses must be refused here too (2.0 is an integer in JSON).
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


#: A count in a request body: a JSON integer, nothing that merely converts to one.
Whole = Annotated[int, BeforeValidator(_json_integer)]

_DECIMAL = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
_MAX_AMOUNT = Decimal("9999999999.99")


def _json_amount(value: Any) -> Any:
    if isinstance(value, bool) or (
        isinstance(value, str) and re.fullmatch(_DECIMAL, value) is None
    ):
        raise ValueError('must be a decimal with at most 2 places, like 12.50 or "12.50"')
    return value


def _amount_schema(minimum: dict[str, int]) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", **minimum, "maximum": float(_MAX_AMOUNT), "multipleOf": 0.01},
            {"type": "string", "pattern": _DECIMAL},
        ]
    }


#: Money in a request: a JSON number or a decimal string, at most 2 places, at most
#: 9,999,999,999.99; the schema says exactly that (pydantic's own says less).
Amount = Annotated[
    Decimal,
    BeforeValidator(_json_amount),
    Field(ge=0, le=_MAX_AMOUNT, max_digits=12, decimal_places=2),
    WithJsonSchema(_amount_schema({"minimum": 0})),
]
#: Money that must be more than zero (a price, a refund).
PositiveAmount = Annotated[
    Decimal,
    BeforeValidator(_json_amount),
    Field(gt=0, le=_MAX_AMOUNT, max_digits=12, decimal_places=2),
    WithJsonSchema(_amount_schema({"exclusiveMinimum": 0})),
]


#: The largest offset a list endpoint takes: far beyond any page anyone reads, and
#: small enough for every database's integer (an unbounded one was a 500).
MAX_OFFSET = 1_000_000


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer: `detail` is a sentence, or one entry per field at fault
    (where, what is wrong, a machine-readable type); some errors add fields (`status`,
    `reason`)."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[FieldError]


_MEANINGS = {
    404: "not found",
    409: "refused in the current state",
    422: "invalid input or a broken business rule; `detail` names the field and why",
    503: "the service is stopping; try again",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route can give, for its `responses=` (OpenAPI)."""
    return {status: {"model": ErrorOut, "description": _MEANINGS[status]} for status in statuses}


def ops_router(service: str, checks: dict[str, ReadyCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "service": service}

    @router.get(
        "/ready",
        responses={503: {"description": "not ready: a check failed (the body names it)"}},
    )
    async def ready(response: Response) -> dict[str, object]:
        """Store and broker reachable: ready to take traffic."""
        results = await asyncio.gather(*(_safe(check) for check in checks.values()))
        status = dict(zip(checks, results, strict=True))
        if not all(results):
            response.status_code = 503
        return {"ready": all(results), "checks": status}

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _safe(check: ReadyCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), 5)
    except Exception:  # noqa: BLE001 - a failing check means not ready
        return False


#: How a domain error is answered: a status (body {"detail": the error's message}), or a
#: status and a function that shapes the body from the error.
ErrorBody = Callable[[Any], dict[str, Any]]
ErrorTable = Mapping[type[Exception], int | tuple[int, ErrorBody]]


def field_error(
    field: str, message: str, kind: str = "value_error", **extra: Any
) -> dict[str, Any]:
    """The body of a refusal that names the field it is about (dotted for nested ones), in
    the shape FastAPI gives its own validation errors, so clients read both alike."""
    where = ["body", *field.split(".")]
    return {"detail": [{"loc": where, "msg": message, "type": kind}], **extra}


def rule_broken(error: Any) -> dict[str, Any]:
    """The body for a `shopfloor_runtime.errors.RuleBroken`: the field and the reason."""
    return field_error(error.field, error.reason)


def install_error_handlers(app: FastAPI, table: ErrorTable) -> None:
    """Map domain errors to statuses; anything else is a 500 without a traceback."""
    for error_type, answer in table.items():
        status, body = (answer, None) if isinstance(answer, int) else answer
        app.add_exception_handler(error_type, _handler(status, body))
    app.add_exception_handler(HTTPException, _http_error)

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, status_code=500)

    app.add_exception_handler(Exception, unexpected)


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals, made to say what the OpenAPI document says: a body
    that is not even text is a 422 about the body (FastAPI says 400), and a 405 lists
    every method of the path (Starlette lists those of the first route it matched)."""
    assert isinstance(error, HTTPException)
    if error.status_code == 400:
        detail = [{"loc": ["body"], "msg": "the body is not UTF-8 JSON", "type": "json_invalid"}]
        return JSONResponse({"detail": detail}, status_code=422)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(_methods(request))
    if error.status_code in (204, 304):
        return Response(status_code=error.status_code, headers=headers)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)


def _methods(request: Request) -> list[str]:
    """The methods of the path template the request's path matched first (the one
    Starlette would route to): `/stock/receipts` is that path, not `/stock/{sku}`."""
    matched = list(_matching(request.app.router.routes, request.scope))
    first = matched[0][0] if matched else None
    return sorted({m for path, methods in matched if path == first for m in methods})


def _matching(routes: list[Any], scope: MutableMapping[str, Any]) -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            yield from _matching(included.routes, scope)
        elif route.matches({**scope, "method": "GET"})[0] != Match.NONE:
            yield route.path, set(getattr(route, "methods", None) or ())


def _handler(
    status: int, body: ErrorBody | None
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        content = body(error) if body is not None else {"detail": str(error)}
        return JSONResponse(content, status_code=status)

    return handle
