"""Business rules from a TOML file over a pydantic model's defaults: what a service reads
its thresholds from, with one readable line for whatever is wrong with the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class RulesFileError(ValueError):
    """The rules file cannot be used; the message is one readable line."""


def load_rules_file(path: Path | None, model: type[M]) -> M:
    """The rules in `path` (any subset of `model`'s fields), or the defaults for None."""
    if path is None:
        return model()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesFileError(f"{path}: cannot read it ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise RulesFileError(f"{path}: not valid TOML ({error})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise RulesFileError(f"{path}: {where}: {first['msg']}{more}") from None
