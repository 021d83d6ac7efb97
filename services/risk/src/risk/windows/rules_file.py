"""The rules as the velocity worker uses them: RISK_RULES_FILE read again whenever its
mtime changes (looked at no more often than every `check_s`). An unusable file is logged
in one line and the rules in force stay, so a typo never resets the windows to the
defaults; at start the worker runs on the defaults until the file is mended (the risk
service itself refuses to start on it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from shopfloor_runtime.rulesfile import WatchedRules

from risk.rules import RiskRules


class RulesFile(WatchedRules[RiskRules]):
    def __init__(
        self,
        path: Path | None,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(path, RiskRules, check_s, clock, strict=False)
