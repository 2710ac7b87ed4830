"""Reading one partition over the server-streaming ``LogService.Fetch``.

:func:`consume` yields records from a start offset (an int, ``"earliest"`` or ``"latest"``). With
``follow`` it waits at the end of the log for new records forever (the broker sends empty heartbeat
responses meanwhile); without it, it stops at the high watermark of the first response.

A stream broken with a retriable status (UNAVAILABLE: a broker restart, a lost connection;
DEADLINE_EXCEEDED; ABORTED) is opened again from the offset after the last record yielded, after
an exponential backoff with jitter; after ``max_retries`` failures in a row without a response in
between, the last error is raised. Other statuses are raised at once as :class:`RillError`
subclasses carrying the broker's message (e.g. OffsetOutOfRangeError, TopicNotFoundError).

Leaving the loop (break, an exception, ``close()`` on the generator) cancels the stream.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Literal, Union

import grpc

from ._stubs import log_pb2
from .errors import BrokerUnavailableError, InvalidArgumentError, RillError, from_grpc_error
from .records import ConsumedRecord, decode_batch

if TYPE_CHECKING:
    from .client import Client

StartOffset = Union[int, Literal["earliest", "latest"]]


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Seconds to wait before attempt ``failures + 1``: exponential, capped, with 50-100% jitter."""
    return min(maximum, initial * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


def consume(
    client: Client,
    topic: str,
    partition: int,
    offset: StartOffset = "earliest",
    *,
    follow: bool = True,
    max_records: int | None = None,
    max_bytes: int = 0,
    max_retries: int = 10,
    initial_backoff: float = 0.1,
    max_backoff: float = 5.0,
) -> Generator[ConsumedRecord, None, None]:
    """Yields the records of ``topic``/``partition`` from ``offset``. See the module docstring.

    :param max_records: stop after this many records (None: no limit).
    :param max_bytes: upper bound on the batch bytes of one Fetch response; 0 is the broker's default.
    :param max_retries: failures in a row (without progress) before a retriable error is raised.
    """
    if isinstance(offset, bool) or not (isinstance(offset, int) or offset in ("earliest", "latest")):
        raise InvalidArgumentError(f'offset must be an int, "earliest" or "latest", got {offset!r}')
    if max_records is not None and max_records <= 0:
        return
    # The offset of the next record to yield; None until known when starting at a position.
    next_offset: int | None = offset if isinstance(offset, int) else None
    # Without follow: where to stop (the high watermark of the first response).
    end: int | None = None
    yielded = 0
    failures = 0
    while True:
        request = log_pb2.FetchRequest(topic=topic, partition=partition, max_bytes=max_bytes, follow=follow)
        if next_offset is not None:
            request.offset = next_offset
        else:
            request.position = (
                log_pb2.OFFSET_POSITION_EARLIEST if offset == "earliest" else log_pb2.OFFSET_POSITION_LATEST
            )
        call = client.log.Fetch(request, metadata=client.metadata)
        try:
            try:
                for response in call:
                    failures = 0
                    if not follow and end is None:
                        end = response.high_watermark
                    if not response.batches and next_offset is None and follow:
                        # A heartbeat: the stream is at the tail, so nothing below it is missed.
                        next_offset = response.high_watermark
                    for batch in response.batches:
                        for record in decode_batch(topic, partition, batch, -1 if next_offset is None else next_offset):
                            if end is not None and record.offset >= end:
                                return
                            next_offset = record.offset + 1
                            yielded += 1
                            yield record
                            if max_records is not None and yielded >= max_records:
                                return
                    if end is not None and next_offset is not None and next_offset >= end:
                        return
                if not follow:
                    return
                error: RillError = BrokerUnavailableError(f"the Fetch stream of {topic}/{partition} ended")
            except grpc.RpcError as e:
                error = from_grpc_error(e)
                if not error.retriable:
                    raise error from None
        finally:
            call.cancel()
        failures += 1
        if failures > max_retries:
            raise error
        time.sleep(backoff_delay(failures, initial_backoff, max_backoff))
