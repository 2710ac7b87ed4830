"""gRPC statuses become RillError subclasses with the broker's message."""

import unittest

import grpc

from rill_client import (
    AuthError,
    BrokerUnavailableError,
    OffsetOutOfRangeError,
    RillError,
    TopicExistsError,
    TopicNotFoundError,
    from_grpc_error,
)

from .fakes import FakeRpcError


class FromGrpcErrorTest(unittest.TestCase):
    def test_maps_codes_keeps_message_and_retriability(self) -> None:
        cases = [
            (grpc.StatusCode.NOT_FOUND, TopicNotFoundError, False),
            (grpc.StatusCode.OUT_OF_RANGE, OffsetOutOfRangeError, False),
            (grpc.StatusCode.ALREADY_EXISTS, TopicExistsError, False),
            (grpc.StatusCode.UNAVAILABLE, BrokerUnavailableError, True),
            (grpc.StatusCode.PERMISSION_DENIED, AuthError, False),
            (grpc.StatusCode.INTERNAL, RillError, False),
        ]
        for code, cls, retriable in cases:
            with self.subTest(code=code):
                err = from_grpc_error(FakeRpcError(code, "the broker says so"))
                self.assertIs(type(err), cls)
                self.assertEqual((err.code, err.message, err.retriable), (code, "the broker says so", retriable))
                self.assertEqual(str(err), f"{code.name}: the broker says so")

    def test_appended_batches_trailer(self) -> None:
        err = from_grpc_error(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad", [("rill-appended-batches", "3")]))
        self.assertEqual(err.appended_batches, 3)
        self.assertIsNone(from_grpc_error(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad")).appended_batches)


if __name__ == "__main__":
    unittest.main()
