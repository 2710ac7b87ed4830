/**
 * Records as the application sees them, and the decoding of the stored batches a Fetch response
 * carries into them. A batch is served whole, so the first batch of a fetch may begin before the
 * offset asked for: records below `fromOffset` are skipped here. Record i of a batch has offset
 * `baseOffset + i`; a record without its own timestamp takes the batch's append time.
 *
 * Compression: NONE/UNSPECIFIED batches carry a RecordBatch; GZIP ones are gunzipped with node:zlib;
 * ZSTD and LZ4 are refused with an {@link UnsupportedCompressionError} (this client cannot decode
 * them yet).
 *
 * Record count: a batch must hold exactly `record_count` records (the broker trusts that field for
 * compressed batches, whose records it never decodes, and assigns offsets by it). Any other number
 * raises a {@link CorruptBatchError} instead of handing out offsets that overlap the next batch.
 *
 * Keys: on the wire an absent key and an empty key are the same thing (proto3 `bytes`), so a record
 * produced with an empty key is read back with `key: null`.
 */
import { gunzipSync } from "node:zlib";
import { CorruptBatchError, InvalidArgumentError, UnsupportedCompressionError } from "./errors.js";
import { type Batch, Compression, RecordBatch } from "./gen/rill/v1/record.js";

/** One header of a record. Order and duplicates are kept as produced. */
export interface RecordHeader {
  key: string;
  value: Buffer;
}

/**
 * A record read from a partition. The consumer hands out `key`, `value` and header values as views
 * into the Fetch response they came in (no copy): keeping a record keeps that response's bytes.
 */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  /** The record's offset in its partition. */
  offset: bigint;
  /** The key, or null when the record had none (or an empty one). */
  key: Buffer | null;
  value: Buffer;
  headers: RecordHeader[];
  /** Milliseconds since the Unix epoch: the producer's timestamp, else the broker's append time. */
  timestamp: number;
}

/** Decodes the RecordBatch of a stored batch, decompressing it if needed. */
export function batchRecords(batch: Batch): RecordBatch {
  switch (batch.compression) {
    case Compression.COMPRESSION_UNSPECIFIED:
    case Compression.COMPRESSION_NONE:
      return batch.records ?? { records: [] };
    case Compression.COMPRESSION_GZIP: {
      let raw: Buffer;
      try {
        raw = gunzipSync(batch.compressedRecords);
      } catch (e) {
        throw new InvalidArgumentError(
          `batch at offset ${batch.baseOffset} has corrupt gzip data: ${(e as Error).message}`,
          { cause: e },
        );
      }
      return RecordBatch.decode(raw);
    }
    case Compression.COMPRESSION_ZSTD:
    case Compression.COMPRESSION_LZ4: {
      const name = batch.compression === Compression.COMPRESSION_ZSTD ? "zstd" : "lz4";
      throw new UnsupportedCompressionError(
        `batch at offset ${batch.baseOffset} is ${name}-compressed; this client supports only none and gzip`,
      );
    }
    default:
      throw new UnsupportedCompressionError(
        `batch at offset ${batch.baseOffset} has unknown compression ${batch.compression}`,
      );
  }
}

/**
 * The records of one stored batch with offset >= `fromOffset`, appended to `out` (which is
 * returned). Returns `out` unchanged for a batch that ends before `fromOffset`.
 */
export function decodeBatch(
  batch: Batch,
  topic: string,
  partition: number,
  fromOffset: bigint,
  out: ConsumedRecord[] = [],
): ConsumedRecord[] {
  const base = batch.baseOffset;
  if (base + BigInt(batch.recordCount) <= fromOffset && batch.recordCount > 0) return out;
  const records = batchRecords(batch).records;
  if (records.length !== batch.recordCount) {
    throw corruptCount(topic, partition, base, batch.recordCount, records.length);
  }
  const skip = fromOffset > base ? Number(fromOffset - base) : 0;
  const appendTime = Number(batch.appendTimeMs);
  for (let i = skip; i < records.length; i++) {
    const r = records[i]!;
    out.push({
      topic,
      partition,
      offset: base + BigInt(i),
      key: r.key.length === 0 ? null : r.key,
      value: r.value,
      headers: r.headers,
      timestamp: r.timestampMs === undefined ? appendTime : Number(r.timestampMs),
    });
  }
  return out;
}

/** The error for a batch whose records do not match its `record_count` (shared with the fast decoder). */
export function corruptCount(
  topic: string,
  partition: number,
  baseOffset: bigint,
  recordCount: number,
  actual: number,
): CorruptBatchError {
  return new CorruptBatchError(
    `corrupt batch in topic "${topic}" partition ${partition} at base offset ${baseOffset}: ` +
      `record_count says ${recordCount} records but it holds ${actual}`,
  );
}

/** Decodes every batch of a fetch response (see {@link decodeBatch}). */
export function decodeBatches(
  batches: readonly Batch[],
  topic: string,
  partition: number,
  fromOffset: bigint,
): ConsumedRecord[] {
  const out: ConsumedRecord[] = [];
  for (const b of batches) decodeBatch(b, topic, partition, fromOffset, out);
  return out;
}
