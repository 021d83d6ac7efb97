"""The rules file is reloaded while the service runs: a valid change takes effect for the
next assessment, an invalid one is refused with one line in the log and the rules in
force stay; the case state (counts already received) is kept either way."""

from __future__ import annotations

import logging
import os

import pytest
from risk.bootstrap import RiskService


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "risk-rules.toml"
    path.write_text("[velocity.customer]\nlimit = 4\nwindow_s = 600\n")
    return path


@pytest.fixture
def service(make_service, rules_file):
    return make_service(RiskService, rules_file=rules_file)


def touch(path, text):
    path.write_text(text)
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))  # a visible change on any filesystem


def test_a_changed_rules_file_applies_to_the_next_assessment(service, service_feed, rules_file):
    order = service_feed.assessed_order()
    service_feed.velocity(order, "customer", 3)
    assert service_feed.rules(order) == []
    assert service.reload_rules() is False  # unchanged: nothing to do

    touch(rules_file, "[velocity.customer]\nlimit = 2\nwindow_s = 600\n")
    assert service.reload_rules() is True
    service_feed.velocity(order, "customer", 3)  # a repeat: the case is assessed again only
    assert service_feed.rules(order) == []  # when the picture changes
    later = service_feed.assessed_order(customer_id=order.customer_id)
    service_feed.velocity(later, "customer", 3)
    assert service_feed.rules(later) == ["velocity.customer"]
    assert service.app.rules.velocity.customer.limit == 2


def test_an_invalid_rules_file_is_refused_and_the_old_rules_stay(service, rules_file, caplog):
    touch(rules_file, "[velocity.customer]\nlimit = -1\n")
    with caplog.at_level(logging.ERROR):
        assert service.reload_rules() is False
    assert service.app.rules.velocity.customer.limit == 4
    [line] = [r.getMessage() for r in caplog.records if "risk rules" in r.getMessage()]
    assert "velocity.customer.limit" in line and "the old ones stay" in line
