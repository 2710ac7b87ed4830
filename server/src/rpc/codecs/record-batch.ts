/**
 * Counting and checking the records of an encoded rill.v1.RecordBatch without decoding them
 * (DESIGN §3.3). This is the broker's per-record hot path, so it is a tight, allocation-free walk
 * over tags and lengths rather than a generic reader.
 *
 * RecordBatch wire layout: a sequence of fields; field 1 (LEN) is one Record each. A Record is a
 * sequence of fields: key (1, LEN), value (2, LEN), headers (3, LEN, repeated), timestamp_ms
 * (4, VARINT). The walk checks that every tag is well formed, every varint fits in 64 bits (Go's
 * decoder refuses a longer one, so one such record would poison a Go consumer's whole response),
 * every wire type is one protobuf
 * allows, every length stays inside its parent, and the known fields have their declared wire
 * type; inside headers (the one nested message of a record) the same, plus a UTF-8 key. It never
 * looks inside keys or values. Unknown fields are skipped (forward compatibility), as a generated
 * decoder would. The result: a batch the broker accepts decodes, with the same record count, in
 * every consumer.
 */
import { isUtf8 } from "node:buffer";

export class MalformedBatchError extends Error {
  override name = "MalformedBatchError";
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

// The walker's cursor: module-level so reading a varint allocates nothing.
let cursor = 0;

/**
 * Reads a varint of up to 10 bytes at `cursor`, returns it (exact below 2^53) and advances. The
 * tenth byte carries bit 63 only: a larger one overflows 64 bits and is refused.
 */
function readVarint(buf: Uint8Array, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (cursor >= end) throw new MalformedBatchError(`truncated varint at byte ${cursor}`);
    const b = buf[cursor++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (i === 9 && b > 1)
        throw new MalformedBatchError(`varint overflows 64 bits (ends at byte ${cursor})`);
      return value;
    }
    scale *= 128;
  }
  throw new MalformedBatchError(`varint longer than 10 bytes ending at byte ${cursor}`);
}

// The last field read by readField: module-level for the same reason as the cursor.
let field = 0;
let wireType = 0;

/**
 * Reads a tag into `field` and `wireType`. Generated decoders read tags as uint32 (keeping the low
 * 32 bits of a longer varint), so a tag of 2^32 or more would mean one field to them and another
 * to a 64-bit reader: refuse it, so the broker's count always agrees with what consumers decode.
 */
function readField(buf: Uint8Array, end: number, where: string): void {
  const tag = readVarint(buf, end);
  if (tag > 0xffffffff)
    throw new MalformedBatchError(`tag varint ${tag} is too large (ends at byte ${cursor})`);
  field = Math.floor(tag / 8);
  wireType = tag % 8;
  if (field === 0) throw new MalformedBatchError(`field number 0 in ${where} at byte ${cursor}`);
}

/** Reads a length prefix at `cursor`; returns where the payload ends, inside `end`. */
function readLength(buf: Uint8Array, end: number, what: string): number {
  const len = readVarint(buf, end);
  const payloadEnd = cursor + len;
  if (payloadEnd > end) {
    throw new MalformedBatchError(
      `${what} claims ${len} bytes but only ${end - cursor} remain (byte ${cursor})`,
    );
  }
  return payloadEnd;
}

function expectLen(what: string): void {
  if (wireType !== LEN) {
    throw new MalformedBatchError(`${what} has wire type ${wireType}, expected length-delimited`);
  }
}

/** Skips the payload of a field of `wireType` at `cursor`, staying inside `end`. */
function skipField(buf: Uint8Array, wireType: number, end: number): void {
  switch (wireType) {
    case VARINT:
      readVarint(buf, end);
      return;
    case I64:
      cursor += 8;
      break;
    case I32:
      cursor += 4;
      break;
    case LEN: {
      const len = readVarint(buf, end);
      cursor += len;
      break;
    }
    default:
      throw new MalformedBatchError(`unsupported wire type ${wireType} at byte ${cursor}`);
  }
  if (cursor > end)
    throw new MalformedBatchError(`field runs past the end of its message (byte ${cursor} > ${end})`);
}

/** Header: key (1, LEN, UTF-8 text: decoders in Go or Python refuse anything else), value (2, LEN). */
function checkHeader(buf: Uint8Array, end: number): void {
  while (cursor < end) {
    readField(buf, end, "a header");
    if (field <= 2) expectLen(`header field ${field}`);
    if (field === 1) {
      const keyEnd = readLength(buf, end, "a header key");
      if (!isUtf8(buf.subarray(cursor, keyEnd))) {
        throw new MalformedBatchError(`header key at byte ${cursor} is not valid UTF-8`);
      }
      cursor = keyEnd;
    } else {
      skipField(buf, wireType, end);
    }
  }
}

function checkRecord(buf: Uint8Array, end: number): void {
  while (cursor < end) {
    readField(buf, end, "a record");
    if (field <= 3) expectLen(`record field ${field}`);
    if (field === 4 && wireType !== VARINT) {
      throw new MalformedBatchError(`record field timestamp_ms has wire type ${wireType}, expected varint`);
    }
    if (field === 3) checkHeader(buf, readLength(buf, end, "a header"));
    else skipField(buf, wireType, end);
  }
}

/**
 * Returns how many records the encoded RecordBatch holds, checking the framing of each record.
 * Throws MalformedBatchError describing the first problem. Stops at record `maxRecords + 1`
 * without looking further (and returns maxRecords + 1): such a batch is refused for its count, so
 * a hostile batch of millions of empty records costs a bounded walk, not one per record it holds.
 */
export function countRecords(buf: Uint8Array, maxRecords = Number.POSITIVE_INFINITY): number {
  const end = buf.length;
  let count = 0;
  cursor = 0;
  while (cursor < end) {
    readField(buf, end, "the batch");
    if (field === 1) {
      expectLen("the records field");
      checkRecord(buf, readLength(buf, end, `record ${count}`));
      count++;
      if (count > maxRecords) return count;
    } else {
      skipField(buf, wireType, end);
    }
  }
  return count;
}
