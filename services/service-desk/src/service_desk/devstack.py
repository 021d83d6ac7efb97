"""The service desk's part in the dev stack (`shopfloor run`): customers writing in on
every channel, agents answering, escalating and resolving through this service's API,
returns of delivered orders authorised and received; the ticket counts for the progress
line. Only the dev stack imports this module (entry point `shopfloor.devstack`).

- Every `Customers.every_s` a random customer writes (chat, email, phone or marketplace)
  about one of their orders (found through the order API) or about nothing in
  particular; now and then the same customer writes again about the same order and
  type, and is threaded into the open ticket.
- Agents look at the open tickets every `Agents.look_every_s`. They answer most tickets
  after `Agents.think_s` (some with a template, some asking the customer something, who
  answers a little later), leave a few chats unanswered (so their 90 s SLA passes and
  they escalate), escalate a few by hand, and resolve answered tickets; most resolved
  tickets get a rating.
- Every `Returns.every_s` a delivered order has one unit returned (damaged, wrong item,
  not as described, changed mind); the warehouse receives it `Returns.receive_after_s`
  later, mostly resellable.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from shopfloor_devstack.parts import Http, Part, Probe, World

CHANNELS = ("chat", "chat", "email", "email", "phone", "marketplace")
ABOUT_ORDERS = ("order_status", "delivery", "payment", "product", "complaint")
TEMPLATES = {"order_status": "where-is-my-order", "delivery": "delivery-failed"}
REASONS = ("damaged", "wrong_item", "not_as_described", "changed_mind")


@dataclass(frozen=True)
class Customers:
    every_s: float = 3.0
    about_an_order: float = 0.8
    again: float = 0.15  # the same customer writes again about the same thing
    first_after_s: float = 8.0


@dataclass(frozen=True)
class Agents:
    look_every_s: float = 2.0
    think_s: float = 20.0
    ignore_chat: float = 0.1  # chats nobody answers: their SLA passes, they escalate
    ask_back: float = 0.2  # answers that ask the customer something (the timer pauses)
    customer_answers_s: float = 15.0
    resolve_after_s: float = 30.0
    escalate: float = 0.05
    rate: float = 0.7


@dataclass(frozen=True)
class Returns:
    every_s: float = 20.0
    receive_after_s: float = 10.0
    resellable: float = 0.8


@dataclass
class Counts:
    contacts: int = 0
    threaded: int = 0
    answered: int = 0
    escalated: int = 0
    resolved: int = 0
    rated: int = 0
    returns: int = 0
    refused: int = 0
    received: int = 0


@dataclass
class Memory:
    """What the simulated people remember: which tickets they already handled."""

    ignored: set[str] = field(default_factory=set)
    asked: dict[str, float] = field(default_factory=dict)  # ticket -> when asked (loop time)
    returned: set[str] = field(default_factory=set)
    last: tuple[str, str | None, str] | None = None  # the last contact: customer, order, type


class DeskTraffic:
    """Customers at every channel, agents at the queues, returns at the warehouse."""

    preparing = ""

    def __init__(
        self,
        world: World,
        http: Http,
        customers: Customers | None = None,
        agents: Agents | None = None,
        returns: Returns | None = None,
    ) -> None:
        self.world, self.http = world, http
        self.customers, self.agents = customers or Customers(), agents or Agents()
        self.returns = returns or Returns()
        self.orders = (
            Http(http.client, world.urls["order"], http.failures) if "order" in world.urls else None
        )
        self.counts, self.memory = Counts(), Memory()
        self._rng = random.Random(world.seed)  # noqa: S311 - traffic, not secrets
        self._serial = itertools.count(1)

    @property
    def doing(self) -> str:
        return (
            f"a customer writing in every {self.customers.every_s:g}s, agents answering, "
            f"a return every {self.returns.every_s:g}s"
        )

    async def prepare(self) -> None:
        return None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._customers())
            group.create_task(self._agents())
            if self.orders is not None:
                group.create_task(self._returns())

    def progress(self) -> str:
        c = self.counts
        return (
            f"{c.contacts} contacts ({c.threaded} threaded), {c.answered} answered, "
            f"{c.escalated} escalated by hand, {c.resolved} resolved, {c.returns} returns"
        )

    def summary(self) -> str:
        c = self.counts
        return (
            f"service desk: {c.contacts} contacts ({c.threaded} threaded into open tickets), "
            f"{c.answered} answered, {c.escalated} escalated by hand, {c.resolved} resolved, "
            f"{c.rated} rated; {c.returns} returns asked ({c.refused} refused), "
            f"{c.received} received"
        )

    # -- customers ------------------------------------------------------------------------

    async def _customers(self) -> None:
        await asyncio.sleep(self.customers.first_after_s)
        while True:
            await self._contact()
            await asyncio.sleep(self.customers.every_s)

    async def _contact(self) -> None:
        if self.memory.last and self._rng.random() < self.customers.again:
            customer, order_id, kind = self.memory.last
        else:
            customer = self._rng.choice(self.world.customers)
            order_id = await self._an_order_of(customer)
            kind = self._rng.choice(ABOUT_ORDERS) if order_id else "other"
        n = next(self._serial)
        body = {
            "channel": self._rng.choice(CHANNELS),
            "customer_id": customer,
            "order_id": order_id,
            "type": kind,
            "subject": f"Question {n}",
            "message": f"Hello, I have a question about {order_id or 'my account'}.",
            "message_id": f"sim-{self.world.run_id}-{n}",
        }
        response = await self.http.send("POST", "/tickets", json=body)
        ticket = self.http.json("open a ticket", response)
        if ticket is None:
            return
        self.counts.contacts += 1
        self.counts.threaded += int(bool(ticket.get("threaded")))
        self.memory.last = (customer, order_id, kind)

    async def _an_order_of(self, customer: str) -> str | None:
        if self.orders is None or self._rng.random() > self.customers.about_an_order:
            return None
        found = await self.orders.call(
            "a customer's orders", "GET", "/orders", params={"customer": customer, "limit": 5}
        )
        return str(self._rng.choice(found)["order_id"]) if found else None

    # -- agents -----------------------------------------------------------------------------

    async def _agents(self) -> None:
        while True:
            await asyncio.sleep(self.agents.look_every_s)
            found = await self.http.call(
                "the open tickets", "GET", "/tickets", params={"status": "open", "limit": 200}
            )
            for ticket in found or []:
                await self._work(ticket)
            await self._customers_answer()

    async def _work(self, ticket: dict[str, Any]) -> None:
        tid, age = ticket["ticket_id"], _age(ticket["opened_at"])
        if tid in self.memory.ignored or age < self.agents.think_s:
            return
        if ticket["answered_at"] is None:
            if ticket["channel"] == "chat" and self._rng.random() < self.agents.ignore_chat:
                self.memory.ignored.add(tid)  # nobody picks it up: the SLA passes
                return
            await self._answer(ticket)
        elif _age(ticket["answered_at"]) >= self.agents.resolve_after_s:
            await self._resolve(ticket)

    async def _answer(self, ticket: dict[str, Any]) -> None:
        tid = ticket["ticket_id"]
        template = TEMPLATES.get(ticket["type"]) if ticket["order_id"] else None
        ask = self._rng.random() < self.agents.ask_back
        body: dict[str, Any] = {"author": "agent", "agent": self._agent(ticket)}
        if template:
            body["template_id"] = template
        else:
            body["body"] = "Thanks for writing, we are looking into it."
        if ask:
            body["waiting_for_customer"] = True
            body["body"] = "Could you send us a photo, please?"
        if await self._post(f"/tickets/{tid}/messages", body, "answer"):
            self.counts.answered += 1
            if ask:
                self.memory.asked[tid] = asyncio.get_running_loop().time()
        if self._rng.random() < self.agents.escalate:
            reason = {"agent": body["agent"], "reason": "the customer asks for a manager"}
            if await self._post(f"/tickets/{tid}/escalate", reason, "escalate"):
                self.counts.escalated += 1

    async def _resolve(self, ticket: dict[str, Any]) -> None:
        tid = ticket["ticket_id"]
        done = {"agent": self._agent(ticket), "note": "answered (simulated)"}
        if not await self._post(f"/tickets/{tid}/resolve", done, "resolve"):
            return
        self.counts.resolved += 1
        if self._rng.random() < self.agents.rate:
            score = {"score": self._rng.choice((3, 4, 4, 5, 5, 5))}
            if await self._post(f"/tickets/{tid}/satisfaction", score, "rate"):
                self.counts.rated += 1

    async def _customers_answer(self) -> None:
        now = asyncio.get_running_loop().time()
        for tid, asked in list(self.memory.asked.items()):
            if now - asked >= self.agents.customer_answers_s:
                del self.memory.asked[tid]
                reply = {"author": "customer", "body": "Here is the photo."}
                await self._post(f"/tickets/{tid}/messages", reply, "customer answer")

    def _agent(self, ticket: dict[str, Any]) -> str:
        return str(ticket.get("specialist") or f"agent-{ticket['queue']}")

    # -- returns ----------------------------------------------------------------------------

    async def _returns(self) -> None:
        assert self.orders is not None
        while True:
            await asyncio.sleep(self.returns.every_s)
            delivered = await self.orders.call(
                "delivered orders", "GET", "/orders", params={"status": "delivered", "limit": 50}
            )
            fresh = [o for o in delivered or [] if o["order_id"] not in self.memory.returned]
            if fresh:
                await self._return(self._rng.choice(fresh)["order_id"])

    async def _return(self, order_id: str) -> None:
        assert self.orders is not None
        self.memory.returned.add(order_id)
        order = await self.orders.call("an order", "GET", f"/orders/{order_id}")
        if order is None:
            return
        line = self._rng.choice(order["lines"])
        body = {
            "order_id": order_id,
            "lines": [{"sku": line["sku"], "qty": 1}],
            "reason": self._rng.choice(REASONS),
            "photos": [f"sim://photos/{order_id}/1.jpg"],
        }
        found = self.http.json(
            "ask for a return", await self.http.send("POST", "/returns", json=body)
        )
        if found is None:
            return
        self.counts.returns += 1
        if found["status"] != "authorized":
            self.counts.refused += 1
            return
        await asyncio.sleep(self.returns.receive_after_s)
        condition = "resellable" if self._rng.random() < self.returns.resellable else "damaged"
        receipt = {"lines": [{"sku": line["sku"], "qty": 1, "condition": condition}]}
        if await self._post(f"/returns/{found['return_id']}/receipt", receipt, "receive a return"):
            self.counts.received += 1

    async def _post(self, path: str, body: dict[str, Any], what: str) -> bool:
        response = await self.http.send("POST", path, json=body)
        if response is not None and response.status_code == 409:
            return False  # resolved or escalated meanwhile: not a failure
        return self.http.json(what, response) is not None


def _age(when: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()


async def ticket_counts(client: httpx.AsyncClient, url: str) -> str:
    """ "12 open, 3 waiting, 40 resolved; 5 breached, 6 escalated", from /tickets/counts."""
    response = await client.get(f"{url}/tickets/counts")
    response.raise_for_status()
    c = response.json()
    shown = [
        f"{c[s]} {w}"
        for s, w in (("open", "open"), ("waiting_customer", "waiting"), ("resolved", "resolved"))
        if c.get(s)
    ]
    if not shown:
        return "no tickets yet"
    return f"{', '.join(shown)}; {c.get('breached', 0)} breached, {c.get('escalated', 0)} escalated"


PART = Part(traffic=DeskTraffic, probe=Probe("tickets", ticket_counts))
