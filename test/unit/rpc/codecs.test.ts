import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Durability, FetchResponse, ProduceRequest } from "../../../clients/ts/src/gen/rill/v1/log.js";
import {
  Batch,
  Compression,
  RecordBatch,
  type Record as RillRecord,
} from "../../../clients/ts/src/gen/rill/v1/record.js";
import { buildFetchResponse } from "../../../server/src/rpc/codecs/fetch-response.js";
import { decodeProduceRequestView } from "../../../server/src/rpc/codecs/produce-request.js";
import { countRecords, MalformedBatchError } from "../../../server/src/rpc/codecs/record-batch.js";

const recordArb: fc.Arbitrary<RillRecord> = fc.record({
  key: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
  value: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  headers: fc.array(
    fc.record({
      key: fc.string({ maxLength: 8 }),
      value: fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
    }),
    {
      maxLength: 3,
    },
  ),
  timestampMs: fc.option(fc.bigInt({ min: 0n, max: 2n ** 62n }), { nil: undefined }),
});

describe("rpc > codecs > produce request view", () => {
  it("holds exactly the RecordBatch bytes the typed client encoded", () => {
    // Ensures the lazy view reads topic/partition/durability and keeps field 3 as the very bytes
    // RecordBatch.encode produced, for any batch.
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 20 }),
        fc.string({ maxLength: 20 }),
        fc.nat(1000),
        (records, topic, partition) => {
          const batchBytes = RecordBatch.encode({ records }).finish();
          const request = ProduceRequest.encode({
            topic,
            partition,
            records: { records },
            compression: Compression.COMPRESSION_NONE,
            compressedRecords: Buffer.alloc(0),
            recordCount: 0,
            durability: Durability.DURABILITY_FSYNCED,
          }).finish();
          const view = decodeProduceRequestView(Buffer.from(request));
          expect(view.malformed).toBeUndefined();
          expect(view.topic).toBe(topic);
          expect(view.partition).toBe(partition);
          expect(view.durability).toBe(Durability.DURABILITY_FSYNCED);
          expect(Buffer.from(view.records!).equals(Buffer.from(batchBytes))).toBe(true);
          expect(countRecords(view.records!)).toBe(records.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("reports malformed requests instead of throwing", () => {
    // Ensures random bytes never make the deserializer throw (grpc-js would answer INTERNAL).
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const view = decodeProduceRequestView(Buffer.from(bytes));
        expect(typeof view.topic).toBe("string");
      }),
      { numRuns: 500 },
    );
    expect(decodeProduceRequestView(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])).malformed).toMatch(
      /malformed/,
    );
  });
});

describe("rpc > codecs > record counting", () => {
  it("rejects a batch whose record length lies", () => {
    // Ensures a record claiming more bytes than remain is refused, not counted.
    const good = Buffer.from(
      RecordBatch.encode({
        records: [{ key: Buffer.alloc(0), value: Buffer.from("abc"), headers: [], timestampMs: undefined }],
      }).finish(),
    );
    const lying = Buffer.from(good);
    lying[1] = 100; // record length
    expect(() => countRecords(lying)).toThrow(MalformedBatchError);
    expect(() => countRecords(good.subarray(0, good.length - 1))).toThrow(MalformedBatchError);
  });

  it("rejects records with wrong wire types and field number 0", () => {
    // Ensures structural checks inside a record: value (field 2) must be length-delimited.
    expect(() => countRecords(Buffer.from([0x0a, 0x02, 0x10, 0x01]))).toThrow(/wire type/);
    expect(() => countRecords(Buffer.from([0x0a, 0x02, 0x00, 0x01]))).toThrow(/field number 0/);
    expect(() => countRecords(Buffer.from([0x0a, 0x02, 0x20, 0x80]))).toThrow(/truncated/);
  });

  it("counts empty records", () => {
    // Ensures a record with no fields (all defaults) still counts as one record.
    expect(countRecords(Buffer.from([0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00]))).toBe(3);
  });
});

describe("rpc > codecs > fetch response", () => {
  it("appends the high watermark and log start after raw frames", () => {
    // Ensures an empty (heartbeat) response and offsets past 2^53 decode with the generated decoder.
    const hw = 2n ** 60n + 7n;
    const decoded = FetchResponse.decode(buildFetchResponse(Buffer.alloc(0), hw, 5n));
    expect(decoded.batches).toEqual([]);
    expect(decoded.highWatermark).toBe(hw);
    expect(decoded.logStartOffset).toBe(5n);
  });

  it("writes the trailer into the read's spare room without copying the frames, same bytes", () => {
    // Ensures the zero-copy path (ReadResult.spare) encodes exactly what the copying one does, and
    // that it copies only when the room is too small.
    const frames = Buffer.concat(
      [1, 2, 3].map((i) =>
        FetchResponse.encode({
          batches: [Batch.fromPartial({ baseOffset: BigInt(i), recordCount: 1 })],
          highWatermark: 0n,
          logStartOffset: 0n,
        }).finish(),
      ),
    );
    for (const [hw, start] of [
      [3n, 0n],
      [2n ** 60n, 2n ** 59n],
      [0n, 0n],
    ] as const) {
      const copied = buildFetchResponse(frames, hw, start);
      const memory = Buffer.alloc(frames.length + 40, 0xee);
      frames.copy(memory);
      const inPlace = buildFetchResponse(memory.subarray(0, frames.length), hw, start, 40);
      expect(inPlace.equals(copied)).toBe(true);
      expect(inPlace.buffer).toBe(memory.buffer);
      const decoded = FetchResponse.decode(inPlace);
      expect(decoded.batches.map((b) => b.baseOffset)).toEqual([1n, 2n, 3n]);
      expect([decoded.highWatermark, decoded.logStartOffset]).toEqual([hw, start]);
      // Too little room: a copy, the read's memory untouched past the frames.
      const tight = Buffer.alloc(frames.length + 1, 0xee);
      frames.copy(tight);
      const fallback = buildFetchResponse(tight.subarray(0, frames.length), 2n ** 60n, 1n, 1);
      expect(fallback.buffer).not.toBe(tight.buffer);
      expect(tight[frames.length]).toBe(0xee);
    }
  });
});

describe("rpc > codecs > record counting agrees with the generated decoder", () => {
  it("never accepts bytes that decode to a different number of records", () => {
    // Ensures the broker's count (which assigns offsets) always matches what consumers decode:
    // random bytes and mutations of valid batches either fail the walk or agree.
    const valid = fc
      .array(recordArb, { minLength: 1, maxLength: 8 })
      .map((records) => Buffer.from(RecordBatch.encode({ records }).finish()));
    const mutated = fc.tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, byte]) => {
      const copy = Buffer.from(b);
      copy[at % copy.length] = byte;
      return copy;
    });
    const bytes = fc.oneof(
      valid,
      mutated,
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(bytes, (b) => {
        let counted: number;
        try {
          counted = countRecords(b);
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedBatchError);
          return;
        }
        expect(RecordBatch.decode(b).records.length).toBe(counted);
      }),
      { numRuns: 3000 },
    );
  });
});
