import { describe, expect, it } from "vitest";
import { FetchResponse } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { Batch, Compression, RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import {
  BATCH_HEADER_BYTES,
  encodeFrame,
  encodeFrameHeader,
  frameBytes,
  frameHeaderBytes,
  isFrameProblem,
  MAX_FRAME_HEADER_BYTES,
  MIN_FRAME_HEADER_BYTES,
  parseFrameHeader,
  verifyFrameCrc,
} from "../../../server/src/storage/batch-frame.js";
import { recordBatch } from "./helpers.js";

const fields = {
  baseOffset: 1234567890123n,
  recordCount: 3,
  appendTimeMs: 1_700_000_000_123,
  compression: 1,
};

describe("storage > batch-frame > encode", () => {
  it("writes a 44-byte fixed Batch header that the generated decoder reads back", () => {
    // Ensures the frame is one FetchResponse.batches element whose Batch fields decode exactly.
    const records = recordBatch(["a", "bb", "ccc"]);
    const frame = encodeFrame(fields, records);
    expect(frame.length).toBe(frameBytes(records.length));
    const header = parseFrameHeader(frame, 0, frame.length);
    if (isFrameProblem(header)) throw new Error(header.problem);
    expect(header.recordsStart - header.batchStart - 2).toBeLessThanOrEqual(BATCH_HEADER_BYTES + 4);
    expect(frame[header.batchStart + BATCH_HEADER_BYTES]).toBe(0x42);
    const [batch] = FetchResponse.decode(frame).batches;
    expect(batch).toBeDefined();
    expect(batch!.baseOffset).toBe(fields.baseOffset);
    expect(batch!.recordCount).toBe(3);
    expect(batch!.appendTimeMs).toBe(BigInt(fields.appendTimeMs));
    expect(batch!.producerId).toBe(0n);
    expect(batch!.producerSequence).toBe(0);
    expect(batch!.compression).toBe(Compression.COMPRESSION_NONE);
    expect(batch!.records).toEqual(RecordBatch.decode(records));
    expect(batch!.crc32c).toBe(header.crc32c);
  });

  it("puts compressed records in field 9", () => {
    // Ensures GZIP/ZSTD/LZ4 batches travel as compressed_records, byte for byte.
    const compressed = Buffer.from([1, 2, 3, 4, 5, 250]);
    const frame = encodeFrame({ ...fields, compression: Compression.COMPRESSION_ZSTD }, compressed);
    const batch = Batch.decode(frame.subarray(2));
    expect(batch.compression).toBe(Compression.COMPRESSION_ZSTD);
    expect(batch.records).toBeUndefined();
    expect(Buffer.from(batch.compressedRecords).equals(compressed)).toBe(true);
  });

  it("chains the CRC over header and records so it covers every byte after itself", () => {
    // Ensures the CRC check fails when any covered byte changes and ignores nothing.
    const records = recordBatch(["x", "y"]);
    const frame = encodeFrame(fields, records);
    const header = parseFrameHeader(frame, 0, frame.length);
    if (isFrameProblem(header)) throw new Error(header.problem);
    expect(verifyFrameCrc(frame, 0, header)).toBe(true);
    for (let i = header.batchStart + 5; i < frame.length; i++) {
      const copy = Buffer.from(frame);
      copy[i] = copy[i]! ^ 0x01;
      const parsed = parseFrameHeader(copy, 0, copy.length);
      if (!isFrameProblem(parsed)) expect(verifyFrameCrc(copy, 0, parsed)).toBe(false);
    }
  });

  it("sizes headers between the minimum and maximum for every length class", () => {
    // Ensures frameHeaderBytes/encodeFrameHeader agree across varint length boundaries.
    for (const n of [0, 1, 80, 81, 82, 127, 128, 16_000, 16_384, 2_000_000]) {
      const records = Buffer.alloc(n, 7);
      const header = encodeFrameHeader({ ...fields, compression: Compression.COMPRESSION_LZ4 }, records);
      expect(header.length).toBe(frameHeaderBytes(n));
      expect(header.length).toBeGreaterThanOrEqual(MIN_FRAME_HEADER_BYTES);
      expect(header.length).toBeLessThanOrEqual(MAX_FRAME_HEADER_BYTES);
      const frame = Buffer.concat([header, records]);
      const parsed = parseFrameHeader(frame, 0, frame.length);
      if (isFrameProblem(parsed)) throw new Error(parsed.problem);
      expect(parsed.frameBytes).toBe(frame.length);
      expect(parsed.recordsBytes).toBe(n);
      expect(FetchResponse.decode(frame).batches).toHaveLength(1);
    }
  });
});

describe("storage > batch-frame > parse", () => {
  const frame = encodeFrame(fields, recordBatch(["a"]));

  it("reports a header cut short as incomplete", () => {
    // Ensures a reader can tell "need more bytes" from "not a frame".
    for (const n of [0, 1, 10, 40]) {
      const parsed = parseFrameHeader(frame, 0, n);
      expect(isFrameProblem(parsed) && parsed.incomplete).toBe(true);
    }
  });

  it("rejects bad tags, zero record counts and inconsistent lengths", () => {
    // Ensures garbage is never mistaken for a frame.
    const cases: Array<[number, number]> = [
      [0, 0x0b], // frame tag
      [2, 0x0e], // crc tag
      [2 + 42, 0x39], // compression tag
      [2 + 44, 0x4a], // records tag for an uncompressed batch
      [1, frame[1]! + 1], // frame length
    ];
    for (const [at, value] of cases) {
      const copy = Buffer.from(frame);
      copy[at] = value;
      const parsed = parseFrameHeader(copy, 0, copy.length);
      expect(isFrameProblem(parsed) && !parsed.incomplete).toBe(true);
    }
    const zero = Buffer.from(frame);
    zero.writeUInt32LE(0, 2 + 15);
    expect(isFrameProblem(parseFrameHeader(zero, 0, zero.length))).toBe(true);
  });
});
