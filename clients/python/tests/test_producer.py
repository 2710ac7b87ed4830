"""Producer batching, bounds and failure reporting, against a scripted Produce."""

import unittest

import grpc

from rill_client import InvalidArgumentError, ProduceError, Producer
from rill_client._stubs import log_pb2
from rill_client.partitioner import partition_for_key

from .fakes import FakeClient, FakeRpcError


def answer_all(requests: list) -> log_pb2.ProduceResponse:
    """Appends every batch at offsets per partition counted from 0 (state kept on the function)."""
    ends = answer_all.__dict__.setdefault("ends", {})
    results = []
    for r in requests:
        key = (r.topic, r.partition)
        n = len(r.records.records)
        base = ends.get(key, 0)
        results.append(log_pb2.ProduceResult(topic=r.topic, partition=r.partition, base_offset=base, record_count=n))
        ends[key] = ends.get(key, 0) + n
    return log_pb2.ProduceResponse(results=results)


class ProducerTest(unittest.TestCase):
    def setUp(self) -> None:
        answer_all.__dict__["ends"] = {}
        self.client = FakeClient({"t": 3})
        self.client.log.produce_handler = answer_all

    def test_batches_per_partition_by_key_and_named_partition(self) -> None:
        p = Producer(self.client, batch_records=2)  # type: ignore[arg-type]
        keys = [f"k{i}".encode() for i in range(10)]
        p.send("t", [(k, b"v" + k) for k in keys])
        p.send("t", [(None, b"named")], partition=1)
        results = p.flush()
        sent = [r for call in self.client.log.produce_calls for r in call]
        self.assertEqual(len(self.client.log.produce_calls), 1)
        for req in sent:
            self.assertLessEqual(len(req.records.records), 2)
            for rec in req.records.records:
                if rec.key:
                    self.assertEqual(req.partition, partition_for_key(rec.key, 3))
                else:
                    self.assertEqual((req.partition, rec.value), (1, b"named"))
        self.assertEqual(sum(r.record_count for r in results), 11)
        self.assertEqual(p.buffered_bytes, 0)
        self.assertEqual(p.flush(), [])

    def test_buffer_bound_flushes_on_send(self) -> None:
        p = Producer(self.client, buffer_bytes=1000, batch_bytes=300)  # type: ignore[arg-type]
        for i in range(20):
            p.send("t", [(None, bytes(100))], partition=0)
            self.assertLessEqual(p.buffered_bytes, 1000)
        self.assertGreaterEqual(len(self.client.log.produce_calls), 2)
        results = p.close()
        self.assertEqual(sum(r.record_count for r in results), 20)
        for call in self.client.log.produce_calls:
            for req in call:
                self.assertLessEqual(req.records.ByteSize(), 300 + 120)

    def test_max_batches_per_stream(self) -> None:
        p = Producer(self.client, batch_records=1, max_batches_per_stream=3)  # type: ignore[arg-type]
        p.send("t", [(None, b"x")] * 7, partition=2)
        self.assertEqual(len(p.flush()), 7)
        self.assertEqual([len(c) for c in self.client.log.produce_calls], [3, 3, 1])

    def test_failure_lists_unconfirmed_batches(self) -> None:
        def refuse_third(requests: list) -> log_pb2.ProduceResponse:
            raise FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "batch too large", [("rill-appended-batches", "2")])

        self.client.log.produce_handler = refuse_third
        p = Producer(self.client, batch_records=1)  # type: ignore[arg-type]
        p.send("t", [(None, str(i)) for i in range(5)], partition=0)
        with self.assertRaises(ProduceError) as ctx:
            p.flush()
        err = ctx.exception
        self.assertEqual(err.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("batch too large", str(err))
        self.assertEqual([b.records[0].value for b in err.unsent], [b"2", b"3", b"4"])
        self.assertEqual(p.buffered_bytes, 0)

    def test_a_failed_automatic_flush_lists_the_rest_of_the_send(self) -> None:
        def refuse(requests: list) -> log_pb2.ProduceResponse:
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "broker is shutting down")

        self.client.log.produce_handler = refuse
        p = Producer(self.client, buffer_bytes=250)  # type: ignore[arg-type]
        with self.assertRaises(ProduceError) as ctx:
            p.send("t", [(None, bytes([i]) * 100) for i in range(4)], partition=1)
        err = ctx.exception
        self.assertTrue(err.retriable)
        self.assertEqual([r.value[0] for b in err.unsent for r in b.records], [0, 1, 2, 3])
        self.assertEqual({b.partition for b in err.unsent}, {1})
        self.assertEqual(p.buffered_bytes, 0)

    def test_unknown_topic_goes_to_partition_zero_and_bad_partitions_are_refused(self) -> None:
        p = Producer(self.client)  # type: ignore[arg-type]
        p.send("new-topic", [(b"key", b"v")])
        self.assertEqual([(r.topic, r.partition) for r in p.flush()], [("new-topic", 0)])
        with self.assertRaisesRegex(InvalidArgumentError, "partition 3 of topic"):
            p.send("t", [(None, b"v")], partition=3)
        with self.assertRaises(InvalidArgumentError):
            p.send("t", [(None, b"v")], partition=-1)
        with self.assertRaises(InvalidArgumentError):
            Producer(self.client, batch_bytes=0)  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
