import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FetchResponse } from "../../../clients/ts/src/gen/rill/v1/log.js";
import {
  Compression,
  RecordBatch,
  type Record as RillRecord,
} from "../../../clients/ts/src/gen/rill/v1/record.js";
import { CompressionCode } from "../../../server/src/storage/log-api.js";
import { Harness } from "./helpers.js";

let h: Harness;
beforeEach(() => {
  h = new Harness({ segmentBytes: 700, indexIntervalBytes: 100 });
});
afterEach(async () => {
  await h.cleanup();
});

function record(i: number): RillRecord {
  return {
    key: Buffer.from(`key-${i}`),
    value: Buffer.from(`value-${i}-${"x".repeat(i % 7)}`),
    headers: i % 3 === 0 ? [{ key: "h", value: Buffer.from([i & 0xff]) }] : [],
    timestampMs: i % 2 === 0 ? BigInt(1_600_000_000_000 + i) : undefined,
  };
}

describe("storage > wire format", () => {
  it("gives each read its own memory, with spare room after the data that the caller may overwrite", async () => {
    // Ensures ReadResult.spare is safe to write into (the fetch path puts FetchResponse's trailer
    // there): it lies inside the read's own allocation, and overwriting it changes neither another
    // read of the same bytes nor the file.
    const log = await h.open();
    for (let b = 0; b < 6; b++) {
      const records = [record(b)];
      log.append([
        {
          records: RecordBatch.encode({ records }).finish(),
          recordCount: 1,
          compression: CompressionCode.None,
        },
      ]);
    }
    const fileBefore = readFileSync(h.path(0n, "log"));
    const first = await log.read(1n, 120);
    const again = await log.read(1n, 120);
    expect(first.batchCount).toBeGreaterThan(0);
    expect(first.batchCount).toBeLessThan(5); // the read stopped short of the segment: room after it
    expect(first.spare).toBeGreaterThan(0);
    expect(first.data.byteOffset + first.data.length + first.spare).toBe(first.data.buffer.byteLength);
    expect(first.data.buffer).not.toBe(again.data.buffer);
    const kept = Buffer.from(first.data);
    Buffer.from(first.data.buffer, first.data.byteOffset + first.data.length, first.spare).fill(0xff);
    expect(first.data.equals(kept)).toBe(true);
    expect(again.data.equals(kept)).toBe(true);
    expect((await log.read(1n, 120)).data.equals(kept)).toBe(true);
    expect(readFileSync(h.path(0n, "log")).equals(fileBefore)).toBe(true);
  });

  it("serves raw segment bytes that decode as FetchResponse.batches, exactly as produced", async () => {
    // Ensures disk format = wire format: a raw byte range is a valid FetchResponse encoding whose
    // batches hold exactly the records produced with the generated RecordBatch encoder.
    let log = await h.open();
    const produced: RillRecord[][] = [];
    const compressed = Buffer.from("pretend this is zstd");
    for (let b = 0; b < 12; b++) {
      const records = Array.from({ length: 1 + (b % 4) }, (_, i) => record(b * 10 + i));
      produced.push(records);
      const bytes = RecordBatch.encode({ records }).finish();
      log.append([{ records: bytes, recordCount: records.length, compression: CompressionCode.None }]);
      h.clock.advance(3);
    }
    log.append([{ records: compressed, recordCount: 5, compression: CompressionCode.Zstd }]);
    expect(log.segmentCount).toBeGreaterThan(1);

    const check = async () => {
      const batches = [];
      let next = 0n;
      while (next < log.logEndOffset) {
        const read = await log.read(next, 300);
        const response = FetchResponse.decode(read.data);
        expect(response.batches).toHaveLength(read.batchCount);
        batches.push(...response.batches);
        next = read.nextOffset;
      }
      expect(batches).toHaveLength(13);
      let offset = 0n;
      for (let b = 0; b < 12; b++) {
        const batch = batches[b]!;
        expect(batch.baseOffset).toBe(offset);
        expect(batch.recordCount).toBe(produced[b]!.length);
        expect(batch.compression).toBe(Compression.COMPRESSION_NONE);
        expect(batch.appendTimeMs).toBe(BigInt(h.clock.now() - 36 + 3 * b));
        expect(batch.records).toEqual({ records: produced[b] });
        offset += BigInt(batch.recordCount);
      }
      const last = batches[12]!;
      expect(last.compression).toBe(Compression.COMPRESSION_ZSTD);
      expect(Buffer.from(last.compressedRecords).equals(compressed)).toBe(true);
      expect(last.recordCount).toBe(5);
    };
    await check();

    // The segment files themselves, concatenated, are one valid FetchResponse.
    const files = log.segmentBaseOffsets().map((base) => readFileSync(h.path(base, "log")));
    expect(FetchResponse.decode(Buffer.concat(files)).batches).toHaveLength(13);

    log = await h.reopen(log);
    await check();
  });
});
