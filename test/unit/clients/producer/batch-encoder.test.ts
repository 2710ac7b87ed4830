import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProduceRequest } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import { Compression, RecordBatch } from "../../../../clients/ts/src/gen/rill/v1/record.js";
import { BatchEncoder, type EncodedHeader } from "../../../../clients/ts/src/producer/batch-encoder.js";

interface In {
  key: Buffer | null;
  value: Buffer;
  headers: EncodedHeader[] | null;
  t: number | bigint | undefined;
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const recordArb: fc.Arbitrary<In> = fc.record({
  key: fc.option(bytes(40), { nil: null }),
  value: fc.oneof(bytes(40), bytes(400)),
  headers: fc.option(
    fc.array(
      fc.record({
        key: fc.string({ unit: "binary", maxLength: 8 }).map((s) => Buffer.from(s)),
        value: bytes(200),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    { nil: null },
  ),
  t: fc.oneof(
    fc.constant(undefined),
    fc.integer({ min: -(2 ** 40), max: 2 ** 45 }),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  ),
});

/** What the generated codec makes of the same records. */
function generated(topic: string, partition: number, durability: number, records: In[]): Uint8Array {
  return ProduceRequest.encode({
    topic,
    partition,
    records: {
      records: records.map((r) => ({
        key: r.key ?? Buffer.alloc(0),
        value: r.value,
        headers: (r.headers ?? []).map((h) => ({ key: h.key.toString("utf8"), value: h.value })),
        timestampMs: r.t === undefined ? undefined : BigInt(r.t),
      })),
    },
    compression: Compression.COMPRESSION_NONE,
    compressedRecords: Buffer.alloc(0),
    recordCount: 0,
    durability,
  }).finish();
}

describe("client > producer > batch encoder", () => {
  it("encodes byte for byte what the generated ProduceRequest codec encodes", () => {
    // Ensures the hand-written encoder is a drop-in for the generated one on any records.
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 300 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 - 1 })),
        fc.integer({ min: 0, max: 2 }),
        fc.array(recordArb, { minLength: 1, maxLength: 60 }),
        (topic, partition, durability, records) => {
          const enc = new BatchEncoder(topic, partition, 16);
          for (const r of records) enc.append(r.key, r.value, r.headers, r.t);
          const expected = generated(topic, partition, durability, records);
          expect(Buffer.from(enc.finish(durability)).equals(Buffer.from(expected))).toBe(true);
        },
      ),
    );
  });

  it("grows across large records and exposes the plain RecordBatch for compression", () => {
    // Ensures growth keeps earlier records intact and records() is a valid RecordBatch.
    const enc = new BatchEncoder("t", 3, 10);
    const values = [1, 70_000, 5, 300_000].map((n, i) => Buffer.alloc(n, i + 1));
    for (const v of values) enc.append(null, v, null, undefined);
    const decoded = RecordBatch.decode(enc.records()).records.map((r) => Buffer.from(r.value));
    expect(decoded).toEqual(values);
    const req = ProduceRequest.decode(enc.finish(0));
    expect(req.records!.records).toHaveLength(4);
    expect(req.partition).toBe(3);
  });

  it("never regrows a batch sized exactly to its records", () => {
    // Ensures the room reserved per record is exact (tag, length varint, body): a batch given its
    // records' encoded size up front keeps its first buffer, with no doubling and no copy.
    const values = Array.from({ length: 50 }, (_, i) => Buffer.alloc(200, i));
    const recordBytes = 50 * (1 + 2 + (1 + 2 + 200)); // tag, 2-byte length, value field
    const enc = new BatchEncoder("topic-of-a-bench", 0, recordBytes);
    for (const v of values) enc.append(null, v, null, undefined);
    expect(enc.recordBytes).toBe(recordBytes);
    const out = enc.finish(1);
    expect(out.buffer.byteLength).toBeLessThan(recordBytes + 64); // header and trailer room only
    expect(ProduceRequest.decode(out).records!.records.map((r) => Buffer.from(r.value))).toEqual(values);
  });
});
