"""Records as the application sees them, and the decoding of the stored batches a Fetch response
carries into them. A batch is served whole, so the first batch of a fetch may begin before the
offset asked for: records below ``from_offset`` are skipped. Record i of a batch has offset
``base_offset + i``; a record without its own timestamp takes the batch's append time.

On the wire an absent key and an empty key are the same thing (proto3 ``bytes``), so a record
produced with an empty key is read back with ``key=None`` (as in the TS client).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Union

from ._stubs import record_pb2
from .errors import CorruptBatchError, InvalidArgumentError, UnsupportedCompressionError

BytesLike = Union[bytes, bytearray, memoryview, str]
"""Bytes, or text encoded as UTF-8."""

HeadersLike = Union[Sequence[tuple[str, BytesLike]], Mapping[str, BytesLike], None]
"""Headers as a list of (name, value) pairs (order and duplicates kept) or a dict."""


class ProducerRecord(NamedTuple):
    """One record to send. Plain ``(key, value)`` and ``(key, value, headers)`` tuples work too."""

    key: BytesLike | None
    value: BytesLike
    headers: HeadersLike = None
    timestamp_ms: int | None = None
    """The record's time; None lets consumers see the broker's append time."""


@dataclass(frozen=True)
class ConsumedRecord:
    """A record read from a partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    """The key, or None when the record had none (or an empty one)."""
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    """(name, value) pairs in the order they were produced."""
    timestamp: int = 0
    """Milliseconds since the Unix epoch: the producer's timestamp, else the broker's append time."""


def to_bytes(v: BytesLike, what: str) -> bytes:
    """``v`` as bytes (text as UTF-8); InvalidArgumentError for anything else."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise InvalidArgumentError(f"{what} must be bytes or str, got {type(v).__name__}")


def to_record(rec: ProducerRecord | tuple) -> record_pb2.Record:
    """A ``Record`` message from a ProducerRecord or a (key, value[, headers[, timestamp_ms]]) tuple."""
    if not isinstance(rec, ProducerRecord):
        if not isinstance(rec, tuple) or not 2 <= len(rec) <= 4:
            raise InvalidArgumentError(
                f"a record must be a ProducerRecord or a (key, value[, headers[, timestamp_ms]]) tuple, got {rec!r}"
            )
        rec = ProducerRecord(*rec)
    out = record_pb2.Record(value=to_bytes(rec.value, "value"))
    if rec.key is not None:
        out.key = to_bytes(rec.key, "key")
    headers = rec.headers.items() if isinstance(rec.headers, Mapping) else (rec.headers or ())
    for name, value in headers:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"a header name must be str, got {type(name).__name__}")
        out.headers.add(key=name, value=to_bytes(value, f"header {name!r}"))
    if rec.timestamp_ms is not None:
        out.timestamp_ms = int(rec.timestamp_ms)
    return out


def batch_records(batch: record_pb2.Batch) -> record_pb2.RecordBatch:
    """The RecordBatch of a stored batch, gunzipped if needed."""
    c = batch.compression
    if c in (record_pb2.COMPRESSION_UNSPECIFIED, record_pb2.COMPRESSION_NONE):
        return batch.records
    if c == record_pb2.COMPRESSION_GZIP:
        try:
            raw = gzip.decompress(batch.compressed_records)
        except (OSError, EOFError, zlib.error) as e:
            raise InvalidArgumentError(f"batch at offset {batch.base_offset} has corrupt gzip data: {e}") from e
        return record_pb2.RecordBatch.FromString(raw)
    name = record_pb2.Compression.Name(c) if c in record_pb2.Compression.values() else str(c)
    raise UnsupportedCompressionError(
        f"batch at offset {batch.base_offset} uses {name}; this client decodes only none and gzip"
    )


def decode_batch(topic: str, partition: int, batch: record_pb2.Batch, from_offset: int) -> Iterator[ConsumedRecord]:
    """The records of ``batch`` with offset >= ``from_offset``, in offset order."""
    if batch.base_offset + batch.record_count <= from_offset:
        return
    records = batch_records(batch).records
    if len(records) != batch.record_count:
        raise CorruptBatchError(
            f"batch at offset {batch.base_offset} of {topic}/{partition} holds {len(records)} "
            f"records but its header says {batch.record_count}"
        )
    for i in range(max(0, from_offset - batch.base_offset), len(records)):
        r = records[i]
        yield ConsumedRecord(
            topic=topic,
            partition=partition,
            offset=batch.base_offset + i,
            key=r.key or None,
            value=r.value,
            headers=[(h.key, h.value) for h in r.headers],
            timestamp=r.timestamp_ms if r.HasField("timestamp_ms") else batch.append_time_ms,
        )
