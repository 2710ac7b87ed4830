/**
 * Named storage errors. Storage throws only these (or Node's own I/O errors); `rpc/status.ts`
 * maps them to gRPC status codes (DESIGN §2). Storage itself knows nothing of gRPC.
 */
export class StorageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An offset below the log start or above the log end was asked for. */
export class OffsetOutOfRangeError extends StorageError {
  constructor(
    readonly offset: bigint,
    readonly logStartOffset: bigint,
    readonly logEndOffset: bigint,
  ) {
    super(`offset ${offset} is outside the log [${logStartOffset}, ${logEndOffset}]`);
  }
}

/**
 * A batch read from disk failed its CRC or framing check: the data on disk is damaged. `lost`, when
 * the reader could tell, is the range of offsets that cannot be served, [from, resumeAt): a reader
 * skips the damage by reading from `resumeAt`.
 */
export class CorruptBatchError extends StorageError {
  constructor(
    readonly file: string,
    readonly position: number,
    readonly reason: string,
    readonly lost: { from: bigint; resumeAt: bigint } | null = null,
  ) {
    const range = lost === null ? "" : ` (offsets ${lost.from} to ${lost.resumeAt - 1n})`;
    super(`corrupt batch in ${file} at byte ${position}${range}: ${reason}`);
  }
}

/** A batch is larger than the partition accepts (max.batch.bytes) or than a segment can hold. */
export class BatchTooLargeError extends StorageError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`batch of ${size} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** The log (or the partition owning it) was closed or deleted. */
export class LogClosedError extends StorageError {
  constructor(what: string) {
    super(`${what} is closed`);
  }
}
