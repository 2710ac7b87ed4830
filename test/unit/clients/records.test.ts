import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { UnsupportedCompressionError } from "../../../clients/ts/src/errors.js";
import { FetchResponse } from "../../../clients/ts/src/gen/rill/v1/log.js";
import {
  type Batch,
  Compression,
  type Record,
  RecordBatch,
} from "../../../clients/ts/src/gen/rill/v1/record.js";
import { decodeBatch, decodeBatches } from "../../../clients/ts/src/records.js";

function rec(value: string, extra: Partial<Record> = {}): Record {
  return { key: Buffer.alloc(0), value: Buffer.from(value), headers: [], timestampMs: undefined, ...extra };
}

function batch(baseOffset: bigint, records: Record[], compression = Compression.COMPRESSION_NONE): Batch {
  const plain = { records };
  return {
    crc32c: 0,
    baseOffset,
    recordCount: records.length,
    appendTimeMs: 1_700_000_000_000n,
    producerId: 0n,
    producerSequence: 0,
    compression,
    records: compression === Compression.COMPRESSION_NONE ? plain : undefined,
    compressedRecords:
      compression === Compression.COMPRESSION_GZIP
        ? gzipSync(RecordBatch.encode(plain).finish())
        : compression === Compression.COMPRESSION_NONE
          ? Buffer.alloc(0)
          : Buffer.from([1, 2, 3]),
  };
}

/** Encodes batches as a FetchResponse and decodes it, as the wire would. */
function overTheWire(batches: Batch[]): Batch[] {
  const bytes = FetchResponse.encode({ batches, highWatermark: 100n, logStartOffset: 0n }).finish();
  return FetchResponse.decode(bytes).batches;
}

describe("client > records > decode", () => {
  it("numbers records from the base offset and keeps keys, values, headers and timestamps", () => {
    // Ensures record i of a batch has offset base_offset + i and every field round-trips byte-exact.
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13]);
    const [b] = overTheWire([
      batch(40n, [
        rec("a", { key: Buffer.from("k1"), timestampMs: 123n }),
        {
          key: Buffer.alloc(0),
          value: binary,
          headers: [{ key: "h", value: Buffer.from("v") }],
          timestampMs: undefined,
        },
        rec("", {
          headers: [
            { key: "dup", value: Buffer.from("1") },
            { key: "dup", value: Buffer.from("2") },
          ],
        }),
      ]),
    ]);
    const out = decodeBatches([b!], "t", 3, 0n);
    expect(out.map((r) => r.offset)).toEqual([40n, 41n, 42n]);
    expect(out[0]).toMatchObject({ topic: "t", partition: 3, timestamp: 123 });
    expect(out[0]!.key?.toString()).toBe("k1");
    expect(out[0]!.value.toString()).toBe("a");
    expect(out[1]!.key).toBeNull();
    expect(Buffer.compare(out[1]!.value, binary)).toBe(0);
    expect(out[1]!.headers.map((h) => [h.key, h.value.toString()])).toEqual([["h", "v"]]);
    // A record without its own timestamp takes the batch's append time.
    expect(out[1]!.timestamp).toBe(1_700_000_000_000);
    expect(out[2]!.value.length).toBe(0);
    expect(out[2]!.headers.map((h) => [h.key, h.value.toString()])).toEqual([
      ["dup", "1"],
      ["dup", "2"],
    ]);
  });

  it("skips records before the requested offset in a batch served whole", () => {
    // Ensures a fetch from the middle of a batch yields only records at or after the offset.
    const [b1, b2] = overTheWire([
      batch(10n, [rec("a"), rec("b"), rec("c")]),
      batch(13n, [rec("d"), rec("e")]),
    ]);
    const out = decodeBatches([b1!, b2!], "t", 0, 12n);
    expect(out.map((r) => [r.offset, r.value.toString()])).toEqual([
      [12n, "c"],
      [13n, "d"],
      [14n, "e"],
    ]);
    expect(decodeBatch(b1!, "t", 0, 13n)).toEqual([]);
    expect(decodeBatches([b1!, b2!], "t", 0, 15n)).toEqual([]);
  });

  it("gunzips GZIP batches", () => {
    // Ensures gzip-compressed batches decode to the same records as plain ones.
    const records = Array.from({ length: 50 }, (_, i) => rec(`value-${i}`, { key: Buffer.from(`k${i}`) }));
    const [gz] = overTheWire([batch(100n, records, Compression.COMPRESSION_GZIP)]);
    expect(gz!.records).toBeUndefined();
    const out = decodeBatches([gz!], "t", 0, 0n);
    expect(out).toHaveLength(50);
    expect(out[49]).toMatchObject({ offset: 149n });
    expect(out[49]!.value.toString()).toBe("value-49");
    expect(out[49]!.key!.toString()).toBe("k49");
  });

  it("treats UNSPECIFIED compression as NONE", () => {
    // Ensures a batch that does not name its compression is read as plain records.
    const b = batch(0n, [rec("x")]);
    b.compression = Compression.COMPRESSION_UNSPECIFIED;
    expect(decodeBatches(overTheWire([b]), "t", 0, 0n)[0]!.value.toString()).toBe("x");
  });

  it.each([
    [Compression.COMPRESSION_ZSTD, /zstd/],
    [Compression.COMPRESSION_LZ4, /lz4/],
  ])("refuses compression %i with a clear error", (compression, pattern) => {
    // Ensures ZSTD and LZ4 batches fail with UnsupportedCompressionError naming the codec.
    const [b] = overTheWire([batch(7n, [rec("x")], compression)]);
    expect(() => decodeBatches([b!], "t", 0, 0n)).toThrow(UnsupportedCompressionError);
    expect(() => decodeBatches([b!], "t", 0, 0n)).toThrow(pattern);
    try {
      decodeBatches([b!], "t", 0, 0n);
    } catch (e) {
      expect((e as UnsupportedCompressionError).retriable).toBe(false);
    }
  });
});
