"""Every service desk aggregate driven through its life on cache copies (a copy must never
share state it changes with the original: shopfloor_runtime.aggregates), and rebuilt
from its events to the same state. A seeded random walk for tickets."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from service_desk.domain import (
    Customer,
    OrderRecord,
    Refused,
    Return,
    Thread,
    Ticket,
)
from service_desk.rules import DeskRules
from shopfloor_runtime.aggregates import copy_isolates
from shopfloor_runtime.errors import RuleBroken

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = DeskRules()


def same_after_replay(aggregate: Any) -> None:
    copy = None
    for domain_event in aggregate.collect_events():
        copy = domain_event.mutate(copy)
    assert copy is not None
    assert copy.__dict__ == {**aggregate.__dict__, "_pending_events": []}


def new_ticket(at: datetime = NOW) -> Ticket:
    return Ticket(
        ticket=uuid4(),
        thread=uuid4(),
        channel="chat",
        kind="complaint",
        customer_id="c-1",
        order_id="o-1",
        tier="new",
        queue="complaints",
        route="type complaint -> complaints",
        subject="broken",
        source=None,
        first_response_due=at + timedelta(seconds=90),
        resolution_due=at + timedelta(hours=48),
        at=at,
    )


@pytest.mark.parametrize("seed", range(12))
def test_a_ticket_walked_at_random_on_copies_keeps_its_rules(seed):
    rng = random.Random(seed)
    ticket, now = new_ticket(), NOW
    for n in range(60):
        now += timedelta(seconds=rng.choice((5, 30, 120, 3600, 20_000)))
        choice = rng.random()

        def act(t: Ticket, n: int = n, choice: float = choice, now: datetime = now) -> None:
            with contextlib.suppress(Refused):
                if choice < 0.25:
                    t.customer_wrote(f"m-{n % 7}", f"message {n}", now)
                elif choice < 0.5:
                    t.agent_replied(None, "ana", f"answer {n}", None, rng.random() < 0.4, now)
                elif choice < 0.6:
                    t.note(f"event-{n % 5}", "something happened", now)
                elif choice < 0.7:
                    t.escalate("by hand", False, "ana", RULES, now)
                elif choice < 0.8:
                    t.miss_deadlines(RULES, now)
                elif choice < 0.85:
                    t.reroute(rng.choice(("vip", "complaints")), "wrong queue", "ana", now)
                elif choice < 0.92:
                    t.resolve("ana", "done", now)
                else:
                    with contextlib.suppress(RuleBroken):
                        t.rate(rng.randint(0, 6), now)

        before_level = ticket.level
        ticket = copy_isolates(ticket, act)
        assert ["ordinary", "difficult", "extreme"].index(ticket.level) >= [
            "ordinary",
            "difficult",
            "extreme",
        ].index(before_level)  # levels only go up
        assert len(ticket.seen) == len(set(ticket.seen))  # a message id or source taken once
        if ticket.status == "resolved":
            assert ticket.next_due() is None
        if ticket.answered_at is not None:
            assert ticket.first_agent == "ana"
    same_after_replay(ticket)


def test_the_small_aggregates_on_copies():
    thread = Thread("c-1", "o-1", "delivery")
    for act in (
        lambda t: t.take_in("delayed:s1"),
        lambda t: t.opened(t.next_ticket()),
        lambda t: t.take_in("delayed:s1"),
        lambda t: t.closed(uuid4()),  # not its open ticket: nothing
    ):
        thread = copy_isolates(thread, act)
    assert thread.sources == ["delayed:s1"] and thread.open_ticket and thread.tickets == 1
    same_after_replay(thread)

    customer = Customer("c-1")
    for act in (
        lambda c: c.placed("o-1", NOW, Decimal("600.00")),
        lambda c: c.paid("o-1", True),
        lambda c: c.placed("o-2", NOW, Decimal("500.00")),
        lambda c: c.paid("o-2", True),
        lambda c: c.paid("o-2", False),
    ):
        customer = copy_isolates(customer, act)
    assert customer.tier(RULES, NOW) == "returning"
    same_after_replay(customer)

    record = OrderRecord("o-1")
    for act in (
        lambda r: r.defer({"kind": "delivery", "source": "x", "text": "late"}),
        lambda r: r.record_placed("c-1", {"TEE-M": [2, "20.00"]}, Decimal("40.00"), NOW),
        lambda r: r.record_paid(Decimal("40.00")),
        lambda r: r.record_shipped("DHL", "T1", {"TEE-M": "WH-BER"}),
        lambda r: r.record_delivered(NOW),
        lambda r: r.count_returned({"TEE-M": 1}),
        lambda r: r.record_refunded(Decimal("20.00")),
    ):
        record = copy_isolates(record, act)
    assert (record.refundable(), record.returned, record.deferred) == (
        Decimal("20.00"),
        {"TEE-M": 1},
        [],
    )
    same_after_replay(record)

    ret = Return(
        return_id=uuid4(),
        order_id="o-1",
        ticket="t-1",
        customer_id="c-1",
        lines={"TEE-M": 1},
        reason="damaged",
        photos=["p1"],
        resolution="reship",
        replacement_lines={"TEE-M": 1},
        at=NOW,
    )
    line = [{"sku": "TEE-M", "qty": 1, "condition": "resellable", "warehouse": "WH-BER"}]
    for act in (
        lambda r: r.authorize("damaged-in-transit", "full refund", NOW),
        lambda r: r.receive(line, Decimal("20.00"), NOW),
        lambda r: r.receive(line, Decimal("20.00"), NOW),  # a retry: nothing
    ):
        ret = copy_isolates(ret, act)
    assert (ret.status, ret.refund_amount) == ("received", "20.00")
    assert ret.replacement is not None
    same_after_replay(ret)
