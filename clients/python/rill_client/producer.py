"""A batching producer over the client-streaming ``LogService.Produce``.

``send`` places each record on a partition (the one named, else murmur2 of the key like Kafka and the
TS client, else a sticky partition for keyless records) and appends it to that partition's open
batch. A batch is sealed when it reaches ``batch_records`` records or ``batch_bytes`` bytes; a
record larger than ``batch_bytes`` travels alone. ``flush`` seals every open batch and sends all
sealed ones, in order, over Produce streams of at most ``max_batches_per_stream`` batches, and
returns where each landed. Buffered bytes never exceed ``buffer_bytes`` (plus one record): a
``send`` that would pass it flushes first, so a fast producer waits for the broker instead of
growing without bound.

Nothing is retried: a failed stream raises :class:`ProduceError`, which lists every batch the
broker did not confirm (``unsent``), so the caller decides whether to send them again (a retry
after a lost answer could duplicate records). Batches of one partition are sent in order and
record i of a batch gets offset ``base_offset + i``.

Not thread-safe: use one Producer per thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import grpc

from ._stubs import log_pb2, record_pb2
from .errors import InvalidArgumentError, ProduceError, RillError, TopicNotFoundError, from_grpc_error
from .partitioner import StickyPartitioner, partition_for_key
from .records import ProducerRecord, to_record

if TYPE_CHECKING:
    from .client import Client

Durability = Literal["written", "fsynced"]

_DURABILITY = {
    None: log_pb2.DURABILITY_UNSPECIFIED,
    "written": log_pb2.DURABILITY_WRITTEN,
    "fsynced": log_pb2.DURABILITY_FSYNCED,
}

# Bytes a record costs in a RecordBatch besides its own encoding (field tag and length varint).
_RECORD_FRAMING = 6


@dataclass(frozen=True)
class ProduceResult:
    """Where one batch landed: its records have offsets base_offset .. base_offset + record_count - 1."""

    topic: str
    partition: int
    base_offset: int
    record_count: int
    append_time_ms: int


@dataclass
class PendingBatch:
    """Records on their way to one partition."""

    topic: str
    partition: int
    records: list[record_pb2.Record] = field(default_factory=list)
    size: int = 0


class Producer:
    """Batches records per partition and sends them over Produce. See the module docstring."""

    def __init__(
        self,
        client: Client,
        *,
        batch_records: int = 10_000,
        batch_bytes: int = 256 * 1024,
        buffer_bytes: int = 32 * 1024 * 1024,
        max_batches_per_stream: int = 1000,
        durability: Durability | None = None,
        timeout: float | None = None,
        metadata_max_age: float = 300.0,
    ) -> None:
        """
        :param batch_records: most records per batch.
        :param batch_bytes: seal a batch once it holds this many bytes (keep it under the topic's
            ``max.batch.bytes``, default 1 MiB).
        :param buffer_bytes: most bytes buffered before ``send`` flushes by itself.
        :param max_batches_per_stream: most batches one Produce call carries.
        :param durability: ``"written"`` or ``"fsynced"``; None uses the topic's default.
        :param timeout: seconds one Produce call may take; default the client's timeout.
        :param metadata_max_age: seconds a topic's partition count is cached.
        """
        for name, v in (
            ("batch_records", batch_records),
            ("batch_bytes", batch_bytes),
            ("buffer_bytes", buffer_bytes),
            ("max_batches_per_stream", max_batches_per_stream),
        ):
            if not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(f"{name} must be a positive int, got {v!r}")
        if durability not in _DURABILITY:
            raise InvalidArgumentError(f'durability must be "written", "fsynced" or None, got {durability!r}')
        self._client = client
        self._batch_records = batch_records
        self._batch_bytes = batch_bytes
        self._buffer_bytes = buffer_bytes
        self._max_batches_per_stream = max_batches_per_stream
        self._durability = _DURABILITY[durability]
        self._timeout = client.timeout if timeout is None else timeout
        self._open: dict[tuple[str, int], PendingBatch] = {}
        self._sealed: list[PendingBatch] = []
        self._buffered = 0
        self._results: list[ProduceResult] = []
        # topic -> (partition count or None if unknown, time.monotonic() of the lookup)
        self._counts: dict[str, tuple[int | None, float]] = {}
        self._metadata_max_age = metadata_max_age
        self._sticky = StickyPartitioner()
        self._closed = False

    @property
    def buffered_bytes(self) -> int:
        """Estimated bytes of the records not sent yet."""
        return self._buffered

    def send(
        self,
        topic: str,
        records: Iterable[ProducerRecord | tuple],
        *,
        partition: int | None = None,
    ) -> None:
        """Buffers ``records`` (ProducerRecords or ``(key, value[, headers[, timestamp_ms]])``
        tuples; bytes or str) for ``topic``, on ``partition`` if given. Every record is checked
        before any is buffered. May flush (and so raise :class:`ProduceError`) when the buffer is
        full; the records of this call not buffered yet are then in the error's ``unsent`` too."""
        if self._closed:
            raise RillError("the producer is closed", code=grpc.StatusCode.FAILED_PRECONDITION)
        encoded = [to_record(r) for r in records]
        if not encoded:
            return
        if partition is not None and not (isinstance(partition, int) and partition >= 0):
            raise InvalidArgumentError(f"partition must be an int >= 0, got {partition!r}")
        count = self._partition_count(topic, partition)
        if partition is not None and count is not None and partition >= count:
            raise InvalidArgumentError(f'partition {partition} of topic "{topic}" does not exist (it has {count})')
        for i, rec in enumerate(encoded):
            size = rec.ByteSize() + _RECORD_FRAMING
            if self._buffered > 0 and self._buffered + size > self._buffer_bytes:
                try:
                    self._send_all()
                except ProduceError as e:
                    e.unsent.extend(
                        PendingBatch(topic, self._choose(topic, r, partition, count), [r], 0) for r in encoded[i:]
                    )
                    raise
            self._append(topic, self._choose(topic, rec, partition, count), rec, size, count)

    def flush(self) -> list[ProduceResult]:
        """Sends every buffered record and returns where each batch landed, including the batches
        sent by earlier automatic flushes, in send order. Raises :class:`ProduceError`."""
        self._send_all()
        results, self._results = self._results, []
        return results

    def close(self) -> list[ProduceResult]:
        """Flushes and refuses further sends. The channel belongs to the client: close it there."""
        if self._closed:
            return []
        self._closed = True
        return self.flush()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *_: object) -> None:
        # Like close(): what was sent before an exception in the with-block is still delivered.
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _partition_count(self, topic: str, partition: int | None) -> int | None:
        """The topic's partition count (None if the broker does not know it yet: it is then
        created on the first Produce, and records go to partition 0 unless they name one).
        Cached for ``metadata_max_age`` seconds; looked up again when a named partition is past
        the cached count."""
        cached = self._counts.get(topic)
        if cached is not None:
            count, at = cached
            fresh = time.monotonic() - at < self._metadata_max_age
            if fresh and (partition is None or (count is not None and partition < count)):
                return count
        try:
            count = self._client.partition_count(topic)
        except TopicNotFoundError:
            count = None
        self._counts[topic] = (count, time.monotonic())
        return count

    def _choose(self, topic: str, rec: record_pb2.Record, partition: int | None, count: int | None) -> int:
        if partition is not None:
            return partition
        if count is None:
            return 0
        if rec.key:
            return partition_for_key(rec.key, count)
        return self._sticky.partition(topic, count)

    def _append(self, topic: str, partition: int, rec: record_pb2.Record, size: int, count: int | None) -> None:
        key = (topic, partition)
        batch = self._open.get(key)
        if batch is not None and (batch.size + size > self._batch_bytes):
            self._seal(key, count)
            batch = None
        if batch is None:
            batch = self._open[key] = PendingBatch(topic, partition)
        batch.records.append(rec)
        batch.size += size
        self._buffered += size
        if len(batch.records) >= self._batch_records or batch.size >= self._batch_bytes:
            self._seal(key, count)

    def _seal(self, key: tuple[str, int], count: int | None) -> None:
        batch = self._open.pop(key)
        self._sealed.append(batch)
        if count is not None:
            self._sticky.on_batch_sealed(batch.topic, batch.partition, count)

    def _send_all(self) -> None:
        """Seals every open batch and sends all sealed ones; on failure nothing stays buffered."""
        for key in list(self._open):
            self._seal(key, self._counts.get(key[0], (None, 0.0))[0])
        while self._sealed:
            chunk = self._sealed[: self._max_batches_per_stream]
            try:
                response = self._client.log.Produce(
                    (
                        log_pb2.ProduceRequest(
                            topic=b.topic,
                            partition=b.partition,
                            records=record_pb2.RecordBatch(records=b.records),
                            durability=self._durability,
                        )
                        for b in chunk
                    ),
                    timeout=self._timeout,
                    metadata=self._client.metadata,
                )
            except grpc.RpcError as e:
                cause = from_grpc_error(e)
                appended = min(cause.appended_batches or 0, len(chunk))
                unsent = self._sealed[appended:]
                self._sealed = []
                self._buffered = 0
                raise ProduceError(cause, unsent, appended) from None
            if len(response.results) != len(chunk):
                unsent = self._sealed[len(response.results) :]
                self._sealed = []
                self._buffered = 0
                cause = RillError(f"the broker answered {len(response.results)} results for {len(chunk)} batches")
                raise ProduceError(cause, unsent, len(response.results))
            del self._sealed[: len(chunk)]
            self._buffered -= sum(b.size for b in chunk)
            self._results.extend(
                ProduceResult(r.topic, r.partition, r.base_offset, r.record_count, r.append_time_ms)
                for r in response.results
            )
