"""Partition choice compatible with Kafka's Java producer and Rill's TypeScript client
(clients/ts/src/producer/partitioner.ts): a keyed record goes to
``to_positive(murmur2(key)) % num_partitions`` with Kafka's 32-bit murmur2 variant (seed 0x9747b28c,
little-endian 4-byte blocks, result read as a signed 32-bit int) and ``to_positive(x) = x & 0x7fffffff``
(not abs). So a key lands on the same partition whichever of these clients produced it.

Keyless records follow the sticky partitioner of Kafka 2.4+ (KIP-480): one partition per topic until
the batch being filled for it is sealed, then another one, chosen at random.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2(byte[])``: 32-bit MurmurHash2 of ``data`` as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    blocks = length >> 2
    for i in range(blocks):
        j = i << 2
        k = data[j] | (data[j + 1] << 8) | (data[j + 2] << 16) | (data[j + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = blocks << 2
    # The 1-3 trailing bytes (Kafka's switch with fall-through).
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clears the sign bit (so -2**31 maps to 0, unlike abs)."""
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner (and Rill's TS client) picks for a keyed record."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    return to_positive(murmur2(key)) % num_partitions


class StickyPartitioner:
    """Keyless records: one partition per topic until its batch is sealed (Kafka 2.4+)."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self._current: dict[str, int] = {}
        self._random = rand

    def partition(self, topic: str, num_partitions: int) -> int:
        """The sticky partition of ``topic``, choosing one if there is none yet (or out of range)."""
        p = self._current.get(topic)
        if p is not None and p < num_partitions:
            return p
        return self._next(topic, num_partitions, -1)

    def on_batch_sealed(self, topic: str, partition: int, num_partitions: int) -> None:
        """The batch for ``partition`` was sealed: if it was the sticky one, move to another."""
        if self._current.get(topic) == partition:
            self._next(topic, num_partitions, partition)

    def _next(self, topic: str, num_partitions: int, previous: int) -> int:
        if num_partitions <= 1:
            p = 0
        elif previous < 0 or previous >= num_partitions:
            p = int(self._random() * num_partitions)
        else:
            # Uniform over the other num_partitions - 1 partitions.
            p = (previous + 1 + int(self._random() * (num_partitions - 1))) % num_partitions
        self._current[topic] = p
        return p
