"""The entry point of the Python client: a gRPC channel to one broker, the admin calls the examples
need, and factories for :class:`~rill_client.producer.Producer` and :func:`consume`.

Every method raises a :class:`~rill_client.errors.RillError` subclass chosen by the gRPC status, with
the broker's message. The raw generated stubs are there for anything else: ``client.log``,
``client.admin``, ``client.cluster`` (``rill.v1.*_pb2_grpc``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, Callable, TypeVar

import grpc

from ._stubs import admin_pb2, admin_pb2_grpc, cluster_pb2, cluster_pb2_grpc, log_pb2, log_pb2_grpc
from .consumer import StartOffset, consume
from .errors import InvalidArgumentError, RillError, TopicNotFoundError, from_grpc_error
from .producer import Durability, Producer
from .records import ConsumedRecord

T = TypeVar("T")

# As the TS client (clients/ts/src/connection.ts DEFAULT_CHANNEL_OPTIONS), plus a short reconnect
# backoff: gRPC's default (1 s growing to 120 s) makes every call fail fast with UNAVAILABLE while the
# channel waits, so after a broker restart consume() would keep failing for seconds (and could run
# out of retries) although the broker is back. consume() has its own bounded backoff on top.
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

# Topic settings by Kafka's dotted keys (underscores work too), as TopicConfig fields.
TOPIC_CONFIG_KEYS = (
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "flush.messages",
    "flush.ms",
    "max.batch.bytes",
    "durability",
)


class Client:
    """A connection to a Rill broker at ``address`` (``host:port``). Use it as a context manager or
    call :meth:`close`."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """
        :param timeout: seconds a unary call (and a producer's Produce call) may take.
        :param credentials: TLS credentials (``grpc.ssl_channel_credentials(...)``); None is plaintext.
        :param metadata: sent with every call, e.g. ``[("authorization", "Bearer ...")]``.
        :param options: gRPC channel options, over :data:`DEFAULT_CHANNEL_OPTIONS`.
        """
        merged = dict(DEFAULT_CHANNEL_OPTIONS)
        merged.update(dict(options))
        opts = list(merged.items())
        self.address = address
        self.timeout = timeout
        self.metadata: tuple[tuple[str, str], ...] = tuple(metadata)
        self.channel: grpc.Channel = (
            grpc.secure_channel(address, credentials, opts) if credentials else grpc.insecure_channel(address, opts)
        )
        self.log = log_pb2_grpc.LogServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.cluster = cluster_pb2_grpc.ClusterServiceStub(self.channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_grpc_error(e) from None

    # -- admin ----------------------------------------------------------------------------------

    def create_topic(
        self, topic: str, partitions: int = 0, config: Mapping[str, int | str] | None = None
    ) -> admin_pb2.TopicDescription:
        """Creates ``topic`` with ``partitions`` partitions (0: the broker's default) and config
        overrides by Kafka's keys, e.g. ``{"retention.ms": 86_400_000}``. TopicExistsError if it exists."""
        request = admin_pb2.CreateTopicRequest(topic=topic, partitions=partitions, config=topic_config(config or {}))
        return self._call(self.admin.CreateTopic, request).topic

    def delete_topic(self, topic: str) -> None:
        """Deletes ``topic`` and its data. TopicNotFoundError if there is none."""
        self._call(self.admin.DeleteTopic, admin_pb2.DeleteTopicRequest(topic=topic))

    def list_topics(self) -> list[tuple[str, int]]:
        """Every topic as (name, partition count), sorted by name."""
        response = self._call(self.admin.ListTopics, admin_pb2.ListTopicsRequest())
        return [(t.topic, t.partitions) for t in response.topics]

    def describe_topic(self, topic: str) -> admin_pb2.TopicDescription:
        """The topic's effective config and per-partition log start, high watermark and size."""
        return self._call(self.admin.DescribeTopic, admin_pb2.DescribeTopicRequest(topic=topic)).topic

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has. TopicNotFoundError if there is no such topic."""
        response = self._call(self.cluster.GetMetadata, cluster_pb2.GetMetadataRequest(topics=[topic]))
        for t in response.topics:
            if t.topic == topic:
                return len(t.partitions)
        raise TopicNotFoundError(f'topic "{topic}" not found')

    def list_offsets(self, topic: str, partitions: Sequence[int] = ()) -> dict[int, tuple[int, int]]:
        """``{partition: (earliest, latest)}``: the log start and the high watermark of each
        partition (all of them if ``partitions`` is empty)."""
        response = self._call(self.log.ListOffsets, log_pb2.ListOffsetsRequest(topic=topic, partitions=partitions))
        return {p.partition: (p.earliest, p.latest) for p in response.partitions}

    # -- data -----------------------------------------------------------------------------------

    def producer(
        self,
        *,
        batch_records: int = 10_000,
        batch_bytes: int = 256 * 1024,
        buffer_bytes: int = 32 * 1024 * 1024,
        max_batches_per_stream: int = 1000,
        durability: Durability | None = None,
        timeout: float | None = None,
        metadata_max_age: float = 300.0,
    ) -> Producer:
        """A new :class:`Producer` on this client's channel (see its docstring for the options)."""
        return Producer(
            self,
            batch_records=batch_records,
            batch_bytes=batch_bytes,
            buffer_bytes=buffer_bytes,
            max_batches_per_stream=max_batches_per_stream,
            durability=durability,
            timeout=timeout,
            metadata_max_age=metadata_max_age,
        )

    def consume(
        self,
        topic: str,
        partition: int = 0,
        offset: StartOffset = "earliest",
        *,
        follow: bool = True,
        max_records: int | None = None,
        max_bytes: int = 0,
        max_retries: int = 10,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> Generator[ConsumedRecord, None, None]:
        """Yields the records of one partition from ``offset``, following the tail if ``follow``,
        resuming after UNAVAILABLE; see :func:`rill_client.consumer.consume`."""
        return consume(
            self,
            topic,
            partition,
            offset,
            follow=follow,
            max_records=max_records,
            max_bytes=max_bytes,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        )


_DURABILITY_NAMES = {"written": log_pb2.DURABILITY_WRITTEN, "fsynced": log_pb2.DURABILITY_FSYNCED}


def topic_config(config: Mapping[str, int | str]) -> admin_pb2.TopicConfig:
    """A TopicConfig from Kafka-style keys (``retention.ms``) or field names (``retention_ms``)."""
    out = admin_pb2.TopicConfig()
    for key, value in config.items():
        dotted = key.replace("_", ".")
        if dotted not in TOPIC_CONFIG_KEYS:
            raise InvalidArgumentError(f"unknown topic config {key!r}; known: {', '.join(TOPIC_CONFIG_KEYS)}")
        if dotted == "durability":
            if value not in _DURABILITY_NAMES:
                raise InvalidArgumentError(f'durability must be "written" or "fsynced", got {value!r}')
            out.durability = _DURABILITY_NAMES[value]  # type: ignore[index]
        else:
            try:
                setattr(out, dotted.replace(".", "_"), int(value))
            except (TypeError, ValueError) as e:
                raise InvalidArgumentError(f"{key} must be an integer, got {value!r}") from e
    return out


__all__ = ["DEFAULT_CHANNEL_OPTIONS", "TOPIC_CONFIG_KEYS", "Client", "RillError", "topic_config"]
