/**
 * The one place that knows gRPC status codes (DESIGN §2, STYLE habit 6). Storage and broker throw
 * named errors; `toServiceError` maps them to a status with a message that tells the user what to
 * do, and wraps anything unknown as INTERNAL, keeping the cause for the log only.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  BeyondHighWatermarkError,
  BrokerError,
  FailedPreconditionError,
  GroupNotFoundError,
  InvalidRequestError,
  LimitExceededError,
  PartitionNotFoundError,
  PartitionOfflineError,
  ShuttingDownError,
  StartingError,
  TopicExistsError,
  TopicNotFoundError,
} from "../broker/errors.js";
import { OffsetStoreOfflineError } from "../groups/offset-store.js";
import type { Logger } from "../logger.js";
import {
  BatchTooLargeError,
  CorruptBatchError,
  LogClosedError,
  OffsetOutOfRangeError,
} from "../storage/errors.js";
import { PermissionDeniedError, QuotaWaitEndedError, UnauthenticatedError } from "./auth/errors.js";
import { MalformedBatchError } from "./codecs/record-batch.js";

export interface RpcStatus {
  code: status;
  message: string;
}

export function statusOf(err: unknown): RpcStatus {
  if (err instanceof UnauthenticatedError) return { code: status.UNAUTHENTICATED, message: err.message };
  if (err instanceof PermissionDeniedError) return { code: status.PERMISSION_DENIED, message: err.message };
  if (err instanceof QuotaWaitEndedError) return { code: status.CANCELLED, message: err.message };
  if (
    err instanceof TopicNotFoundError ||
    err instanceof PartitionNotFoundError ||
    err instanceof GroupNotFoundError
  ) {
    return { code: status.NOT_FOUND, message: err.message };
  }
  if (err instanceof BeyondHighWatermarkError) return { code: status.OUT_OF_RANGE, message: err.message };
  if (err instanceof FailedPreconditionError)
    return { code: status.FAILED_PRECONDITION, message: err.message };
  if (err instanceof TopicExistsError) return { code: status.ALREADY_EXISTS, message: err.message };
  if (err instanceof InvalidRequestError || err instanceof MalformedBatchError) {
    return { code: status.INVALID_ARGUMENT, message: err.message };
  }
  if (err instanceof LimitExceededError || err instanceof BatchTooLargeError) {
    return { code: status.RESOURCE_EXHAUSTED, message: err.message };
  }
  if (err instanceof OffsetOutOfRangeError) {
    return {
      code: status.OUT_OF_RANGE,
      message: `${err.message}; read from an offset in that range, or use EARLIEST / LATEST`,
    };
  }
  if (err instanceof CorruptBatchError) {
    const skip =
      err.lost === null
        ? "the broker log names the damage; read from a later offset to skip it"
        : `these offsets are lost on this broker; read from offset ${err.lost.resumeAt} to skip them`;
    return { code: status.DATA_LOSS, message: `${err.message}; the batch cannot be served: ${skip}` };
  }
  if (err instanceof OffsetStoreOfflineError) return { code: status.UNAVAILABLE, message: err.message };
  if (err instanceof PartitionOfflineError) return { code: status.UNAVAILABLE, message: err.message };
  if (err instanceof StartingError) return { code: status.UNAVAILABLE, message: err.message };
  if (err instanceof ShuttingDownError || err instanceof LogClosedError) {
    return {
      code: status.UNAVAILABLE,
      message: "the broker is shutting down or the partition is closing; retry",
    };
  }
  if (err instanceof BrokerError) return { code: status.INTERNAL, message: err.message };
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return {
      code: status.RESOURCE_EXHAUSTED,
      message: "the broker's disk is full; nothing was appended, retry later",
    };
  }
  if (code === "EMFILE" || code === "ENFILE") {
    return {
      code: status.RESOURCE_EXHAUSTED,
      message:
        "the broker ran out of file descriptors (each partition keeps 3 files open); raise its limit (ulimit -n) or use fewer partitions",
    };
  }
  if (code === "EIO" && (err as NodeJS.ErrnoException).syscall === "read") {
    return {
      code: status.UNAVAILABLE,
      message: "the broker could not read its disk (EIO); retry later (the broker log names the file)",
    };
  }
  if (code === "EIO" || code === "EROFS") {
    return {
      code: status.UNAVAILABLE,
      message: `the broker hit a storage error (${code}); nothing was appended, retry later`,
    };
  }
  return { code: status.INTERNAL, message: "internal broker error; see the broker log" };
}

/** A ServiceError for a callback or `call.emit("error")`, logging unexpected errors. */
export function toServiceError(err: unknown, logger: Logger, metadata?: Metadata): Partial<ServiceError> {
  const s = statusOf(err);
  if (s.code === status.INTERNAL || s.code === status.DATA_LOSS) logger.error({ err }, s.message);
  else logger.debug({ err: (err as Error)?.message, code: status[s.code] }, "request failed");
  return { code: s.code, details: s.message, message: s.message, metadata: metadata ?? new Metadata() };
}
