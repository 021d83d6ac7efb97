"""Which contract fields are personal data, and where they may appear: only in events on
topics marked private (`Topic.private`)."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

#: Field names that carry personal data, wherever they are nested. Deliberately broad:
#: a field that is not personal but has one of these names gets a clearer name
#: (`product_name`, not `name`).
PERSONAL_FIELDS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "recipient",
        "line1",
        "line2",
        "line3",
        "street",
        "house_number",
        "city",
        "postal_code",
        "zip",
        "phone",
        "mobile",
        "email",
        "ip_address",
        "birth_date",
        "subject",  # what people write: tickets' subjects and message bodies
        "body",
        "message",
    }
)


def personal_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the personal fields of a model, nested models included."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if name in PERSONAL_FIELDS:
            yield path
        for nested in _models_in(info.annotation):
            yield from personal_fields(nested, f"{path}.")


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models a field's type holds: `X`, `X | None`, `list[X]`, `dict[str, X]`..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)
