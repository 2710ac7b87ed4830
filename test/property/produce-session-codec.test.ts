/**
 * The broker's lazy ProduceSession codecs (server/src/rpc/codecs/produce-session.ts) against the
 * generated ts-proto codec: the request view reads what the generated decoder reads (without
 * decoding records), never throws, and the answers are byte for byte what the generated encoder
 * writes.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ProduceRequest,
  ProduceSessionRequest,
  ProduceSessionResponse,
} from "../../clients/ts/src/gen/rill/v1/log.js";
import { RecordBatch, type Record as RillRecord } from "../../clients/ts/src/gen/rill/v1/record.js";
import {
  decodeProduceSessionRequestView,
  encodeSessionError,
  encodeSessionResult,
  type ProduceSessionRequestView,
} from "../../server/src/rpc/codecs/produce-session.js";
import { countRecords } from "../../server/src/rpc/codecs/record-batch.js";

/** Runs per property; RILL_PROPERTY_RUNS=1000 for a deeper search than the quick default. */
const RUNS = Number(process.env.RILL_PROPERTY_RUNS ?? 300);

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
/**
 * Any UTF-16 text, lone surrogates included, long enough for a nested message of 128+ bytes (a
 * two-byte length): fc.string() alone gives short ASCII.
 */
const anyText = fc.oneof(
  fc.string({
    maxLength: 300,
    size: "max",
    unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  }),
  fc.string({ maxLength: 300 }),
);

const recordArb: fc.Arbitrary<RillRecord> = fc.record({
  key: fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
  value: fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)),
  headers: fc.array(
    fc.record({
      key: fc.string({ maxLength: 6 }),
      value: fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)),
    }),
    { maxLength: 2 },
  ),
  timestampMs: fc.option(fc.bigInt({ min: 0n, max: 2n ** 62n }), { nil: undefined }),
});

const produceArb: fc.Arbitrary<ProduceRequest> = fc.record({
  topic: fc.string({ maxLength: 30 }),
  partition: int32,
  records: fc.option(
    fc.array(recordArb, { maxLength: 6 }).map((records) => ({ records })),
    { nil: undefined },
  ),
  compression: fc.integer({ min: 0, max: 5 }),
  compressedRecords: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
  recordCount: fc.nat(),
  durability: fc.integer({ min: 0, max: 3 }),
});

const requestArb: fc.Arbitrary<ProduceSessionRequest> = fc.record({
  sequence: u64,
  produce: fc.option(produceArb, { nil: undefined }),
});

/** What the generated decoder reads, as the view's fields (records as their encoded bytes). */
function generatedFields(bytes: Uint8Array) {
  const m = ProduceSessionRequest.decode(bytes);
  const p = m.produce;
  return {
    sequence: m.sequence,
    topic: p?.topic ?? "",
    partition: p?.partition ?? 0,
    records: p?.records === undefined ? null : Buffer.from(RecordBatch.encode(p.records).finish()),
    recordCount: p?.records?.records.length,
    compression: p?.compression ?? 0,
    compressedRecords:
      p === undefined || p.compressedRecords.length === 0 ? null : Buffer.from(p.compressedRecords),
    producerRecordCount: p?.recordCount ?? 0,
    durability: p?.durability ?? 0,
  };
}

function viewFields(v: ProduceSessionRequestView) {
  const p = v.produce;
  return {
    sequence: v.sequence,
    topic: p.topic,
    partition: p.partition,
    records: p.records === null ? null : Buffer.from(p.records),
    compression: p.compression,
    compressedRecords:
      p.compressedRecords === null || p.compressedRecords.length === 0
        ? null
        : Buffer.from(p.compressedRecords),
    producerRecordCount: p.recordCount,
    durability: p.durability,
  };
}

/** The LEN payloads of `field` in a message, in order (undefined if the message does not parse). */
function occurrences(bytes: Uint8Array, field: number): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  try {
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [f, wt] = r.tag();
      if (f === field && wt === WireType.LengthDelimited) out.push(r.bytes());
      else r.skip(wt, f);
    }
  } catch {
    return undefined;
  }
  return out;
}

/** True when every RecordBatch (field 3 of every field 2) of a request passes the record walk. */
function everyRecordBatchWalks(bytes: Uint8Array): boolean {
  for (const produce of occurrences(bytes, 2) ?? []) {
    const batches = occurrences(produce, 3);
    if (batches === undefined) return false;
    for (const batch of batches) {
      try {
        countRecords(batch);
      } catch {
        return false;
      }
    }
  }
  return true;
}

describe("property > produce session codec > request view", () => {
  it("reads every request the generated encoder writes as the generated decoder does", () => {
    // Ensures sequence and every ProduceRequest field agree, the records are kept as the exact
    // RecordBatch bytes, and the record walk counts what the decoder decodes.
    fc.assert(
      fc.property(requestArb, (request) => {
        const bytes = Buffer.from(ProduceSessionRequest.encode(request).finish());
        const view = decodeProduceSessionRequestView(bytes);
        expect(view.malformed).toBeUndefined();
        expect(view.produce.malformed).toBeUndefined();
        const { recordCount, ...want } = generatedFields(bytes);
        expect(viewFields(view)).toEqual(want);
        if (view.produce.records !== null) expect(countRecords(view.produce.records)).toBe(recordCount);
      }),
      { numRuns: RUNS },
    );
  });

  it("never throws, and agrees with the generated decoder on whatever it does not call malformed", () => {
    // Ensures arbitrary bytes, and valid requests with bytes flipped, cut or spliced in, become a
    // view (a malformed one at worst) and, for any batch the broker would append, never a
    // different reading than the generated decoder's: last occurrence wins, unknown fields are
    // skipped, and the record walk counts what the decoder decodes.
    const mutated = fc
      .tuple(
        requestArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 12 }),
      )
      .map(([request, flips, cut, extra]) => {
        const bytes = Buffer.from(ProduceSessionRequest.encode(request).finish());
        for (const [at, b] of flips) if (bytes.length > 0) bytes[at % bytes.length] = b;
        return Buffer.concat([
          bytes.subarray(0, bytes.length === 0 ? 0 : cut % (bytes.length + 1)),
          extra,
          bytes.subarray(cut % (bytes.length + 1)),
        ]);
      });
    const repeated = fc
      .tuple(requestArb, requestArb)
      .map(([a, b]) =>
        Buffer.concat([ProduceSessionRequest.encode(a).finish(), ProduceSessionRequest.encode(b).finish()]),
      );
    const arbitrary = fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b));
    let agreed = 0;
    fc.assert(
      fc.property(fc.oneof(mutated, repeated, arbitrary), (bytes) => {
        const view = decodeProduceSessionRequestView(bytes);
        expect(typeof view.sequence).toBe("bigint");
        if (view.malformed !== undefined || view.produce.malformed !== undefined) return;
        // ts-proto is no reference where some RecordBatch occurrence is one the record walk refuses:
        // a nested decode that stops at a tag 0 leaves the parent reading mid-message. Those
        // batches are refused (INVALID_ARGUMENT) when they are the last occurrence; an earlier,
        // overwritten one is never read by the view (nor stored).
        if (!everyRecordBatchWalks(bytes)) return;
        const counted = view.produce.records === null ? undefined : countRecords(view.produce.records);
        let want: ReturnType<typeof generatedFields>;
        try {
          want = generatedFields(bytes);
        } catch {
          return; // refused by the generated decoder, read by the view: the broker may be more lenient
        }
        const { recordCount, records, ...fields } = want;
        const { records: viewRecords, ...got } = viewFields(view);
        expect(got).toEqual(fields);
        expect(viewRecords === null).toBe(records === null);
        if (counted !== undefined) expect(counted).toBe(recordCount);
        agreed++;
      }),
      { numRuns: RUNS * 3 },
    );
    expect(agreed).toBeGreaterThan(RUNS / 10);
  });

  it("keeps the embedded request as a view into the request buffer", () => {
    // Ensures the records are not copied: the hot path holds subarrays of what grpc-js handed over.
    const request: ProduceSessionRequest = {
      sequence: 7n,
      produce: {
        topic: "t",
        partition: 1,
        records: {
          records: [{ key: Buffer.alloc(0), value: Buffer.from("v"), headers: [], timestampMs: undefined }],
        },
        compression: 0,
        compressedRecords: Buffer.alloc(0),
        recordCount: 0,
        durability: 2,
      },
    };
    const bytes = Buffer.from(ProduceSessionRequest.encode(request).finish());
    const view = decodeProduceSessionRequestView(bytes);
    expect(view.sequence).toBe(7n);
    expect(view.produce.records!.buffer).toBe(bytes.buffer);
    expect(decodeProduceSessionRequestView(Buffer.from([0x08, 0xff])).malformed).toMatch(
      /malformed ProduceSessionRequest/,
    );
    expect(decodeProduceSessionRequestView(Buffer.from([0x12, 0x05, 0x0a])).malformed).toMatch(
      /past the end/,
    );
    expect(decodeProduceSessionRequestView(Buffer.from([0x10, 0x01])).malformed).toMatch(/wire type/);
  });
});

describe("property > produce session codec > answers", () => {
  it("encodes results byte for byte as the generated encoder", () => {
    fc.assert(
      fc.property(
        u64,
        anyText,
        int32,
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.nat(),
        fc.maxSafeNat(),
        (sequence, topic, partition, baseOffset, recordCount, appendTimeMs) => {
          const ours = encodeSessionResult(sequence, {
            topic,
            partition,
            baseOffset,
            recordCount,
            appendTimeMs,
          });
          const generated = ProduceSessionResponse.encode({
            sequence,
            outcome: {
              $case: "result",
              value: { topic, partition, baseOffset, recordCount, appendTimeMs: BigInt(appendTimeMs) },
            },
          }).finish();
          expect(ours.equals(Buffer.from(generated))).toBe(true);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("encodes errors byte for byte as the generated encoder", () => {
    fc.assert(
      fc.property(u64, int32, anyText, (sequence, code, message) => {
        const ours = encodeSessionError(sequence, code, message);
        const generated = ProduceSessionResponse.encode({
          sequence,
          outcome: { $case: "error", value: { code, message } },
        }).finish();
        expect(ours.equals(Buffer.from(generated))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
