"""Cheap, mechanical copies of aggregates for the repository's cache.

eventsourcing's aggregate cache hands out a deep copy of the cached aggregate for every
command and every consumed event, so a failed command cannot corrupt the cached one. A
full `copy.deepcopy` of a hot SKU (thousands of open reservations) was the consumer's
biggest cost, and a hand-written `__deepcopy__` silently breaks when a field is added.
`CheapCopy` copies by rule instead:

- every dict, list or set attribute is copied one level deep (its items are shared);
- attributes named in `deep_copies` are copied by the function given there (for state
  whose items are changed in place, e.g. per-warehouse counters);
- every other attribute is shared, so it must be immutable: `check_copyable` fails for
  one that is not, naming it, and `copy_isolates` shows that driving a copy leaves the
  original as it was. Aggregate tests run both over every field their random walks reach.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

_CONTAINERS = (dict, list, set)
_IMMUTABLE = (str, bytes, int, float, bool, Decimal, datetime, date, timedelta, UUID, type(None))
#: eventsourcing's own attributes: immutable values, except the pending events (copied).
_OWN = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}


class CheapCopy:
    """Mix into an Aggregate subclass (before `Aggregate`)."""

    #: attribute -> how to copy it, for containers whose items change in place
    deep_copies: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        twin = object.__new__(type(self))
        state = twin.__dict__
        for name, value in self.__dict__.items():
            if name in self.deep_copies:
                state[name] = self.deep_copies[name](value)
            elif isinstance(value, _CONTAINERS):
                state[name] = copy.copy(value)
            else:
                state[name] = value
        return twin


def check_copyable(aggregate: Any) -> None:
    """Raise TypeError naming the first attribute a cheap copy would share although it
    can change (neither a container, nor declared in `deep_copies`, nor immutable)."""
    deep = getattr(aggregate, "deep_copies", {})
    for name, value in vars(aggregate).items():
        if name in _OWN or name in deep or isinstance(value, _CONTAINERS):
            continue
        if not _immutable(value):
            raise TypeError(
                f"{type(aggregate).__name__}.{name} ({type(value).__name__}) is shared by "
                "copies but can change: make it immutable or declare it in deep_copies"
            )


def _immutable(value: Any) -> bool:
    if isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        frozen = type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]
        return bool(frozen) and all(
            _immutable(getattr(value, f.name)) for f in dataclasses.fields(value)
        )
    return False


def state_of(aggregate: Any) -> dict[str, Any]:
    """The aggregate's state as plain nested values (not through `__deepcopy__`), for
    comparing before and after."""
    return {name: _plain(value) for name, value in vars(aggregate).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return {_plain(item) for item in value}
    return value


def copy_isolates(aggregate: Any, act: Callable[[Any], object]) -> Any:
    """Copy the aggregate as the cache does, act on the copy, and fail (AssertionError,
    naming the fields) if the original changed; returns the copy."""
    check_copyable(aggregate)
    before = state_of(aggregate)
    twin = copy.deepcopy(aggregate)
    act(twin)
    after = state_of(aggregate)
    changed = sorted(name for name in before if before[name] != after.get(name))
    assert not changed, f"acting on a copy changed the original's {changed}"
    return twin
