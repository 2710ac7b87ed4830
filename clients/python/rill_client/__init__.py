"""A thin Python client for Rill, on top of the gRPC stubs generated from proto/rill/v1
(run ``clients/python/generate.sh`` first).

    from rill_client import Client

    with Client("127.0.0.1:50051") as client:
        client.create_topic("orders", partitions=4)
        with client.producer() as producer:
            producer.send("orders", [(b"user-1", b"hello", [("trace", b"1")])])
        for r in client.consume("orders", partition=0, follow=False):
            print(r.offset, r.key, r.value, r.headers)
"""

from .client import DEFAULT_CHANNEL_OPTIONS, TOPIC_CONFIG_KEYS, Client, topic_config
from .consumer import consume
from .errors import (
    AuthError,
    BrokerUnavailableError,
    CancelledError,
    CorruptBatchError,
    FailedPreconditionError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ProduceError,
    RequestTimeoutError,
    ResourceExhaustedError,
    RillError,
    TopicExistsError,
    TopicNotFoundError,
    UnsupportedCompressionError,
    from_grpc_error,
)
from .partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive
from .producer import PendingBatch, ProduceResult, Producer
from .records import ConsumedRecord, ProducerRecord

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "TOPIC_CONFIG_KEYS",
    "AuthError",
    "BrokerUnavailableError",
    "CancelledError",
    "Client",
    "ConsumedRecord",
    "CorruptBatchError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "OffsetOutOfRangeError",
    "PendingBatch",
    "ProduceError",
    "ProduceResult",
    "Producer",
    "ProducerRecord",
    "RequestTimeoutError",
    "ResourceExhaustedError",
    "RillError",
    "StickyPartitioner",
    "TopicExistsError",
    "TopicNotFoundError",
    "UnsupportedCompressionError",
    "consume",
    "from_grpc_error",
    "murmur2",
    "partition_for_key",
    "to_positive",
    "topic_config",
]
