/**
 * Encodes a partition's batch by hand, record by record as records are appended, straight into the
 * bytes of the `ProduceRequest` that will carry it (see `proto/rill/v1/log.proto` and
 * `record.proto`). The output is byte-identical to the generated codecs' encoding, without their
 * per-record objects, forks and copies.
 *
 * Layout of the buffer: room reserved for the request header (topic, partition, the `records`
 * tag and length), then each record as a `RecordBatch.records` entry, then (on finish) the
 * trailer. The header is written at finish, right-aligned against the first record, so the request
 * is one contiguous subarray and the records are never moved once written (except when the buffer
 * grows, by doubling).
 */
import { InvalidArgumentError } from "../errors.js";

/** A header ready to encode: its key already UTF-8. */
export interface EncodedHeader {
  key: Buffer;
  value: Buffer;
}

/** A record timestamp (ms): a safe integer, or an int64 as a bigint. */
export type Timestamp = number | bigint | undefined;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Checks that `t` fits an int64 (the wire type of `timestamp_ms`). */
export function checkInt64(t: bigint): bigint {
  if (t < INT64_MIN || t > INT64_MAX) throw new InvalidArgumentError(`timestamp ${t} does not fit an int64`);
  return t;
}

/** Bytes of a varint of a non-negative safe integer. */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Bytes of a length-delimited field (tag < 16) holding `len` bytes; 0 when `len` is 0 (proto3 default). */
function bytesFieldSize(len: number): number {
  return len === 0 ? 0 : 1 + varintSize(len) + len;
}

function timestampSize(t: Timestamp): number {
  if (t === undefined) return 0;
  if (typeof t === "number" && t >= 0) return 1 + varintSize(t);
  if (typeof t === "bigint" && t >= 0n && t <= Number.MAX_SAFE_INTEGER) return 1 + varintSize(Number(t));
  let u = BigInt.asUintN(64, BigInt(t));
  let n = 2;
  while (u >= 0x80n) {
    u >>= 7n;
    n++;
  }
  return n;
}

function headerSize(h: EncodedHeader): number {
  return bytesFieldSize(h.key.length) + bytesFieldSize(h.value.length);
}

/** Size of a `Record` message's body. */
function recordSize(
  key: Buffer | null,
  value: Buffer,
  headers: EncodedHeader[] | null,
  t: Timestamp,
): number {
  let n = bytesFieldSize(key === null ? 0 : key.length) + bytesFieldSize(value.length) + timestampSize(t);
  if (headers !== null) {
    for (const h of headers) n += 1 + varintSize(headerSize(h)) + headerSize(h);
  }
  return n;
}

const MIN_CAPACITY = 512;
/** Room for the fields after the records: compression (2 bytes) and durability (tag + int32 varint). */
const TRAILER_MAX = 2 + 11;

/** One partition's records, encoded as a `ProduceRequest` as they come. */
export class BatchEncoder {
  private buf: Buffer;
  private pos: number;
  /** Where the records begin (the header is written just before, at finish). */
  private readonly start: number;
  private readonly topicBytes: Buffer;

  constructor(
    topic: string,
    private readonly partition: number,
    /** Record bytes the batch is expected to hold (the initial capacity). */
    expectedBytes: number,
  ) {
    this.topicBytes = Buffer.from(topic, "utf8");
    // topic field + partition field (tag + int32 varint) + records field (tag + length varint)
    this.start = bytesFieldSize(this.topicBytes.length) + 6 + 6;
    this.buf = Buffer.allocUnsafe(this.start + Math.max(MIN_CAPACITY, expectedBytes) + TRAILER_MAX);
    this.pos = this.start;
  }

  /** Encoded bytes of the records so far. */
  get recordBytes(): number {
    return this.pos - this.start;
  }

  /** Appends one record (a `RecordBatch.records` entry). */
  append(key: Buffer | null, value: Buffer, headers: EncodedHeader[] | null, t: Timestamp): void {
    const body = recordSize(key, value, headers, t);
    this.reserve(1 + varintSize(body) + body); // exact: a batch sized to its records never regrows
    this.byte(0x0a);
    this.varint(body);
    if (key !== null) this.bytesField(0x0a, key);
    this.bytesField(0x12, value);
    if (headers !== null) {
      for (const h of headers) {
        this.byte(0x1a);
        this.varint(headerSize(h));
        this.bytesField(0x0a, h.key);
        this.bytesField(0x12, h.value);
      }
    }
    if (t !== undefined) {
      this.byte(0x20);
      this.int64(t);
    }
  }

  /** The encoded `RecordBatch` (the records alone), e.g. to compress. */
  records(): Buffer {
    return this.buf.subarray(this.start, this.pos);
  }

  /** The encoded `ProduceRequest` with the records uncompressed (COMPRESSION_NONE). */
  finish(durability: number): Buffer {
    const end = this.pos;
    const recordsLen = end - this.start;
    const header =
      bytesFieldSize(this.topicBytes.length) +
      (this.partition === 0 ? 0 : 1 + varintSize(this.partition)) +
      1 +
      varintSize(recordsLen);
    const from = this.start - header;
    this.pos = from;
    this.bytesField(0x0a, this.topicBytes);
    if (this.partition !== 0) {
      this.byte(0x10);
      this.varint(this.partition);
    }
    this.byte(0x1a);
    this.varint(recordsLen);
    this.pos = end;
    this.byte(0x20);
    this.byte(1); // COMPRESSION_NONE
    if (durability !== 0) {
      this.byte(0x38);
      this.varint(durability);
    }
    return this.buf.subarray(from, this.pos);
  }

  private reserve(n: number): void {
    const need = this.pos + n + TRAILER_MAX;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const grown = Buffer.allocUnsafe(cap);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  private byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** A varint of a non-negative safe integer. */
  private varint(v: number): void {
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v = v < 0x80000000 ? v >>> 7 : Math.floor(v / 0x80);
    }
    buf[this.pos++] = v;
  }

  private bytesField(tag: number, b: Buffer): void {
    if (b.length === 0) return;
    this.buf[this.pos++] = tag;
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** An int64 varint: negative values take 10 bytes (two's complement), as protobuf says. */
  private int64(t: number | bigint): void {
    if (typeof t === "number" && t >= 0) {
      this.varint(t);
      return;
    }
    if (typeof t === "bigint" && t >= 0n && t <= Number.MAX_SAFE_INTEGER) {
      this.varint(Number(t));
      return;
    }
    let u = BigInt.asUintN(64, BigInt(t));
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }
}
