"""Test doubles for the gRPC layer: a failed call, and a client whose stubs are scripted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc


class FakeRpcError(grpc.RpcError, grpc.Call):
    """A failed call as grpcio raises it: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._trailers = tuple(trailers)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class FakeStream:
    """A server stream: yields ``items``, raising any that is an exception; records cancel()."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.cancelled = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self.cancelled = True


class FakeLog:
    """LogService: Fetch answers from a script of streams; Produce from a handler."""

    def __init__(self) -> None:
        self.fetch_requests: list[Any] = []
        self.streams: list[FakeStream] = []
        self.produce_calls: list[list[Any]] = []
        self.produce_handler: Callable[[list[Any]], Any] | None = None

    def Fetch(self, request: Any, metadata: Any = ()) -> FakeStream:  # noqa: N802 (gRPC method name)
        self.fetch_requests.append(request)
        stream = self.streams[len(self.fetch_requests) - 1]
        return stream

    def Produce(self, requests: Iterable[Any], timeout: Any = None, metadata: Any = ()) -> Any:  # noqa: N802
        reqs = list(requests)
        self.produce_calls.append(reqs)
        assert self.produce_handler is not None
        return self.produce_handler(reqs)


class FakeClient:
    """What Producer and consume use of a Client."""

    def __init__(self, partitions: dict[str, int] | None = None) -> None:
        self.log = FakeLog()
        self.metadata: tuple[tuple[str, str], ...] = ()
        self.timeout = 5.0
        self.partitions = partitions or {}

    def partition_count(self, topic: str) -> int:
        from rill_client import TopicNotFoundError

        if topic not in self.partitions:
            raise TopicNotFoundError(f"no topic {topic}")
        return self.partitions[topic]
