/**
 * A hand-written decoder of Fetch responses for the consumer's hot path (the wire format of
 * `proto/rill/v1/log.proto` and `record.proto`). It keeps each batch as its raw bytes until the
 * consumer takes it, then turns the records of an uncompressed batch straight into
 * `ConsumedRecord`s: no intermediate generated `Record` objects, and keys, values and header values
 * are `Buffer` views into the response, not copies. (So a record kept alive keeps its whole
 * response's bytes alive.)
 *
 * Anything off the common path (compressed batches, a batch whose records field is split) goes
 * through the generated `Batch` codec and {@link decodeBatch}, so both paths give the same records.
 * The unit tests check that they agree on random batches. Both refuse a batch whose records do not
 * number its `record_count` (a {@link CorruptBatchError}), since record i's offset is base + i.
 */
import { Batch } from "../gen/rill/v1/record.js";
import { type ConsumedRecord, corruptCount, decodeBatch, type RecordHeader } from "../records.js";

/** A Fetch response whose batches are still encoded. */
export interface RawFetchResponse {
  /** Each an encoded `Batch` message. Empty in a heartbeat. */
  batches: Buffer[];
  highWatermark: bigint;
  logStartOffset: bigint;
}

/** A cursor over protobuf bytes; throws on truncated input, like the generated reader. */
class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  /** A varint up to 2^53 (tags, lengths, counts). */
  uint(): number {
    const buf = this.buf;
    let b = this.byte();
    if (b < 0x80) return b;
    let v = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 8; i++) {
      b = this.byte();
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
    }
    throw new Error(`varint too long at ${this.pos} of ${buf.length}`);
  }

  /** An int64 varint, as a number (values past 2^53 lose precision, as `Number(bigint)` would). */
  int64(): number {
    const start = this.pos;
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
    }
    this.pos = start;
    return Number(this.int64Big());
  }

  /** An int64 varint, as a bigint. */
  int64Big(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, v);
    }
    throw new Error("int64 varint too long");
  }

  byte(): number {
    if (this.pos >= this.end) throw new Error("premature end of message");
    return this.buf[this.pos++]!;
  }

  /** Skips `n` bytes; returns where they started. */
  take(n: number): number {
    const at = this.pos;
    if (n > this.end - at) throw new Error("premature end of message");
    this.pos = at + n;
    return at;
  }

  /** The bytes of a length-delimited field, as a view. */
  bytes(): Buffer {
    const n = this.uint();
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  /** Skips a field of wire type `wt` (groups are not used by this protocol). */
  skip(wt: number): void {
    if (wt === 0) this.int64Big();
    else if (wt === 1) this.take(8);
    else if (wt === 2) this.take(this.uint());
    else if (wt === 5) this.take(4);
    else throw new Error(`unsupported wire type ${wt}`);
  }
}

/** Decodes a Fetch response, leaving its batches encoded (the Fetch response deserializer). */
export function decodeFetchResponse(buf: Buffer): RawFetchResponse {
  const r = new Reader(buf, 0, buf.length);
  const out: RawFetchResponse = { batches: [], highWatermark: 0n, logStartOffset: 0n };
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x0a) out.batches.push(r.bytes());
    else if (tag === 0x10) out.highWatermark = r.int64Big();
    else if (tag === 0x18) out.logStartOffset = r.int64Big();
    else r.skip(tag & 7);
  }
  return out;
}

/** The records of encoded batches with offset >= `fromOffset` (see {@link decodeBatch}). */
export function decodeRawBatches(
  batches: readonly Buffer[],
  topic: string,
  partition: number,
  fromOffset: bigint,
): ConsumedRecord[] {
  const out: ConsumedRecord[] = [];
  for (const b of batches) decodeRawBatch(b, topic, partition, fromOffset, out);
  return out;
}

/** One encoded batch's records with offset >= `fromOffset`, appended to `out`. */
export function decodeRawBatch(
  buf: Buffer,
  topic: string,
  partition: number,
  fromOffset: bigint,
  out: ConsumedRecord[],
): ConsumedRecord[] {
  const r = new Reader(buf, 0, buf.length);
  let baseOffset = 0n;
  let recordCount = 0;
  let appendTime = 0;
  let compression = 0;
  let records = -1; // start of the RecordBatch, -1 if absent
  let recordsEnd = 0;
  let plain = true; // the fast path applies
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x11) baseOffset = buf.readBigUInt64LE(r.take(8));
    else if (tag === 0x1d) recordCount = buf.readUInt32LE(r.take(4));
    else if (tag === 0x21) appendTime = Number(buf.readBigUInt64LE(r.take(8)));
    else if (tag === 0x38) compression = r.uint();
    else if (tag === 0x42 && records < 0) {
      const n = r.uint();
      records = r.take(n);
      recordsEnd = records + n;
    } else {
      if (tag === 0x42 || tag === 0x4a) plain = false;
      r.skip(tag & 7);
    }
  }
  if (!plain || compression > 1) return decodeBatch(Batch.decode(buf), topic, partition, fromOffset, out);
  if (baseOffset + BigInt(recordCount) <= fromOffset && recordCount > 0) return out;
  if (records < 0) {
    if (recordCount !== 0) throw corruptCount(topic, partition, baseOffset, recordCount, 0);
    return out;
  }
  const skip = fromOffset > baseOffset ? Number(fromOffset - baseOffset) : 0;
  const rr = new Reader(buf, records, recordsEnd);
  const before = out.length;
  let i = 0;
  let offset = baseOffset + BigInt(skip);
  while (rr.pos < rr.end) {
    const tag = rr.uint();
    if (tag !== 0x0a) {
      rr.skip(tag & 7);
      continue;
    }
    const len = rr.uint();
    const start = rr.take(len);
    if (i++ < skip) continue;
    out.push(decodeRecord(new Reader(buf, start, start + len), topic, partition, offset, appendTime));
    offset++;
  }
  if (i !== recordCount) {
    out.length = before; // none of this batch's records: their offsets cannot be trusted
    throw corruptCount(topic, partition, baseOffset, recordCount, i);
  }
  return out;
}

function decodeRecord(
  r: Reader,
  topic: string,
  partition: number,
  offset: bigint,
  appendTime: number,
): ConsumedRecord {
  let key: Buffer | null = null;
  let value: Buffer | undefined;
  const headers: RecordHeader[] = [];
  let timestamp = appendTime;
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x0a) key = r.bytes();
    else if (tag === 0x12) value = r.bytes();
    else if (tag === 0x1a) {
      const len = r.uint();
      const start = r.take(len);
      headers.push(decodeHeader(new Reader(r.buf, start, start + len)));
    } else if (tag === 0x20) timestamp = r.int64();
    else r.skip(tag & 7);
  }
  if (key !== null && key.length === 0) key = null;
  return { topic, partition, offset, key, value: value ?? r.buf.subarray(0, 0), headers, timestamp };
}

function decodeHeader(r: Reader): RecordHeader {
  let key = "";
  let value: Buffer | undefined;
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x0a) {
      const n = r.uint();
      const at = r.take(n);
      key = r.buf.toString("utf8", at, at + n);
    } else if (tag === 0x12) value = r.bytes();
    else r.skip(tag & 7);
  }
  return { key, value: value ?? r.buf.subarray(0, 0) };
}
