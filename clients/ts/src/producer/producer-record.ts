/**
 * Records as the application hands them to `Producer.send`, and their normalization for the
 * batch encoder: text becomes UTF-8 bytes, Uint8Arrays are wrapped without copying,
 * headers keep their order, timestamps become int64 milliseconds. Also estimates each record's
 * size, which the producer's buffer bound and batch sealing count in.
 */
import { inspect } from "node:util";
import { InvalidArgumentError } from "../errors.js";
import { checkInt64, type EncodedHeader, type Timestamp } from "./batch-encoder.js";

/** Bytes or text; text is encoded as UTF-8. */
export type BytesLike = Buffer | Uint8Array | string;

/** A header to send; a plain object `{ name: value }` is also accepted for `headers`. */
export interface ProducerHeader {
  key: string;
  value: BytesLike;
}

/** One record to send. */
export interface ProducerRecord {
  /** Keyed records are placed with murmur2 like Kafka; null/undefined means no key. */
  key?: BytesLike | null | undefined;
  value: BytesLike;
  headers?: ProducerHeader[] | { [name: string]: BytesLike } | undefined;
  /** The record's time; default: none (consumers then see the broker's append time). */
  timestamp?: number | bigint | Date | undefined;
  /** Send to this partition instead of letting the partitioner choose. */
  partition?: number | undefined;
}

const INT32_MAX = 0x7fffffff;

/** Bytes a record costs besides its key, value and headers (tags, lengths, timestamp). */
const RECORD_OVERHEAD = 16;

/** Normalized records of one send, ready for the accumulator (parallel arrays, one entry per record). */
export interface Prepared {
  values: Buffer[];
  keys: (Buffer | null)[];
  headers: (EncodedHeader[] | null)[];
  timestamps: Timestamp[];
  partitions: (number | undefined)[];
  /** Estimated bytes per record: what the buffer bound and batchBytes count. */
  sizes: number[];
  bytes: number;
}

function toBuffer(v: BytesLike, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new InvalidArgumentError(`${what} must be a Buffer, Uint8Array or string`);
}

function toTimestamp(t: ProducerRecord["timestamp"]): Timestamp {
  if (t === undefined) return undefined;
  if (typeof t === "bigint") return checkInt64(t);
  const ms = t instanceof Date ? t.getTime() : t;
  if (typeof ms === "number" && Number.isFinite(ms)) {
    const whole = Math.trunc(ms);
    return Number.isSafeInteger(whole) ? whole : checkInt64(BigInt(whole));
  }
  throw new InvalidArgumentError("timestamp must be a number, bigint or Date");
}

/** The headers as encodable pairs, or null when there are none. */
function toHeaders(h: ProducerRecord["headers"]): EncodedHeader[] | null {
  if (h === undefined) return null;
  const entries: [string, BytesLike][] = Array.isArray(h)
    ? h.map((x) => [x.key, x.value])
    : Object.entries(h);
  if (entries.length === 0) return null;
  return entries.map(([key, value]) => ({
    key: Buffer.from(key, "utf8"),
    value: toBuffer(value, "header value"),
  }));
}

function headerBytes(headers: EncodedHeader[] | null): number {
  let bytes = 0;
  if (headers !== null) for (const h of headers) bytes += h.key.length + h.value.length + 4;
  return bytes;
}

export function prepare(input: readonly ProducerRecord[]): Prepared {
  const n = input.length;
  const values = new Array<Buffer>(n);
  const keys = new Array<Buffer | null>(n);
  const headers = new Array<EncodedHeader[] | null>(n);
  const timestamps = new Array<Timestamp>(n);
  const partitions = new Array<number | undefined>(n);
  const sizes = new Array<number>(n);
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const r = input[i];
    if (r === null || typeof r !== "object") throw new InvalidArgumentError(`record ${i} is not an object`);
    const value = toBuffer(r.value, "value");
    const key = r.key === undefined || r.key === null ? null : toBuffer(r.key, "key");
    const h = toHeaders(r.headers);
    const p = r.partition;
    // The upper bound is the topic's partition count, checked once it is known; int32 at most (the
    // wire type), so that even a send to a topic the broker does not know yet encodes correctly.
    if (p !== undefined && !(typeof p === "number" && Number.isInteger(p) && p >= 0 && p <= INT32_MAX)) {
      throw new InvalidArgumentError(
        `record ${i}: partition must be a non-negative integer (an int32), got ${inspect(p)}`,
      );
    }
    values[i] = value;
    // An empty key is no key on the wire (proto3 bytes); murmur2 still sees it as given.
    keys[i] = key;
    headers[i] = h;
    timestamps[i] = toTimestamp(r.timestamp);
    partitions[i] = p;
    const size = value.length + (key === null ? 0 : key.length) + headerBytes(h) + RECORD_OVERHEAD;
    sizes[i] = size;
    bytes += size;
  }
  return { values, keys, headers, timestamps, partitions, sizes, bytes };
}
