import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FetchResponse } from "../../clients/ts/src/gen/rill/v1/log.js";
import {
  encodeFrame,
  isFrameProblem,
  parseFrameHeader,
  verifyFrameCrc,
} from "../../server/src/storage/batch-frame.js";
import { OffsetIndex } from "../../server/src/storage/offset-index.js";
import { TimeIndex } from "../../server/src/storage/time-index.js";

/** Strictly increasing u32 pairs: the shape of a valid offset index. */
const entriesArb = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 100_000 })), {
    maxLength: 200,
  })
  .map((steps) => {
    let rel = 0;
    let pos = 0;
    return steps.map(([dr, dp], i) => {
      if (i > 0) {
        rel += dr;
        pos += dp;
      }
      return [rel, pos] as const;
    });
  });

describe("storage > indexes > property", () => {
  it("offset-index lookups equal a floor search over a sorted model", () => {
    // Ensures the binary search and the file codec agree with a plain model for any valid index.
    fc.assert(
      fc.property(
        entriesArb,
        fc.array(fc.integer({ min: 0, max: 300_000 }), { maxLength: 30 }),
        (entries, keys) => {
          const index = new OffsetIndex();
          for (const [rel, pos] of entries) index.append(rel, pos);
          const decoded = OffsetIndex.decode(index.encode()).index;
          for (const key of keys) {
            const floor = entries.filter(([rel]) => rel <= key).at(-1);
            expect(decoded.lookup(key)).toBe(floor === undefined ? 0 : floor[1]);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("time-index lowerEntry equals the last model entry strictly before the time", () => {
    // Ensures the time index finds where a timestamp walk must start.
    fc.assert(
      fc.property(
        entriesArb,
        fc.array(fc.integer({ min: 0, max: 300_000 }), { maxLength: 30 }),
        (entries, keys) => {
          const index = new TimeIndex();
          for (const [rel, time] of entries) index.append(1_700_000_000_000 + time, rel);
          const decoded = TimeIndex.decode(index.encode()).index;
          expect(decoded.check(1, null)).toBe(entries.length === 0 ? "no entries for a non-empty log" : null);
          for (const key of keys) {
            const t = 1_700_000_000_000 + key;
            const expected = entries.findLastIndex(([, time]) => 1_700_000_000_000 + time < t);
            expect(decoded.lowerEntry(t)).toBe(expected);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("storage > batch-frame > property", () => {
  it("round-trips any batch through encode, parse, CRC and the generated decoder", () => {
    // Ensures the fixed-width frame is a valid FetchResponse element for all field values.
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 2, max: 127 }),
        fc.uint8Array({ maxLength: 400 }),
        (baseOffset, recordCount, appendTimeMs, compression, records) => {
          const frame = encodeFrame({ baseOffset, recordCount, appendTimeMs, compression }, records);
          const header = parseFrameHeader(frame, 0, frame.length);
          if (isFrameProblem(header)) throw new Error(header.problem);
          expect(header).toMatchObject({
            baseOffset,
            recordCount,
            appendTimeMs,
            compression,
            frameBytes: frame.length,
          });
          expect(verifyFrameCrc(frame, 0, header)).toBe(true);
          const [batch] = FetchResponse.decode(frame).batches;
          expect(batch!.baseOffset).toBe(baseOffset);
          expect(batch!.appendTimeMs).toBe(BigInt(appendTimeMs));
          expect(Buffer.from(batch!.compressedRecords).equals(Buffer.from(records))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});
