"""Per-partition chains of producer positions.

A producer puts each key on a partition with Kafka's default murmur2 partitioner, and
stamps each message with the position of its previous message on that partition. A
consumer then knows exactly what comes next on a partition, whatever the offsets are.
"""

from __future__ import annotations

import json

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for this key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionChains:
    """Last position written per topic and partition."""

    def __init__(self, last: dict[str, dict[int, int]] | None = None) -> None:
        self.last: dict[str, dict[int, int]] = last or {}

    def link(self, topic: str, partition: int, position: int) -> int:
        """Record `position` on the partition; return the position before it (0 if none)."""
        chain = self.last.setdefault(topic, {})
        previous = chain.get(partition, 0)
        chain[partition] = position
        return previous

    def dumps(self) -> str:
        return json.dumps({t: {str(p): v for p, v in c.items()} for t, c in self.last.items()})

    @classmethod
    def loads(cls, text: str | None) -> PartitionChains:
        raw = json.loads(text) if text else {}
        return cls({t: {int(p): v for p, v in c.items()} for t, c in raw.items()})
