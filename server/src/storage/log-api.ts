/**
 * The contract between a partition's log (storage/log.ts) and the broker. The broker codes
 * against these types only; storage implements them. Offsets are bigint end to end (int64 on the
 * wire); byte positions and sizes are numbers.
 */
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { FileSystem } from "./fs.js";

/** The per-partition settings storage needs (a subset of a topic's config). */
export interface LogConfig {
  /** Roll to a new segment when the active one would grow past this many bytes. */
  segmentBytes: number;
  /** Roll when the active segment's first batch is older than this (ms); checked on append. */
  segmentMs: number;
  /** Delete a closed segment once its newest batch is older than this (ms); -1 = forever. */
  retentionMs: number;
  /** Delete the oldest closed segments while the log is larger than this; -1 = no limit. */
  retentionBytes: number;
  /** Add an offset-index entry after at least this many bytes of log since the previous one. */
  indexIntervalBytes: number;
}

/** Compression codec numbers, identical to the proto enum rill.v1.Compression. */
export enum CompressionCode {
  Unspecified = 0,
  None = 1,
  Gzip = 2,
  Zstd = 3,
  Lz4 = 4,
}

/** One batch to append. `records` are the producer's bytes, stored verbatim and never decoded. */
export interface AppendInput {
  /**
   * When compression is None/Unspecified: the encoded rill.v1.RecordBatch (stored as Batch field 8).
   * Otherwise: the compressed bytes (stored as Batch field 9).
   */
  records: Uint8Array;
  /** Number of records in the batch, >= 1. */
  recordCount: number;
  compression: CompressionCode;
}

export interface AppendResult {
  baseOffset: bigint;
  recordCount: number;
  appendTimeMs: number;
}

export interface ReadResult {
  /**
   * Whole stored frames, exactly as on disk: each is `0x0a varint(len) Batch`, i.e. this buffer is
   * a valid encoding of the `batches` field of rill.v1.FetchResponse. Empty when nothing to read.
   */
  data: Buffer;
  /** The offset after the last record of the last batch in `data` (= from if data is empty). */
  nextOffset: bigint;
  /** How many batches `data` holds. */
  batchCount: number;
  /**
   * Bytes right after `data` in its memory that belong to this read alone and that the caller may
   * overwrite (0 if none): the fetch path writes FetchResponse's last fields there instead of
   * copying `data` into a new buffer (rpc/codecs/fetch-response.ts).
   */
  spare: number;
}

export interface LogOptions {
  /** The partition directory, e.g. <data>/topics/orders/0. Created if missing. */
  dir: string;
  config: LogConfig;
  clock: Clock;
  logger: Logger;
  /** The file-system seam; tests inject faults through it. Defaults to node:fs. */
  fs?: FileSystem;
  /**
   * false after an unclean shutdown: scan every segment from the recovery point on (every segment
   * if there is none; recovery-point.ts), truncate at the first bad frame (a torn write: every
   * later segment is deleted if offsets were lost there), rebuild indexes that disagree with the log. true skips
   * the scan (indexes are still sanity-checked, and a missing or inconsistent one is rebuilt).
   */
  cleanShutdown: boolean;
}

/** What recovery found, for logs and tests. */
export interface RecoveryReport {
  /**
   * Bytes cut from the log (torn write, garbage, bad CRC), including the whole segments deleted
   * after a torn write in a segment that was not the last one.
   */
  truncatedBytes: number;
  /** Index files rebuilt because they were missing or disagreed with the log. */
  rebuiltIndexes: number;
}

export interface PartitionLog {
  /** The oldest retained offset (base offset of the first segment). */
  readonly logStartOffset: bigint;
  /** The offset the next appended record will get. */
  readonly logEndOffset: bigint;
  /** Total bytes of segment .log files. */
  readonly sizeBytes: number;
  readonly segmentCount: number;
  /** What opening the log found and repaired. */
  readonly recovery: RecoveryReport;

  /**
   * Appends batches in order, synchronously (page cache). Offsets are assigned densely: batch i
   * gets the log end offset, which then grows by its recordCount; all batches of one call share one
   * append time, max(clock.now(), the previous append time). Rolls a new segment first when the
   * active one would grow past segment.bytes or its first batch is older than segment.ms; a frame
   * larger than segment.bytes goes alone into a fresh segment (max.batch.bytes is the broker's
   * check). Inputs bound for the same segment are written with one vectored write, zero-copy.
   * All-or-nothing: on an I/O error (ENOSPC, EIO, short write) the files are cut back, the log is
   * left as it was and the error is rethrown. Throws RangeError/TypeError for a malformed input
   * (recordCount < 1, compression outside 0..127) and BatchTooLargeError only past the format's
   * hard limit (MAX_FRAME_BYTES, 2 GiB - 1), before writing anything.
   */
  append(inputs: readonly AppendInput[]): AppendResult[];

  /**
   * Reads whole frames starting with the batch that contains `offset`, up to `maxBytes` of frames
   * (at least one whole frame even if it is larger), never past `upTo` (exclusive, defaults to
   * logEndOffset): a batch is returned only if it ends at or before upTo, so a read at an offset
   * whose batch straddles upTo is empty. A read may stop at a segment's end; the caller loops from
   * nextOffset. Throws OffsetOutOfRangeError if offset < logStartOffset or > logEndOffset (also
   * when retention deletes the segment before the read takes hold of it; a read already under way
   * finishes). Verifies each returned frame's CRC and that offsets are dense; throws
   * CorruptBatchError naming file, position, the lost offsets and the offset to resume from if the
   * batch holding `offset` is damaged (a later bad frame ends the read early, so the good prefix is
   * served; a read from the resume offset goes on). An index entry is trusted only once the frame it
   * points at is the batch it names (segment-reader.ts). If damage in fsynced data was cut out (found while rebuilding an index), those
   * offsets are lost: a read inside that hole starts at the first batch after it.
   */
  read(offset: bigint, maxBytes: number, upTo?: bigint): Promise<ReadResult>;

  /**
   * The base offset of the first batch whose append time is >= timestampMs, or null if none. A
   * time before the oldest retained batch gives logStartOffset's batch.
   */
  offsetForTimestamp(timestampMs: number): Promise<bigint | null>;

  /**
   * fsyncs everything appended so far (the .log and index files of every segment written since
   * the last flush, rolled ones included); resolves with the log end offset it covers. Calls made
   * while an fsync runs share the single next one.
   */
  flush(): Promise<bigint>;

  /**
   * After a failed flush: reads back what was written since the last successful fsync, checks it
   * (CRC, dense offsets), writes it again in place with the index files and fsyncs everything, so
   * the log is durable again. Rejects with the I/O error while the disk still fails, or with
   * CorruptBatchError if the data can no longer be read back intact (only a restart can then settle
   * the log). Resolves with the bytes rewritten. The caller must not append meanwhile.
   */
  rewriteSinceLastFlush(): Promise<number>;

  /**
   * Applies retention.ms and retention.bytes to whole closed segments, never the last one (an
   * expired non-empty active segment is rolled first); returns the number of segments deleted.
   * logStartOffset moves synchronously, before the files are gone.
   */
  applyRetention(): Promise<number>;

  /** Flushes and closes every file. Further calls throw LogClosedError. */
  close(): Promise<void>;

  /** Closes and removes every file and the directory. */
  destroy(): Promise<void>;
}
