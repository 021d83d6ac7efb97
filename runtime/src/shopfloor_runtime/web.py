"""The HTTP edge every service shares: the request types (`Code`, `Text`, `Body`), the
endpoints every service exposes (/health, /ready, /metrics) and one error shape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, StringConstraints

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]

#: An identifier or code: SKUs, customers, warehouses, references.
Code = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$"
    ),
]
#: A short human text: a name, a reason, a street line.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo is a 422, not ignored)."""

    model_config = ConfigDict(extra="forbid")


def ops_router(service: str, checks: dict[str, ReadyCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "service": service}

    @router.get("/ready")
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


def install_error_handlers(app: FastAPI, table: ErrorTable) -> None:
    """Map domain errors to statuses; anything else is a 500 without a traceback."""
    for error_type, answer in table.items():
        status, body = (answer, None) if isinstance(answer, int) else answer
        app.add_exception_handler(error_type, _handler(status, body))

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, status_code=500)

    app.add_exception_handler(Exception, unexpected)


def _handler(
    status: int, body: ErrorBody | None
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        content = body(error) if body is not None else {"detail": str(error)}
        return JSONResponse(content, status_code=status)

    return handle
