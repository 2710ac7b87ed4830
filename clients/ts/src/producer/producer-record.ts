/**
 * Records as the application hands them to `Producer.send`, and their normalization into the
 * generated wire `Record`s: text becomes UTF-8 bytes, Uint8Arrays are wrapped without copying,
 * headers keep their order, timestamps become int64 milliseconds. Also estimates each record's
 * size, which the producer's buffer bound and batch sealing count in.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Header, Record as WireRecord } from "../gen/rill/v1/record.js";

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

const EMPTY = Buffer.alloc(0);
const NO_HEADERS: Header[] = [];
/** Bytes a record costs besides its key, value and headers (tags, lengths, timestamp). */
const RECORD_OVERHEAD = 16;

/** Normalized records of one send, ready for the accumulator. */
export interface Prepared {
  records: WireRecord[];
  keys: (Buffer | null)[];
  partitions: (number | undefined)[];
  sizes: number[];
  bytes: number;
}

function toBuffer(v: BytesLike, what: string): Buffer {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new InvalidArgumentError(`${what} must be a Buffer, Uint8Array or string`);
}

function toTimestamp(t: ProducerRecord["timestamp"]): bigint | undefined {
  if (t === undefined) return undefined;
  if (typeof t === "bigint") return t;
  if (t instanceof Date) return BigInt(t.getTime());
  if (typeof t === "number" && Number.isFinite(t)) return BigInt(Math.trunc(t));
  throw new InvalidArgumentError("timestamp must be a number, bigint or Date");
}

function toHeaders(h: ProducerRecord["headers"]): { headers: Header[]; bytes: number } {
  if (h === undefined) return { headers: NO_HEADERS, bytes: 0 };
  const headers: Header[] = [];
  let bytes = 0;
  const entries: [string, BytesLike][] = Array.isArray(h)
    ? h.map((x) => [x.key, x.value])
    : Object.entries(h);
  for (const [key, value] of entries) {
    const v = toBuffer(value, "header value");
    headers.push({ key, value: v });
    bytes += Buffer.byteLength(key) + v.length + 4;
  }
  return { headers, bytes };
}

export function prepare(input: readonly ProducerRecord[]): Prepared {
  const n = input.length;
  const records = new Array<WireRecord>(n);
  const keys = new Array<Buffer | null>(n);
  const partitions = new Array<number | undefined>(n);
  const sizes = new Array<number>(n);
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const r = input[i];
    if (r === null || typeof r !== "object") throw new InvalidArgumentError(`record ${i} is not an object`);
    const value = toBuffer(r.value, "value");
    const key = r.key === undefined || r.key === null ? null : toBuffer(r.key, "key");
    const { headers, bytes: headerBytes } = toHeaders(r.headers);
    const p = r.partition;
    if (p !== undefined && !(Number.isInteger(p) && p >= 0)) {
      throw new InvalidArgumentError(`record ${i}: partition must be a non-negative integer, got ${p}`);
    }
    records[i] = { key: key ?? EMPTY, value, headers, timestampMs: toTimestamp(r.timestamp) };
    keys[i] = key;
    partitions[i] = p;
    const size = value.length + (key?.length ?? 0) + headerBytes + RECORD_OVERHEAD;
    sizes[i] = size;
    bytes += size;
  }
  return { records, keys, partitions, sizes, bytes };
}
