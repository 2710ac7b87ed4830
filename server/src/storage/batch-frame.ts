/**
 * Frames: how one stored batch is laid out in a segment file — and on the wire (DESIGN §3.2).
 *
 * A frame is exactly one element of field 1 (`batches`) of rill.v1.FetchResponse, so any run of
 * whole frames is a valid encoding of `FetchResponse.batches` and Fetch sends it as is:
 *
 *   frame offset  bytes  content
 *   0             1      0x0a            FetchResponse field 1, wire type LEN
 *   1             v      varint L        length of the Batch (v = 1..5 bytes, minimal encoding)
 *   1+v           L      rill.v1.Batch, with B = 1+v:
 *     B+0         1+4    0x0d crc32c     fixed32 LE (field 1); CRC32C of Batch bytes [5, L)
 *     B+5         1+8    0x11 base_offset     fixed64 LE (field 2)
 *     B+14        1+4    0x1d record_count    fixed32 LE (field 3), >= 1
 *     B+19        1+8    0x21 append_time_ms  fixed64 LE (field 4)
 *     B+28        1+8    0x29 producer_id     fixed64 LE (field 5), 0 today
 *     B+37        1+4    0x35 producer_sequence fixed32 LE (field 6), 0 today
 *     B+42        1+1    0x38 compression     varint (field 7), always one byte (value < 128)
 *     B+44        1      0x42 (field 8 `records`, compression NONE/UNSPECIFIED)
 *                        or 0x4a (field 9 `compressed_records`, GZIP/ZSTD/LZ4)
 *     B+45        w      varint R        length of the records bytes (w = 1..5)
 *     B+45+w      R      the records, exactly as the producer sent them (never decoded here)
 *
 * So L = 45 + w + R, and the "frame header" (everything before the records) is 1+v+45+w bytes,
 * between 48 and MAX_FRAME_HEADER_BYTES. The first 44 bytes of every Batch sit at fixed places,
 * which is what lets readers walk a segment doing constant work per batch. Every field is always
 * written, even when zero, so the layout never shifts; protobuf decoders accept explicit zeros.
 *
 * Invariants checked by parseFrameHeader: the tags above at their places, minimal varints,
 * L = 45 + w + R, record_count >= 1, compression < 128 and consistent with the records tag, the
 * whole frame <= MAX_FRAME_BYTES. The CRC is checked separately (verifyFrameCrc), because walking
 * headers must not need the records in memory.
 */
import { crc32c } from "@node-rs/crc32";

/** FetchResponse field 1 (batches), wire type LEN. */
export const FRAME_TAG = 0x0a;
/** Bytes of a Batch before its records tag: the fixed-width scalar fields. */
export const BATCH_HEADER_BYTES = 44;
/** Largest frame header (tag, 5-byte length, 44 fixed bytes, records tag, 5-byte length). */
export const MAX_FRAME_HEADER_BYTES = 1 + 5 + BATCH_HEADER_BYTES + 1 + 5;
/** Smallest frame header (both varints one byte). */
export const MIN_FRAME_HEADER_BYTES = 1 + 1 + BATCH_HEADER_BYTES + 1 + 1;
/** Hard limit of the format: positions in the offset index are u32 and Buffers stay below 2 GiB. */
export const MAX_FRAME_BYTES = 2 ** 31 - 1;

const TAG_CRC = 0x0d;
const TAG_BASE_OFFSET = 0x11;
const TAG_RECORD_COUNT = 0x1d;
const TAG_APPEND_TIME = 0x21;
const TAG_PRODUCER_ID = 0x29;
const TAG_PRODUCER_SEQUENCE = 0x35;
const TAG_COMPRESSION = 0x38;
const TAG_RECORDS = 0x42;
const TAG_COMPRESSED_RECORDS = 0x4a;
/** Offset within the Batch of the first byte the CRC covers (the base_offset tag). */
const CRC_START = 5;
const TWO_32 = 2 ** 32;

/** The scalar fields of a batch the broker sets. */
export interface BatchFields {
  baseOffset: bigint;
  recordCount: number;
  /** ms since the Unix epoch, a non-negative safe integer. */
  appendTimeMs: number;
  /** rill.v1.Compression value, 0..127. */
  compression: number;
}

/** A parsed frame header; positions are relative to the frame's first byte. */
export interface FrameHeader extends BatchFields {
  /** Bytes of the whole frame (tag, length varint, Batch). */
  frameBytes: number;
  /** Where the Batch starts (1 + size of the length varint). */
  batchStart: number;
  crc32c: number;
  /** Where the records start: the frame header's size. */
  recordsStart: number;
  recordsBytes: number;
}

/** Why bytes are not a frame header. `incomplete`: more bytes might make it one. */
export interface FrameProblem {
  problem: string;
  incomplete: boolean;
}

export function isFrameProblem(parsed: FrameHeader | FrameProblem): parsed is FrameProblem {
  return (parsed as FrameProblem).problem !== undefined;
}

export function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    n++;
  }
  return n;
}

/** Writes a non-negative safe integer as a varint at `at`; returns the position after it. */
export function writeVarint(target: Buffer, at: number, value: number): number {
  let pos = at;
  while (value >= 0x80) {
    target[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[pos++] = value;
  return pos;
}

/** Decodes a minimal varint of at most 5 bytes; [value, bytes], [-1, 0] if incomplete, [-2, 0] if bad. */
function readVarint(buf: Uint8Array, at: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (at + i >= end) return [-1, 0];
    const b = buf[at + i]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return i > 0 && b === 0 ? [-2, 0] : [value, i + 1];
    scale *= 0x80;
  }
  return [-2, 0];
}

/** Whether `compression` stores its records in field 8 (a RecordBatch) rather than field 9. */
export function usesRecordsField(compression: number): boolean {
  return compression === 0 || compression === 1;
}

/** Bytes of the Batch message holding `recordsBytes` bytes of records. */
export function batchBytes(recordsBytes: number): number {
  return BATCH_HEADER_BYTES + 1 + varintBytes(recordsBytes) + recordsBytes;
}

/** Bytes of the frame header (everything before the records) for `recordsBytes` bytes of records. */
export function frameHeaderBytes(recordsBytes: number): number {
  const batch = batchBytes(recordsBytes);
  return 1 + varintBytes(batch) + batch - recordsBytes;
}

/** Bytes of the whole frame for `recordsBytes` bytes of records. */
export function frameBytes(recordsBytes: number): number {
  const batch = batchBytes(recordsBytes);
  return 1 + varintBytes(batch) + batch;
}

/**
 * Writes the frame header for `records` into `target` at `at`, CRC included (computed over the
 * header's tail and then chained over the records, so the records are never copied). Returns the
 * header's size. The frame is then `target[at, at + size)` followed by `records`.
 */
export function writeFrameHeader(
  target: Buffer,
  at: number,
  fields: BatchFields,
  records: Uint8Array,
): number {
  const batch = batchBytes(records.byteLength);
  let pos = at;
  target[pos++] = FRAME_TAG;
  pos = writeVarint(target, pos, batch);
  const batchStart = pos;
  target[pos] = TAG_CRC;
  target[pos + 5] = TAG_BASE_OFFSET;
  target.writeBigUInt64LE(fields.baseOffset, pos + 6);
  target[pos + 14] = TAG_RECORD_COUNT;
  target.writeUInt32LE(fields.recordCount, pos + 15);
  target[pos + 19] = TAG_APPEND_TIME;
  target.writeUInt32LE(fields.appendTimeMs % TWO_32, pos + 20);
  target.writeUInt32LE(Math.floor(fields.appendTimeMs / TWO_32), pos + 24);
  target[pos + 28] = TAG_PRODUCER_ID;
  target.fill(0, pos + 29, pos + 37);
  target[pos + 37] = TAG_PRODUCER_SEQUENCE;
  target.fill(0, pos + 38, pos + 42);
  target[pos + 42] = TAG_COMPRESSION;
  target[pos + 43] = fields.compression;
  target[pos + 44] = usesRecordsField(fields.compression) ? TAG_RECORDS : TAG_COMPRESSED_RECORDS;
  pos = writeVarint(target, pos + 45, records.byteLength);
  const crc = crc32c(records, crc32c(target.subarray(batchStart + CRC_START, pos)));
  target.writeUInt32LE(crc, batchStart + 1);
  return pos - at;
}

/** A fresh buffer holding the frame header for `records` (see writeFrameHeader). */
export function encodeFrameHeader(fields: BatchFields, records: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(frameHeaderBytes(records.byteLength));
  writeFrameHeader(header, 0, fields, records);
  return header;
}

/** A whole frame in one fresh buffer (copies the records; for tests and tools, not the hot path). */
export function encodeFrame(fields: BatchFields, records: Uint8Array): Buffer {
  return Buffer.concat([encodeFrameHeader(fields, records), records]);
}

/**
 * Parses the frame header at `buf[start..end)`. Needs only the header's bytes, not the records.
 * Returns the header, or a problem (`incomplete` when the bytes end before the header does).
 */
export function parseFrameHeader(buf: Buffer, start: number, end: number): FrameHeader | FrameProblem {
  if (start >= end) return { problem: "no bytes", incomplete: true };
  if (buf[start] !== FRAME_TAG) return { problem: `bad frame tag 0x${hex(buf[start]!)}`, incomplete: false };
  const [batch, v] = readVarint(buf, start + 1, end);
  if (batch === -1) return { problem: "frame length cut short", incomplete: true };
  if (batch === -2) return { problem: "bad frame length varint", incomplete: false };
  if (batch < BATCH_HEADER_BYTES + 2)
    return { problem: `frame length ${batch} too small`, incomplete: false };
  const frame = 1 + v + batch;
  if (frame > MAX_FRAME_BYTES) return { problem: `frame length ${batch} too large`, incomplete: false };
  const b = start + 1 + v;
  if (end - b < Math.min(batch, BATCH_HEADER_BYTES + 6))
    return { problem: "frame header cut short", incomplete: true };
  const tagProblem = checkTags(buf, b);
  if (tagProblem !== null) return { problem: tagProblem, incomplete: false };
  const compression = buf[b + 43]!;
  if (compression >= 0x80)
    return { problem: `compression ${compression} is not one byte`, incomplete: false };
  const recordsTag = usesRecordsField(compression) ? TAG_RECORDS : TAG_COMPRESSED_RECORDS;
  if (buf[b + 44] !== recordsTag)
    return { problem: `bad records tag 0x${hex(buf[b + 44]!)}`, incomplete: false };
  const [records, w] = readVarint(buf, b + 45, Math.min(end, b + batch));
  if (records < 0) return { problem: "bad records length varint", incomplete: false };
  if (45 + w + records !== batch) {
    return { problem: `records length ${records} disagrees with frame length ${batch}`, incomplete: false };
  }
  const recordCount = buf.readUInt32LE(b + 15);
  if (recordCount < 1) return { problem: "record count is 0", incomplete: false };
  const timeHigh = buf.readUInt32LE(b + 24);
  if (timeHigh >= 2 ** 21) return { problem: "append time out of range", incomplete: false };
  return {
    frameBytes: frame,
    batchStart: 1 + v,
    crc32c: buf.readUInt32LE(b + 1),
    baseOffset: buf.readBigUInt64LE(b + 6),
    recordCount,
    appendTimeMs: timeHigh * TWO_32 + buf.readUInt32LE(b + 20),
    compression,
    recordsStart: 1 + v + 45 + w,
    recordsBytes: records,
  };
}

function checkTags(buf: Buffer, b: number): string | null {
  const expected: ReadonlyArray<readonly [number, number]> = [
    [0, TAG_CRC],
    [5, TAG_BASE_OFFSET],
    [14, TAG_RECORD_COUNT],
    [19, TAG_APPEND_TIME],
    [28, TAG_PRODUCER_ID],
    [37, TAG_PRODUCER_SEQUENCE],
    [42, TAG_COMPRESSION],
  ];
  for (const [at, tag] of expected) {
    if (buf[b + at] !== tag) return `bad tag 0x${hex(buf[b + at]!)} at batch byte ${at}`;
  }
  return null;
}

/** Whether the frame whose first byte is `buf[start]` (header parsed, all bytes present) has a good CRC. */
export function verifyFrameCrc(buf: Uint8Array, start: number, header: FrameHeader): boolean {
  const covered = buf.subarray(start + header.batchStart + CRC_START, start + header.frameBytes);
  return crc32c(covered) === header.crc32c;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
