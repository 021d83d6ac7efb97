"""Group commit: requests from many concurrent callers applied by one thread in groups.

A thread per request that saves its own transaction spends most of its time waiting:
for the event store's table lock, and, in CPython, for the interpreter lock after each
round trip to the database. One writer thread that takes everything queued while it was
busy and saves it in one transaction does the same work with a fraction of the
transactions, and a group grows by itself when load rises (no timer, no added latency
when idle).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Histogram

R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger(__name__)

GROUP_SIZE = Histogram(
    "shopfloor_group_commit_size",
    "Requests saved together in one transaction",
    ["service", "name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)

_STOP = object()


class Stopped(RuntimeError):
    """The service is shutting down; the request was not applied."""


class GroupCommit(Generic[R, T]):
    """`apply` gets a group of requests and returns, in order, a result or an exception
    for each; it runs on one thread only, so it never races with itself."""

    def __init__(
        self,
        service: str,
        name: str,
        apply: Callable[[Sequence[R]], Sequence[T | Exception]],
        max_group: int = 256,
    ) -> None:
        self.service, self.name, self.apply, self.max_group = service, name, apply, max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    async def submit(self, request: R) -> T:
        """Queue the request and wait for its result (or its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:  # with stop()'s: nothing is queued behind the stop marker
            if self._stopped:
                raise Stopped(f"{self.service} is stopping")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"{self.service}-{self.name}", daemon=True
                )
                self._thread.start()
            self._queue.put((request, loop, future))
        return await future

    def stop(self, timeout: float = 30.0) -> None:
        """Apply what is queued, then stop; later submits fail with `Stopped`."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop_after = False
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                group.append(item)
            self._apply(group)  # type: ignore[arg-type]
            if stop_after:
                return

    def _apply(self, group: list[tuple[R, asyncio.AbstractEventLoop, asyncio.Future[T]]]) -> None:
        GROUP_SIZE.labels(self.service, self.name).observe(len(group))
        try:
            outcomes: Sequence[T | Exception] = self.apply([request for request, _, _ in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"{self.name}: {len(outcomes)} results for {len(group)}")
        except Exception as error:  # noqa: BLE001 - every caller of the group hears of it
            log.exception("%s %s: a group of %d failed", self.service, self.name, len(group))
            outcomes = [error] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[T], object]]] = {}
        for (_, loop, future), outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():  # one wake-up per event loop, not per request
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                continue


def _settle(settled: list[tuple[asyncio.Future[T], object]]) -> None:
    for future, outcome in settled:
        if future.done():  # the caller gave up (its request was cancelled)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]
