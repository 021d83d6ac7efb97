"""The analytics rules file is read again while the worker runs: a changed file is in
force at the next look, an unusable one leaves the rules in force (one log line), and a
worker never starts on an unusable one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from analytics.rules import AnalyticsRules
from shopfloor_runtime.rulesfile import RulesFileError, WatchedRules


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_changed_rules_file_is_in_force_at_the_next_look(tmp_path: Path) -> None:
    path, clock = tmp_path / "rules.toml", Clock()
    write(path, "[alerts]\nbacklog_percent = 20\n", 1_000_000_000)
    watched = WatchedRules(path, AnalyticsRules, check_s=2.0, clock=clock)
    assert watched.current().alerts.backlog_percent == 20

    write(path, "[alerts]\nbacklog_percent = 35\n", 2_000_000_000)
    clock.now = 1.0
    assert watched.current().alerts.backlog_percent == 20  # not looked at yet
    clock.now = 2.5
    assert watched.current().alerts.backlog_percent == 35


def test_an_unusable_rules_file_keeps_the_rules_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "rules.toml", Clock()
    write(path, "[alerts]\nbacklog_percent = 35\n", 1_000_000_000)
    watched = WatchedRules(path, AnalyticsRules, check_s=2.0, clock=clock)

    write(path, "[alerts]\nbacklog_percent = -1\n", 2_000_000_000)
    clock.now = 3.0
    with caplog.at_level(logging.ERROR):
        assert watched.current().alerts.backlog_percent == 35
    assert "rules not changed" in caplog.text
    assert "alerts.backlog_percent" in caplog.text

    write(path, "[alerts]\nbacklog_percent = 40\n", 3_000_000_000)
    clock.now = 6.0
    assert watched.current().alerts.backlog_percent == 40


def test_a_worker_never_starts_on_an_unusable_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[alerts\n", encoding="utf-8")
    with pytest.raises(RulesFileError, match="not valid TOML"):
        WatchedRules(path, AnalyticsRules)
