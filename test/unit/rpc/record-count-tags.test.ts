/**
 * Regression (found in review): countRecords (server/src/rpc/codecs/record-batch.ts) reads a tag as a full
 * 64-bit varint, while generated decoders (ts-proto over @bufbuild/protobuf's BinaryReader, and
 * protobuf runtimes in general) read a tag as uint32, keeping its low 32 bits. A tag varint of
 * 2^32 + 0x0a is "field 536870913, LEN" to the broker (skipped as unknown) but "field 1, LEN" (a
 * Record) to every consumer: the broker assigns one offset to a batch consumers decode as two
 * records, so the next batch's offsets collide with it (offsets seen by consumers are reused).
 * Field numbers above 2^29 - 1 are invalid protobuf; the walk should reject tags >= 2^32 (or any
 * field number > 2^29 - 1) as MalformedBatchError.
 */
import { expect, it } from "vitest";
import { RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import { countRecords, MalformedBatchError } from "../../../server/src/rpc/codecs/record-batch.js";

it("never counts fewer records than a generated decoder sees", () => {
  const one = Buffer.from(
    RecordBatch.encode({
      records: [{ key: Buffer.alloc(0), value: Buffer.from("a"), headers: [], timestampMs: undefined }],
    }).finish(),
  );
  const overlongTag = Buffer.from([0x8a, 0x80, 0x80, 0x80, 0x10]); // varint 2^32 + 0x0a
  const batch = Buffer.concat([one, overlongTag, one.subarray(1)]);
  const decoded = RecordBatch.decode(batch).records.length; // 2
  let counted: number | "rejected";
  try {
    counted = countRecords(batch);
  } catch (err) {
    if (!(err instanceof MalformedBatchError)) throw err;
    counted = "rejected";
  }
  expect(counted === "rejected" || counted === decoded).toBe(true);
});
