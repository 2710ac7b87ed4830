import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeFetchResponse,
  decodeRawBatch,
  decodeRawBatches,
} from "../../../../clients/ts/src/consumer/fetch-decoder.js";
import { CorruptBatchError } from "../../../../clients/ts/src/errors.js";
import { FetchResponse } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import {
  type Batch,
  Batch as BatchCodec,
  Compression,
  type Record,
  RecordBatch,
} from "../../../../clients/ts/src/gen/rill/v1/record.js";
import { type ConsumedRecord, decodeBatch, decodeBatches } from "../../../../clients/ts/src/records.js";
import { record } from "../helpers/fake-broker.js";

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const recordArb: fc.Arbitrary<Record> = fc.record({
  key: bytes(20),
  value: fc.oneof(bytes(20), bytes(300)),
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 6 }), value: bytes(20) }), { maxLength: 3 }),
  timestampMs: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: undefined }),
});

const batchArb: fc.Arbitrary<Batch> = fc
  .record({
    baseOffset: fc.bigInt({ min: 0n, max: 2n ** 40n }),
    appendTimeMs: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    records: fc.array(recordArb, { maxLength: 20 }),
    gzip: fc.boolean(),
    compression: fc.constantFrom(Compression.COMPRESSION_NONE, Compression.COMPRESSION_UNSPECIFIED),
  })
  .map(({ baseOffset, appendTimeMs, records, gzip, compression }) => ({
    crc32c: 7,
    baseOffset,
    recordCount: records.length,
    appendTimeMs,
    producerId: 0n,
    producerSequence: 0,
    compression: gzip ? Compression.COMPRESSION_GZIP : compression,
    records: gzip ? undefined : { records },
    compressedRecords: gzip ? gzipSync(RecordBatch.encode({ records }).finish()) : Buffer.alloc(0),
  }));

describe("client > consumer > fetch decoder", () => {
  it("gives the same records as the generated codec and decodeBatches", () => {
    // Ensures the hand-written fast path agrees with the reference decoder on any batches and start.
    fc.assert(
      fc.property(
        fc.array(batchArb, { maxLength: 4 }),
        fc.bigInt({ min: -1n, max: 2n ** 41n }),
        fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
        fc.nat(25),
        (batches, hw, lso, delta) => {
          const wire = Buffer.from(
            FetchResponse.encode({ batches, highWatermark: hw, logStartOffset: lso }).finish(),
          );
          const ref = FetchResponse.decode(wire);
          const raw = decodeFetchResponse(wire);
          expect(raw.highWatermark).toBe(ref.highWatermark);
          expect(raw.logStartOffset).toBe(ref.logStartOffset);
          expect(raw.batches).toHaveLength(ref.batches.length);
          const from = (batches[0]?.baseOffset ?? 0n) + BigInt(delta);
          const expected = decodeBatches(ref.batches, "t", 2, from);
          const actual = decodeRawBatches(raw.batches, "t", 2, from);
          expect(actual).toEqual(expected);
        },
      ),
    );
  });

  it("returns views into the response rather than copies", () => {
    // Ensures the fast path does not copy values (the point of it).
    const records = [{ key: Buffer.from("k"), value: Buffer.from("value"), headers: [], timestampMs: 5n }];
    const batch = {
      crc32c: 0,
      baseOffset: 3n,
      recordCount: 1,
      appendTimeMs: 9n,
      producerId: 0n,
      producerSequence: 0,
      compression: Compression.COMPRESSION_NONE,
      records: { records },
      compressedRecords: Buffer.alloc(0),
    };
    const wire = Buffer.from(
      FetchResponse.encode({ batches: [batch], highWatermark: 4n, logStartOffset: 0n }).finish(),
    );
    const [r] = decodeRawBatches(decodeFetchResponse(wire).batches, "t", 0, 0n);
    expect(r!.value.buffer).toBe(wire.buffer);
    expect(r).toMatchObject({ offset: 3n, timestamp: 5 });
  });

  it("throws on a truncated response", () => {
    // Ensures corrupt input fails loudly instead of yielding garbage records.
    expect(() => decodeFetchResponse(Buffer.from([0x0a, 0x05, 0x11]))).toThrow(/premature end/);
  });
});

describe("client > consumer > batch record_count", () => {
  const batchOf = (recordCount: number, gzip: boolean): Batch => {
    const records = [record("g0"), record("g1"), record("g2")];
    return {
      crc32c: 0,
      baseOffset: 10n,
      recordCount,
      appendTimeMs: 1n,
      producerId: 0n,
      producerSequence: 0,
      compression: gzip ? Compression.COMPRESSION_GZIP : Compression.COMPRESSION_NONE,
      records: gzip ? undefined : { records },
      compressedRecords: gzip ? gzipSync(RecordBatch.encode({ records }).finish()) : Buffer.alloc(0),
    };
  };
  const wire = (b: Batch) => Buffer.from(BatchCodec.encode(b).finish());

  it("never yields more records than a batch's record_count (offsets would collide with the next batch)", () => {
    // Ensures a compressed batch holding more records than it says is refused, not given offsets 10..12.
    const out: ConsumedRecord[] = [];
    expect(() => decodeRawBatch(wire(batchOf(1, true)), "t", 4, 0n, out)).toThrow(CorruptBatchError);
    expect(out).toEqual([]);
  });

  it("refuses a count mismatch on both paths with a clear, non-retriable error", () => {
    // Ensures the fast decoder and the generated codec agree: topic, partition and base offset named.
    const message = 'corrupt batch in topic "t" partition 4 at base offset 10: record_count says';
    for (const [count, gzip] of [
      [1, true],
      [5, true],
      [2, false],
      [4, false],
    ] as const) {
      const b = batchOf(count, gzip);
      const fast = (() => {
        try {
          decodeRawBatch(wire(b), "t", 4, 0n, []);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(fast).toBeInstanceOf(CorruptBatchError);
      expect((fast as CorruptBatchError).retriable).toBe(false);
      expect((fast as Error).message).toBe(`${message} ${count} records but it holds 3`);
      expect(() => decodeBatch(b, "t", 4, 0n)).toThrow(`${message} ${count} records but it holds 3`);
    }
    // A matching count decodes as before.
    expect(decodeRawBatch(wire(batchOf(3, true)), "t", 4, 11n, []).map((r) => r.offset)).toEqual([11n, 12n]);
    expect(decodeRawBatch(wire(batchOf(3, false)), "t", 4, 0n, []).map((r) => r.offset)).toEqual([
      10n,
      11n,
      12n,
    ]);
  });
});
