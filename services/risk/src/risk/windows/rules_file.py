"""The rules as the worker uses them: read from RISK_RULES_FILE again whenever its mtime
changes (looked at no more often than every `check_s`). An unusable file is logged in one
line and the rules in force stay, so a typo never resets the windows to the defaults."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from risk.rules import RiskRules, RulesFileError, load_rules

log = logging.getLogger(__name__)


class RulesFile:
    def __init__(
        self,
        path: Path | None,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path, self.check_s, self.clock = path, check_s, clock
        self.rules = RiskRules()
        self._mtime: int | None = -1  # never a real mtime: the first look always loads
        self._checked_at: float | None = None
        self.current()

    def current(self) -> RiskRules:
        """The rules in force, reloaded first if the file changed."""
        now = self.clock()
        if self.path is None or (
            self._checked_at is not None and now - self._checked_at < self.check_s
        ):
            return self.rules
        self._checked_at = now
        mtime = self._mtime_now(self.path)
        if mtime != self._mtime:
            self._mtime = mtime
            self._reload(self.path)
        return self.rules

    def _reload(self, path: Path) -> None:
        try:
            self.rules = load_rules(path)
        except RulesFileError as error:
            log.error("rules not changed: %s", error)
            return
        velocity = self.rules.velocity
        log.info(
            "rules loaded from %s: windows customer %ss, address %ss, device %ss",
            path,
            velocity.customer.window_s,
            velocity.address.window_s,
            velocity.device.window_s,
        )

    @staticmethod
    def _mtime_now(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None  # load_rules says why, in one line
