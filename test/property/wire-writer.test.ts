/**
 * wire-writer.ts against @bufbuild/protobuf's BinaryWriter (the generated encoders' writer) as the
 * oracle: the same bytes for every int32, int64, uint64 and string value, and the Fetch trailer
 * byte for byte as the generated FetchResponse encoder writes it.
 */
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FetchResponse } from "../../clients/ts/src/gen/rill/v1/log.js";
import { encodeFetchTrailer } from "../../server/src/rpc/codecs/fetch-response.js";
import {
  stringFieldSize,
  varintFieldSize,
  varintSize,
  writeStringField,
  writeVarint,
  writeVarintField,
} from "../../server/src/rpc/codecs/wire-writer.js";

/** Runs per property; RILL_PROPERTY_RUNS=1000 for a deeper search than the quick default. */
const RUNS = Number(process.env.RILL_PROPERTY_RUNS ?? 300);

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
/** Around the edges where a varint gains a byte or a number stops being safe. */
const edgy = fc.constantFrom(
  0n,
  1n,
  127n,
  128n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n - 1n,
  -1n,
  -(2n ** 63n),
);

function ours(value: number | bigint): Buffer {
  const out = Buffer.alloc(varintSize(value));
  expect(writeVarint(out, 0, value)).toBe(out.length);
  return out;
}

function same(actual: Buffer, expected: Uint8Array): void {
  expect(actual.toString("hex")).toBe(Buffer.from(expected).toString("hex"));
}

describe("property > wire writer", () => {
  it("writes int64 and uint64 varints as BinaryWriter does, as bigints and as safe numbers", () => {
    fc.assert(
      fc.property(fc.oneof(int64, edgy), (v) => {
        same(ours(v), new BinaryWriter().int64(v).finish());
        if (v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
          same(ours(Number(v)), new BinaryWriter().int64(v).finish());
        }
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(u64, (v) => same(ours(v), new BinaryWriter().uint64(v).finish())),
      { numRuns: RUNS },
    );
  });

  it("writes int32 varints (negative ones in ten bytes) as BinaryWriter does", () => {
    fc.assert(
      fc.property(int32, (v) => same(ours(v), new BinaryWriter().int32(v).finish())),
      { numRuns: RUNS },
    );
  });

  it("writes fields as BinaryWriter does and omits zero and empty ones", () => {
    fc.assert(
      fc.property(
        int64,
        fc.oneof(
          fc.string({
            maxLength: 300,
            size: "max",
            unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
          }),
          fc.string({ maxLength: 300, unit: "grapheme" }),
        ),
        (v, text) => {
          const out = Buffer.alloc(varintFieldSize(v) + stringFieldSize(text));
          const end = writeStringField(out, writeVarintField(out, 0, 0x08, v), 0x12, text);
          expect(end).toBe(out.length);
          const w = new BinaryWriter();
          if (v !== 0n) w.uint32(0x08).int64(v);
          if (text !== "") w.uint32(0x12).string(text);
          same(out, w.finish());
        },
      ),
      { numRuns: RUNS },
    );
    expect(varintFieldSize(0)).toBe(0);
    expect(stringFieldSize("")).toBe(0);
  });

  it("encodes the Fetch trailer as the generated FetchResponse encoder does", () => {
    const offset = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), fc.constant(0n));
    fc.assert(
      fc.property(offset, offset, (highWatermark, logStartOffset) => {
        same(
          encodeFetchTrailer(highWatermark, logStartOffset),
          FetchResponse.encode({ batches: [], highWatermark, logStartOffset }).finish(),
        );
      }),
      { numRuns: RUNS },
    );
  });
});
