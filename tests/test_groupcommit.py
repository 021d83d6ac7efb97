"""The group commit machinery on its own: answers reach their own callers, failures reach
every caller of their group, and a stop neither loses nor hangs a request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from shopfloor_runtime.groupcommit import GroupCommit, Stopped


def doubled(groups: list[int]):
    def apply(requests: Sequence[int]) -> list[int | Exception]:
        groups.append(len(requests))
        return [ValueError(f"odd {r}") if r % 7 == 0 else r * 2 for r in requests]

    return apply


async def test_every_caller_gets_its_own_answer_and_groups_form_under_load() -> None:
    groups: list[int] = []
    commit = GroupCommit("svc", "double", doubled(groups))
    outcomes = await asyncio.gather(
        *(commit.submit(n) for n in range(1, 301)), return_exceptions=True
    )
    commit.stop()
    for n, outcome in zip(range(1, 301), outcomes, strict=True):
        if n % 7 == 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"odd {n}"
        else:
            assert outcome == n * 2
    assert sum(groups) == 300 and max(groups) > 1


async def test_a_failing_group_fails_each_of_its_callers() -> None:
    def broken(requests: Sequence[int]) -> list[int]:
        raise OSError("database gone")

    def short(requests: Sequence[int]) -> list[int]:
        return list(requests)[1:]  # one answer missing

    for apply, error in ((broken, OSError), (short, RuntimeError)):
        commit = GroupCommit("svc", "bad", apply)
        outcomes = await asyncio.gather(
            *(commit.submit(n) for n in range(5)), return_exceptions=True
        )
        commit.stop()
        assert all(isinstance(o, error) for o in outcomes)


async def test_stop_applies_what_is_queued_and_refuses_what_comes_after() -> None:
    release = threading.Event()
    applied: list[int] = []

    def slow(requests: Sequence[int]) -> list[int]:
        release.wait(5)
        applied.extend(requests)
        return list(requests)

    commit = GroupCommit("svc", "slow", slow)
    waiting = [asyncio.ensure_future(commit.submit(n)) for n in range(10)]
    await asyncio.sleep(0.05)  # all queued; the first group is held in apply
    stopper = asyncio.get_running_loop().run_in_executor(None, commit.stop)
    await asyncio.sleep(0.05)
    with pytest.raises(Stopped):
        await commit.submit(99)
    release.set()
    await stopper
    assert await asyncio.gather(*waiting) == list(range(10))
    assert sorted(applied) == list(range(10))
