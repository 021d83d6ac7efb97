"""Durations as a mergeable quantile sketch: DDSketch's logarithmic mapping (the
`ddsketch` library, DataDog's maintained implementation) puts a duration into a bin
whose every value is within 1 % of the bin's representative, and a sketch is just the
count per bin. Chosen over a t-digest (fastdigest) because a DDSketch is a function of
the multiset of values alone: merging hours, days or workers, in any order or batching,
gives exactly the same bins, so three runs that saw the same events in different
batches report identical percentiles. Bin counts are integers and can also be taken
away (an order's contribution replaced when its state changes)."""

from __future__ import annotations

from collections.abc import Mapping

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
#: the bin of a zero duration (the mapping covers only values > 0)
ZERO_BIN = -(1 << 30)


def bin_of(ms: int) -> int:
    return ZERO_BIN if ms <= 0 else int(MAPPING.key(float(ms)))


def value_of(key: int) -> float:
    return 0.0 if key == ZERO_BIN else float(MAPPING.value(key))


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of the values counted in `bins`, within 1 %; None if none.
    The rank is that of DDSketch's own quantile: q * (n - 1), counted from the lowest."""
    total = sum(bins.values())
    if total <= 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for key in sorted(bins):
        seen += bins[key]
        if seen > rank:
            return value_of(key)
    return value_of(max(bins))
