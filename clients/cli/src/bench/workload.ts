/**
 * The records every phase sends: 200-byte values, no key, no headers, no timestamp (the workload of
 * the Kafka paper and of ../shared/bench/peers). Bytes 0-7 hold the record's sequence number
 * (big-endian), so a reader can check order; phase 5 puts the send time (a float64 of
 * `wallClockMs()`) in bytes 8-15. The rest comes from a fixed-seed pseudo-random pool, so every
 * run sends the same bytes and nothing compresses them away.
 */
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";
import { Durability, type ProduceRequest } from "../../../ts/src/gen/rill/v1/log.js";
import { Compression, type Record } from "../../../ts/src/gen/rill/v1/record.js";
import { RECORD_BYTES } from "./meter.js";

const POOL_BYTES = 1 << 16;
const POOL = (() => {
  const pool = Buffer.allocUnsafe(POOL_BYTES);
  let x = 0x2545f491;
  for (let i = 0; i < POOL_BYTES; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool[i] = x & 0xff;
  }
  return pool;
})();
const EMPTY = Buffer.alloc(0);

/** Writes the value of record `seq` at `at` of `b`. */
function writeValue(b: Buffer, at: number, seq: number): void {
  b.writeUInt32BE(Math.floor(seq / 2 ** 32), at);
  b.writeUInt32BE(seq >>> 0, at + 4);
  const from = (seq * 131) % (POOL_BYTES - RECORD_BYTES);
  POOL.copy(b, at + 8, from, from + RECORD_BYTES - 8);
}

/** The 200-byte value of record `seq`. */
export function payload(seq: number): Buffer {
  const b = Buffer.allocUnsafe(RECORD_BYTES);
  writeValue(b, 0, seq);
  return b;
}

/**
 * The values of records first..first+count-1, made before a phase's clock starts so that the
 * harness's own work is not timed: views into one buffer, never reused.
 */
export function values(first: number, count: number): Buffer[] {
  const all = Buffer.allocUnsafe(count * RECORD_BYTES);
  const out: Buffer[] = new Array(count);
  for (let i = 0; i < count; i++) {
    writeValue(all, i * RECORD_BYTES, first + i);
    out[i] = all.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES);
  }
  return out;
}

/** The sequence number a value carries. */
export function sequenceOf(value: Buffer): number {
  return value.readUInt32BE(0) * 2 ** 32 + value.readUInt32BE(4);
}

/** Record `seq` stamped with `sentAt` (ms, wallClockMs()). */
export function timedPayload(seq: number, sentAt: number): Buffer {
  const b = payload(seq);
  b.writeDoubleBE(sentAt, 8);
  return b;
}

/**
 * Milliseconds on the wall clock with the monotonic clock's precision: comparable between the
 * processes of one machine (phase 5 stamps in latency-writer.ts and reads in latency-reader.ts).
 */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A histogram of phase 5's times in µs (1 µs to 1 hour, 3 significant figures). */
export function latencyHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
}

/** The send time a timed value carries. */
export function sentAtOf(value: Buffer): number {
  return value.readDoubleBE(8);
}

/** The `durability` field for a durability name. */
export function durabilityCode(d: "written" | "fsynced"): Durability {
  return d === "fsynced" ? Durability.DURABILITY_FSYNCED : Durability.DURABILITY_WRITTEN;
}

/** A ProduceRequest of records first..first+count-1 for partition 0 of `topic` (`batch`: their values). */
export function batchRequest(
  topic: string,
  first: number,
  count: number,
  durability: Durability,
  batch: readonly Buffer[] = values(first, count),
): ProduceRequest {
  const records: Record[] = new Array(count);
  for (let i = 0; i < count; i++) records[i] = { key: EMPTY, value: batch[i]!, headers: [] };
  return {
    topic,
    partition: 0,
    records: { records },
    compression: Compression.COMPRESSION_NONE,
    compressedRecords: EMPTY,
    recordCount: 0,
    durability,
  };
}
