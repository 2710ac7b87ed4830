import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFetchResponse, decodeRawBatches } from "../../../../clients/ts/src/consumer/fetch-decoder.js";
import { FetchResponse } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import {
  type Batch,
  Compression,
  type Record,
  RecordBatch,
} from "../../../../clients/ts/src/gen/rill/v1/record.js";
import { decodeBatches } from "../../../../clients/ts/src/records.js";

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
