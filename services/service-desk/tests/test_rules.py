"""The desk's rules file: any subset over the defaults; an invalid file is refused with
one readable line; the rules must stay complete (a catch-all route, a standard per
return reason, templates with known placeholders)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from service_desk.bootstrap import DeskService
from service_desk.rules import RulesFileError, load_rules


def write(tmp_path, text):
    path = tmp_path / "desk.toml"
    path.write_text(text)
    return path


TIERS = '[tiers]\nvip_spend = "300"\nvip_orders = 3\nwindow_days = 30\n'


@pytest.fixture
def service(make_service, tmp_path):
    """The desk started on a rules file with its own VIP thresholds."""
    return make_service(DeskService, rules_file=write(tmp_path, TIERS))


def test_a_subset_overrides_the_defaults(tmp_path):
    rules = load_rules(write(tmp_path, "[sla]\nfirst_response_s = { chat = 30 }\n"))
    assert rules.sla.first_response("chat", "new") == 30
    assert rules.sla.resolution("delivery", "vip") == 12 * 3600  # defaults kept, VIP half
    assert rules.route("delivery", "new").queue == "logistics"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[sla]\nfirst_response_s = { pigeon = 5 }\n",
            "sla: Value error, first_response_s: unknown ['pigeon']",
        ),
        (
            '[[routes]]\ntype = "delivery"\nqueue = "logistics"\n',
            "the last route must match any ticket",
        ),
        (
            "return_window_days = -1\n",
            "return_window_days: Input should be greater than or equal to 0",
        ),
        (
            '[[templates]]\nid = "x"\ntype = "other"\ntitle = "t"\ntext = "{secret}"\n',
            "unknown placeholders ['secret']",
        ),
        ("sla = [", "not valid TOML"),
    ],
)
def test_an_invalid_file_is_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(RulesFileError) as refused:
        load_rules(write(tmp_path, text))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_vip_thresholds_come_from_the_rules_file(service, service_feed, client, clock):
    feed = service_feed

    def tier_and_queue(customer):
        body = {
            "channel": "chat",
            "customer_id": customer,
            "type": "order_status",
            "subject": "Where is it?",
            "message": "Hello?",
        }
        ticket = client.post("/tickets", json=body).json()
        return ticket["tier"], ticket["queue"]

    lapsed = feed.paid(feed.placed(feed.order(lines={"CAM-1": (1, "400.00")}))).customer_id
    clock.advance(timedelta(days=31))  # outside the file's 30 days, inside the default 365
    spender = feed.paid(feed.placed(feed.order(lines={"CAM-1": (1, "300.00")}))).customer_id
    short = feed.paid(feed.placed(feed.order(lines={"CAM-1": (1, "299.99")}))).customer_id
    frequent = feed.paid(feed.placed(feed.order())).customer_id  # 50.00 each
    for _ in range(2):
        feed.paid(feed.placed(feed.order(frequent)))
    assert tier_and_queue(spender) == ("vip", "vip")  # the default: 1,000
    assert tier_and_queue(frequent) == ("vip", "vip")  # the default: 10 orders
    assert tier_and_queue(short) == ("new", "front-desk")
    assert tier_and_queue(lapsed) == ("new", "front-desk")
    assert client.get("/rules").json()["tiers"] == {
        "vip_spend": "300",
        "vip_orders": 3,
        "window_days": 30,
    }
