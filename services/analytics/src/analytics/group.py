"""The figures of the whole consumer group, whichever worker is asked.

Each worker keeps the figures of the partitions it holds (`EntityTable.recovered`
rebuilds them on every rebalance). The figures are sums, so the group's are the sum of
its workers': this worker's own, plus every other member's as it answers
`GET /figures/held` on the URL it gave faust's assignor (`canonical_url`, which the
worker sets to its API). A partition counted by two members at once (a rebalance under
way: one of them still shows what it is giving up) is taken from the first one only, and
the answer says which partitions it covers, so a partial view is never mistaken for the
whole. With one worker (the default) nothing is fetched: the worker's own figures are
the group's, as they change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from analytics.figures import Figures
from analytics.timeutil import day_of

log = logging.getLogger(__name__)


@dataclass
class Member:
    worker: str
    partitions: list[int]
    error: str | None = None


@dataclass
class GroupView:
    """The group's figures as one worker put them together."""

    figures: Figures
    partitions: int
    covered: set[int]
    newest_event_us: int | None
    members: list[Member] = field(default_factory=list)

    def newest_day(self) -> int | None:
        """The day of the newest event applied since the workers started or, before any,
        the newest day the figures hold (after a restart the figures are recovered from
        the table, but no event has been applied yet)."""
        if self.newest_event_us is not None:
            return day_of(self.newest_event_us)
        return self.figures.newest_day()

    @property
    def complete(self) -> bool:
        return self.covered == set(range(self.partitions))

    def coverage(self) -> dict[str, Any]:
        return {
            "partitions": sorted(self.covered),
            "of": self.partitions,
            "complete": self.complete,
            "workers": [
                {"worker": m.worker, "partitions": m.partitions}
                | ({"error": m.error} if m.error else {})
                for m in self.members
            ],
        }


def own_view(figures: Figures, partitions: int, me: str) -> GroupView:
    """One worker's figures as a view of their own: the partitions they count
    (`Figures.held`; None: every one) and their newest event."""
    held = set(range(partitions)) if figures.held is None else set(figures.held)
    return GroupView(figures, partitions, held, figures.newest_us, [Member(me, sorted(held))])


class GroupFigures:
    """Puts the group's figures together on request, at most once per `max_age_s`."""

    def __init__(
        self,
        own: Figures,
        me: str,
        partitions: int,
        members: Callable[[], Mapping[str, set[int]]],
        timeout_s: float = 2.0,
        max_age_s: float = 1.0,
    ) -> None:
        self.own, self.me, self.partitions, self.members = own, me, partitions, members
        self.timeout_s, self.max_age_s = timeout_s, max_age_s
        self._last: GroupView | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def others(self) -> dict[str, set[int]]:
        """The other members holding partitions of the entity table, by URL."""
        return {url: parts for url, parts in self.members().items() if url != self.me and parts}

    def mine(self) -> GroupView:
        return own_view(self.own, self.partitions, self.me)

    def latest(self) -> GroupView:
        """Without waiting: this worker's own figures when it is alone, otherwise the
        group's as last put together (for the metrics, read at scrape time)."""
        if not self.others() or self._last is None:
            return self.mine()
        return self._last

    async def refresh(self) -> None:
        """A timer's work: keep `latest()` no older than the timer's interval."""
        if self.others():
            await self.current()

    async def current(self) -> GroupView:
        if not self.others():
            return self.mine()
        async with self._lock:
            if self._last is None or time.monotonic() - self._at > self.max_age_s:
                self._last = await self._gather()
                self._at = time.monotonic()
            return self._last

    async def _gather(self) -> GroupView:
        others = self.others()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await asyncio.gather(
                *(self._held_by(session, url) for url in sorted(others)), return_exceptions=True
            )
        view = self.mine()
        figures = self.own.copy()
        newest = [view.newest_event_us] if view.newest_event_us is not None else []
        for url, answer in zip(sorted(others), answers, strict=True):
            if isinstance(answer, BaseException):
                reason = f"{type(answer).__name__}: {answer}".rstrip(": ")
                log.warning("analytics: the figures of %s are not in this view: %s", url, reason)
                view.members.append(Member(url, sorted(others[url]), reason))
                continue
            parts = set(answer["partitions"])
            if parts & view.covered:
                taken = sorted(parts & view.covered)
                reason = f"partitions {taken} are counted by another worker (a rebalance)"
                view.members.append(Member(url, sorted(parts), reason))
                continue
            figures.add_snapshot(answer["families"])
            view.covered |= parts
            view.members.append(Member(url, sorted(parts)))
            if answer.get("newest_event_us") is not None:
                newest.append(int(answer["newest_event_us"]))
        view.figures = figures
        view.newest_event_us = max(newest) if newest else None
        return view

    async def _held_by(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with session.get(f"{url.rstrip('/')}/figures/held") as response:
            if response.status != 200:
                raise RuntimeError(f"GET /figures/held answered {response.status}")
            found: dict[str, Any] = orjson.loads(await response.read())
            return found
