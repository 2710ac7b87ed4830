"""Records to and from the wire: conversion, batch decoding, compression, corrupt batches."""

import gzip
import unittest

from rill_client import CorruptBatchError, InvalidArgumentError, ProducerRecord, UnsupportedCompressionError
from rill_client._stubs import record_pb2
from rill_client.records import decode_batch, to_record


def stored(base: int, records: list, append_time_ms: int = 1000, **kw) -> record_pb2.Batch:
    batch = record_pb2.Batch(base_offset=base, record_count=len(records), append_time_ms=append_time_ms, **kw)
    if "compressed_records" not in kw:
        batch.records.records.extend(records)
    return batch


class ToRecordTest(unittest.TestCase):
    def test_tuples_and_producer_records(self) -> None:
        r = to_record((b"k", "välue", [("h", b"\x00\xff"), ("h", "x")]))
        self.assertEqual((r.key, r.value), (b"k", "välue".encode()))
        self.assertEqual([(h.key, h.value) for h in r.headers], [("h", b"\x00\xff"), ("h", b"x")])
        self.assertFalse(r.HasField("timestamp_ms"))
        r = to_record(ProducerRecord(None, bytearray(b"v"), {"a": b"1"}, 42))
        self.assertEqual((r.key, r.value, r.timestamp_ms), (b"", b"v", 42))
        self.assertEqual([(h.key, h.value) for h in r.headers], [("a", b"1")])

    def test_rejects_bad_records(self) -> None:
        for bad in [(b"k",), b"kv", (b"k", 5), (1, b"v"), (b"k", b"v", [(1, b"x")])]:
            with self.subTest(bad=bad), self.assertRaises(InvalidArgumentError):
                to_record(bad)  # type: ignore[arg-type]


class DecodeBatchTest(unittest.TestCase):
    def test_offsets_skip_timestamps_and_empty_keys(self) -> None:
        recs = [
            record_pb2.Record(key=b"", value=b"a"),
            record_pb2.Record(key=b"k", value=b"b", timestamp_ms=7),
            record_pb2.Record(value=b"c", headers=[record_pb2.Header(key="h", value=b"1")]),
        ]
        out = list(decode_batch("t", 2, stored(10, recs), 11))
        got = [(r.offset, r.key, r.value, r.timestamp) for r in out]
        self.assertEqual(got, [(11, b"k", b"b", 7), (12, None, b"c", 1000)])
        self.assertEqual(out[1].headers, [("h", b"1")])
        self.assertEqual((out[0].topic, out[0].partition), ("t", 2))
        self.assertEqual(list(decode_batch("t", 0, stored(10, recs), 13)), [])

    def test_gzip(self) -> None:
        inner = record_pb2.RecordBatch(records=[record_pb2.Record(value=b"zipped")])
        batch = stored(
            0,
            [],
            compression=record_pb2.COMPRESSION_GZIP,
            compressed_records=gzip.compress(inner.SerializeToString()),
        )
        batch.record_count = 1
        self.assertEqual([r.value for r in decode_batch("t", 0, batch, 0)], [b"zipped"])
        batch.compressed_records = b"not gzip"
        with self.assertRaises(InvalidArgumentError):
            list(decode_batch("t", 0, batch, 0))

    def test_refuses_zstd_and_wrong_counts(self) -> None:
        batch = stored(0, [], compression=record_pb2.COMPRESSION_ZSTD, compressed_records=b"x")
        batch.record_count = 1
        with self.assertRaisesRegex(UnsupportedCompressionError, "COMPRESSION_ZSTD"):
            list(decode_batch("t", 0, batch, 0))
        batch = stored(0, [record_pb2.Record(value=b"a")])
        batch.record_count = 2
        with self.assertRaisesRegex(CorruptBatchError, "holds 1 records but its header says 2"):
            list(decode_batch("t", 0, batch, 0))


if __name__ == "__main__":
    unittest.main()
