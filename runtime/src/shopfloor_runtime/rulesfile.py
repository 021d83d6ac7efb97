"""Business rules from a TOML file over a pydantic model's defaults: what a service reads
its thresholds from, with one readable line for whatever is wrong with the file."""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


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


class WatchedRules(Generic[M]):
    """The rules in force from a file that may change while the service runs: read again
    whenever its mtime changes (looked at no more often than every `check_s`). A file
    that cannot be used is logged in one line and the rules in force stay. At start, an
    unusable file raises RulesFileError (a service must not start on a typo), or with
    `strict=False` is logged and the defaults hold until the file is mended."""

    def __init__(
        self,
        path: Path | None,
        model: type[M],
        check_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        strict: bool = True,
    ) -> None:
        self.path, self.model, self.check_s, self.clock = path, model, check_s, clock
        self._mtime = _mtime(path) if path is not None else None
        self._checked_at = clock()
        try:
            self.rules: M = load_rules_file(path, model)
        except RulesFileError as error:
            if strict:
                raise
            log.error("rules not loaded, the defaults hold: %s", error)
            self.rules = model()

    def current(self) -> M:
        """The rules in force, read again first if the file changed."""
        now = self.clock()
        if self.path is None or now - self._checked_at < self.check_s:
            return self.rules
        self._checked_at = now
        mtime = _mtime(self.path)
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self.rules = load_rules_file(self.path, self.model)
            except RulesFileError as error:
                log.error("rules not changed: %s", error)
            else:
                log.info("rules loaded again from %s", self.path)
        return self.rules


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None  # load_rules_file says why, in one line
