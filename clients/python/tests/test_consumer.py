"""consume(): offsets, stopping, and resuming after UNAVAILABLE, against scripted Fetch streams."""

import unittest
from unittest import mock

import grpc

from rill_client import BrokerUnavailableError, OffsetOutOfRangeError
from rill_client._stubs import log_pb2, record_pb2
from rill_client.consumer import consume

from .fakes import FakeClient, FakeRpcError, FakeStream


def response(base: int, values: list, hw: int) -> log_pb2.FetchResponse:
    batch = record_pb2.Batch(base_offset=base, record_count=len(values), append_time_ms=5)
    batch.records.records.extend(record_pb2.Record(value=v) for v in values)
    return log_pb2.FetchResponse(batches=[batch] if values else [], high_watermark=hw)


def unavailable() -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.UNAVAILABLE, "broker is shutting down")


@mock.patch("rill_client.consumer.time.sleep")
class ConsumeTest(unittest.TestCase):
    def test_resumes_after_unavailable_from_the_next_offset(self, sleep: mock.Mock) -> None:
        client = FakeClient()
        streams = [
            FakeStream([response(0, [b"a", b"b"], 2), unavailable()]),
            FakeStream([unavailable()]),
            FakeStream([response(1, [b"b", b"c"], 3), response(3, [], 3), response(3, [b"d"], 4)]),
        ]
        client.log.streams = streams
        records = consume(client, "t", 0, 0, follow=True, max_records=4)  # type: ignore[arg-type]
        got = [(r.offset, r.value) for r in records]
        self.assertEqual(got, [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")])
        self.assertEqual([r.offset for r in client.log.fetch_requests], [0, 2, 2])
        self.assertTrue(all(s.cancelled for s in streams))
        self.assertEqual(sleep.call_count, 2)

    def test_without_follow_stops_at_the_first_high_watermark_even_across_a_resume(self, _: mock.Mock) -> None:
        client = FakeClient()
        client.log.streams = [
            FakeStream([response(0, [b"a"], 2), unavailable()]),
            FakeStream([response(1, [b"b", b"c"], 3)]),
        ]
        got = [r.value for r in consume(client, "t", 0, "earliest", follow=False)]  # type: ignore[arg-type]
        self.assertEqual(got, [b"a", b"b"])
        first, second = client.log.fetch_requests
        self.assertEqual(first.WhichOneof("start"), "position")
        self.assertEqual((second.WhichOneof("start"), second.offset, second.follow), ("offset", 1, False))

    def test_latest_heartbeat_fixes_the_resume_offset(self, _: mock.Mock) -> None:
        client = FakeClient()
        client.log.streams = [
            FakeStream([response(0, [], 7), unavailable()]),
            FakeStream([response(7, [b"x"], 8)]),
        ]
        got = [(r.offset, r.value) for r in consume(client, "t", 0, "latest", max_records=1)]  # type: ignore[arg-type]
        self.assertEqual(got, [(7, b"x")])
        self.assertEqual(client.log.fetch_requests[1].offset, 7)

    def test_gives_up_after_max_retries_and_raises_other_errors_at_once(self, sleep: mock.Mock) -> None:
        client = FakeClient()
        client.log.streams = [FakeStream([unavailable()]) for _ in range(4)]
        with self.assertRaisesRegex(BrokerUnavailableError, "shutting down"):
            list(consume(client, "t", 0, 0, max_retries=3))  # type: ignore[arg-type]
        self.assertEqual(len(client.log.fetch_requests), 4)
        delays = [c.args[0] for c in sleep.call_args_list]
        self.assertEqual(len(delays), 3)
        self.assertTrue(all(0 < d <= 5.0 for d in delays))

        client = FakeClient()
        past = FakeRpcError(grpc.StatusCode.OUT_OF_RANGE, "offset 99 is past the high watermark 3")
        client.log.streams = [FakeStream([past])]
        with self.assertRaisesRegex(OffsetOutOfRangeError, "offset 99 is past"):
            list(consume(client, "t", 0, 99))  # type: ignore[arg-type]

    def test_closing_the_generator_cancels_the_stream(self, _: mock.Mock) -> None:
        client = FakeClient()
        stream = FakeStream([response(0, [b"a", b"b"], 2)])
        client.log.streams = [stream]
        gen = consume(client, "t", 0, 0)  # type: ignore[arg-type]
        self.assertEqual(next(gen).value, b"a")
        gen.close()
        self.assertTrue(stream.cancelled)


if __name__ == "__main__":
    unittest.main()
