/**
 * Client errors. Every failure a client method reports is a {@link RillError}: `code` is the gRPC
 * status (from the broker, or chosen by the client for local failures) and `retriable` says whether
 * trying the same thing again, unchanged, can succeed (STYLE habit 7; KafkaJS `retriable`, connect-es
 * `ConnectError.from`). The original error is kept in `cause` for logs.
 *
 * Which statuses are retriable, and why:
 * - UNAVAILABLE (broker shutting down, connection refused or lost): yes — the next broker or the
 *   restarted one will answer.
 * - DEADLINE_EXCEEDED: yes — a slow broker is usually a transient condition. Writes retried after a
 *   deadline may be duplicated (the first attempt may have landed): at-least-once.
 * - ABORTED: yes — gRPC's own guidance for "retry at a higher level".
 * - RESOURCE_EXHAUSTED: no. The broker uses it for hard limits (a batch over max.batch.bytes, a
 *   full disk); resending the same bytes fails the same way. The client has no quotas to wait out.
 * - FAILED_PRECONDITION: no — it means "not the leader" or "stale group generation"; fixing it needs
 *   new metadata or a rejoin, not a blind retry.
 * - NOT_FOUND, OUT_OF_RANGE, INVALID_ARGUMENT, ALREADY_EXISTS, UNAUTHENTICATED, PERMISSION_DENIED,
 *   CANCELLED, INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS: no.
 */
import { type Metadata, type ServiceError, status } from "@grpc/grpc-js";

/** gRPC status codes, re-exported so callers need not import grpc-js to read `error.code`. */
export const Code = status;
export type Code = status;

const RETRIABLE_CODES: ReadonlySet<number> = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.ABORTED,
]);

/** Whether an error with this gRPC status is worth retrying unchanged. */
export function isRetriableCode(code: number): boolean {
  return RETRIABLE_CODES.has(code);
}

/** Options common to every {@link RillError} constructor. */
export interface RillErrorOptions {
  /** gRPC status; defaults to the class's own. */
  code?: number;
  /** Overrides the default retriability of the code. */
  retriable?: boolean;
  cause?: unknown;
  /** Trailing metadata of the failed call, if any. */
  metadata?: Metadata | undefined;
}

/** Base class of every error the client reports. */
export class RillError extends Error {
  /** The gRPC status code (see {@link Code}). */
  readonly code: number;
  /** True if the same request may succeed when sent again. */
  readonly retriable: boolean;
  /** Trailing metadata of the failed call (e.g. `rill-appended-batches`), when there was a call. */
  readonly metadata: Metadata | undefined;

  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? status.UNKNOWN;
    this.retriable = options.retriable ?? isRetriableCode(this.code);
    this.metadata = options.metadata;
  }

  /** The status name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

function withCode(options: RillErrorOptions, code: number): RillErrorOptions {
  return { ...options, code: options.code ?? code };
}

/** NOT_FOUND: no such topic or partition. */
export class TopicNotFoundError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.NOT_FOUND));
  }
}

/** OUT_OF_RANGE: an offset before the log start or past the high watermark. */
export class OffsetOutOfRangeError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.OUT_OF_RANGE));
  }
}

/** INVALID_ARGUMENT: a bad name, an empty or malformed batch, a partition out of range... */
export class InvalidArgumentError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.INVALID_ARGUMENT));
  }
}

/** ALREADY_EXISTS: the topic already exists. */
export class TopicExistsError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.ALREADY_EXISTS));
  }
}

/** RESOURCE_EXHAUSTED: a broker limit, e.g. a batch larger than max.batch.bytes. Not retriable. */
export class ResourceExhaustedError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.RESOURCE_EXHAUSTED));
  }
}

/** FAILED_PRECONDITION: not the partition's leader, stale group generation. */
export class FailedPreconditionError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.FAILED_PRECONDITION));
  }
}

/** UNAVAILABLE: the broker cannot be reached or is shutting down. Retriable. */
export class BrokerUnavailableError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.UNAVAILABLE));
  }
}

/** DEADLINE_EXCEEDED: the call took longer than its deadline. Retriable. */
export class RequestTimeoutError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.DEADLINE_EXCEEDED));
  }
}

/** UNAUTHENTICATED or PERMISSION_DENIED. */
export class AuthError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.PERMISSION_DENIED));
  }
}

/** CANCELLED: the call was cancelled (usually by this client, e.g. a consumer loop was left). */
export class CancelledError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.CANCELLED));
  }
}

/** A batch uses a compression codec this client cannot decode (ZSTD, LZ4 today). */
export class UnsupportedCompressionError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode(options, status.UNIMPLEMENTED));
  }
}

/**
 * DATA_LOSS: a fetched batch is inconsistent (e.g. it holds more or fewer records than its
 * `record_count`), so its records' offsets cannot be trusted. Not retriable: fetching the same batch
 * again gives the same bytes.
 */
export class CorruptBatchError extends RillError {
  constructor(message: string, options: RillErrorOptions = {}) {
    super(message, withCode({ retriable: false, ...options }, status.DATA_LOSS));
  }
}

/** The producer, consumer or client was closed. */
export class ClientClosedError extends RillError {
  constructor(message = "the client is closed", options: RillErrorOptions = {}) {
    super(message, withCode(options, status.CANCELLED));
  }
}

function isServiceError(e: unknown): e is ServiceError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "number" &&
    "details" in e &&
    e instanceof Error
  );
}

/**
 * Normalizes anything thrown into a {@link RillError}. A RillError passes through unchanged; a grpc-js
 * `ServiceError` becomes the subclass for its status, with the broker's message, the trailers and the
 * original as `cause`; anything else becomes a non-retriable RillError with code UNKNOWN.
 */
export function fromGrpcError(e: unknown): RillError {
  if (e instanceof RillError) return e;
  if (isServiceError(e)) {
    const message = e.details || e.message;
    const options: RillErrorOptions = { code: e.code, cause: e, metadata: e.metadata };
    switch (e.code) {
      case status.NOT_FOUND:
        return new TopicNotFoundError(message, options);
      case status.OUT_OF_RANGE:
        return new OffsetOutOfRangeError(message, options);
      case status.INVALID_ARGUMENT:
        return new InvalidArgumentError(message, options);
      case status.ALREADY_EXISTS:
        return new TopicExistsError(message, options);
      case status.RESOURCE_EXHAUSTED:
        return new ResourceExhaustedError(message, options);
      case status.FAILED_PRECONDITION:
        return new FailedPreconditionError(message, options);
      case status.UNAVAILABLE:
        return new BrokerUnavailableError(message, options);
      case status.DEADLINE_EXCEEDED:
        return new RequestTimeoutError(message, options);
      case status.UNAUTHENTICATED:
      case status.PERMISSION_DENIED:
        return new AuthError(message, options);
      case status.CANCELLED:
        return new CancelledError(message, options);
      default:
        return new RillError(message, options);
    }
  }
  const message = e instanceof Error ? e.message : String(e);
  return new RillError(message, { code: status.UNKNOWN, cause: e, retriable: false });
}
