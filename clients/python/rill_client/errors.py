"""Errors of the Python client. Every failure is a :class:`RillError` whose ``code`` is the gRPC status
(from the broker, or chosen by the client for local failures), whose message is the broker's, and
whose ``retriable`` says whether sending the same request again can succeed: UNAVAILABLE,
DEADLINE_EXCEEDED and ABORTED are retriable, everything else is not (the same rule as the TS client,
clients/ts/src/errors.ts).

A failed Produce also says how far it got: the broker's ``rill-appended-batches`` trailer becomes
``appended_batches`` (the batches of the stream before the refused one were appended), and the
producer lists the batches it could not confirm in :class:`ProduceError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from .producer import PendingBatch

RETRIABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})

APPENDED_BATCHES_TRAILER = "rill-appended-batches"


class RillError(Exception):
    """Base class of every error the client raises."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        retriable: bool | None = None,
        trailers: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code or self.default_code
        self.retriable: bool = self.code in RETRIABLE_CODES if retriable is None else retriable
        self.trailers: tuple[tuple[str, str | bytes], ...] = tuple(trailers)

    @property
    def appended_batches(self) -> int | None:
        """For a failed Produce: how many batches of the stream the broker appended, if it said."""
        for key, value in self.trailers:
            if key == APPENDED_BATCHES_TRAILER:
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class TopicNotFoundError(RillError):
    """NOT_FOUND: no such topic or partition."""

    default_code = grpc.StatusCode.NOT_FOUND


class OffsetOutOfRangeError(RillError):
    """OUT_OF_RANGE: the offset is before the log start or past the high watermark."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class InvalidArgumentError(RillError):
    """INVALID_ARGUMENT: a bad name, an empty or oversized batch, a bad setting."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class TopicExistsError(RillError):
    """ALREADY_EXISTS: the topic already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhaustedError(RillError):
    """RESOURCE_EXHAUSTED: a broker limit (batch too large, disk full, too many batches)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(RillError):
    """FAILED_PRECONDITION: not the partition's leader, stale group generation."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class BrokerUnavailableError(RillError):
    """UNAVAILABLE: the broker is shutting down or cannot be reached."""

    default_code = grpc.StatusCode.UNAVAILABLE


class RequestTimeoutError(RillError):
    """DEADLINE_EXCEEDED: no answer in time."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class AuthError(RillError):
    """UNAUTHENTICATED or PERMISSION_DENIED."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class CancelledError(RillError):
    """CANCELLED: the call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


class UnsupportedCompressionError(RillError):
    """A fetched batch uses a compression this client cannot decode (zstd, lz4)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class CorruptBatchError(RillError):
    """A fetched batch does not hold the number of records its header says."""

    default_code = grpc.StatusCode.DATA_LOSS


class ProduceError(RillError):
    """A Producer flush failed. ``cause`` is the mapped broker error; ``unsent`` holds the batches
    that were not confirmed as appended (the refused one and every one after it), in send order, so
    the caller can send their records again."""

    def __init__(self, cause: RillError, unsent: list[PendingBatch], results_before: int) -> None:
        count = sum(len(b.records) for b in unsent)
        super().__init__(
            f"{cause.message} ({results_before} batch(es) appended before the failure; "
            f"{len(unsent)} batch(es) with {count} record(s) not confirmed)",
            code=cause.code,
            retriable=cause.retriable,
            trailers=cause.trailers,
        )
        self.cause = cause
        self.unsent = unsent


_BY_CODE: dict[grpc.StatusCode, type[RillError]] = {
    grpc.StatusCode.NOT_FOUND: TopicNotFoundError,
    grpc.StatusCode.OUT_OF_RANGE: OffsetOutOfRangeError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.ALREADY_EXISTS: TopicExistsError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: BrokerUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RequestTimeoutError,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: AuthError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def from_grpc_error(err: grpc.RpcError) -> RillError:
    """The RillError subclass for a failed call's status, with the broker's message and trailers."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = err.details() if isinstance(err, grpc.Call) else None
    trailers = (err.trailing_metadata() or ()) if isinstance(err, grpc.Call) else ()
    cls = _BY_CODE.get(code, RillError)
    return cls(details or str(err), code=code, trailers=tuple((k, v) for k, v in trailers))
