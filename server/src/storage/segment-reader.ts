/**
 * Reading one segment: the batch containing an offset, then a run of whole frames; or the first
 * batch appended at/after a time. Both start from a sparse-index entry and walk frame headers
 * (constant work per batch) through a FrameCursor. A time lookup floor-searches the time index for
 * the last entry older than the time (every batch up to it is older, append times being
 * monotonic), starts at the offset-index entry at or before that batch, and walks to the first
 * batch at/after the time: exact however sparse the time index is (index-rule.ts).
 *
 * Invariants: a read sees only the segment's committed bytes (its size when the read starts), so
 * never a frame being written; it returns whole frames only, at least one, at most maxBytes unless
 * the first alone is larger, none ending past `bound`; every returned frame passed its CRC. The
 * caller holds a reference on the segment (Segment.acquire) for the duration.
 */
import { type FrameHeader, isFrameProblem, MAX_FRAME_HEADER_BYTES, verifyFrameCrc } from "./batch-frame.js";
import { CorruptBatchError } from "./errors.js";
import { FrameCursor } from "./frame-cursor.js";
import type { ReadResult } from "./log-api.js";
import type { Segment } from "./segment.js";

/** Bounds of a read's first window (see FrameCursor). */
const MIN_READ_BYTES = 4096;
const MAX_READ_BYTES = 8 << 20;
const EMPTY = Buffer.alloc(0);

export function emptyRead(offset: bigint): ReadResult {
  return { data: EMPTY, nextOffset: offset, batchCount: 0 };
}

/**
 * Frames from the batch containing `offset` (or, in a hole, the segment's first batch after it).
 * Null if no batch of the segment ends after `offset`: the caller tries the next segment. A bad
 * first frame throws CorruptBatchError; a bad later frame ends the run before it.
 */
export async function readSegment(
  segment: Segment,
  offset: bigint,
  maxBytes: number,
  bound: bigint,
  indexIntervalBytes: number,
): Promise<ReadResult | null> {
  const end = segment.size;
  const relative = offset - segment.baseOffset;
  let position = relative > 0n ? segment.offsetIndex.lookup(Number(relative)) : 0;
  const readSize = clamp(
    indexIntervalBytes + maxBytes + MAX_FRAME_HEADER_BYTES,
    MIN_READ_BYTES,
    MAX_READ_BYTES,
  );
  const cursor = new FrameCursor(segment, end, readSize);
  let first: FrameHeader | null = null;
  while (position < end) {
    const header = await cursor.header(position);
    if (header.baseOffset + BigInt(header.recordCount) > offset) {
      first = header;
      break;
    }
    position += header.frameBytes;
  }
  if (first === null) return null;
  if (first.baseOffset + BigInt(first.recordCount) > bound) return emptyRead(offset);
  const frames: Array<{ at: number; header: FrameHeader }> = [{ at: position, header: first }];
  let total = first.frameBytes;
  for (let at = position + total; at < end && total < maxBytes; ) {
    cursor.readSize = Math.max(maxBytes - total + MAX_FRAME_HEADER_BYTES, MIN_READ_BYTES);
    const header = await cursor.headerOrProblem(at);
    if (isFrameProblem(header)) break; // served up to here; the next read reports it
    if (header.baseOffset + BigInt(header.recordCount) > bound || total + header.frameBytes > maxBytes) break;
    frames.push({ at, header });
    total += header.frameBytes;
    at += header.frameBytes;
  }
  const data = await cursor.bytes(position, total);
  let good = 0;
  let goodBytes = 0;
  for (const { at, header } of frames) {
    if (!verifyFrameCrc(data, at - position, header)) {
      if (good === 0) throw new CorruptBatchError(segment.logPath, at, "CRC mismatch");
      break;
    }
    good++;
    goodBytes += header.frameBytes;
  }
  const last = frames[good - 1]!.header;
  return {
    data: goodBytes === total ? data : data.subarray(0, goodBytes),
    nextOffset: last.baseOffset + BigInt(last.recordCount),
    batchCount: good,
  };
}

/** The base offset of the segment's first batch appended at/after `timestampMs`, or null. */
export async function findTimestamp(
  segment: Segment,
  timestampMs: number,
  indexIntervalBytes: number,
): Promise<bigint | null> {
  const k = segment.timeIndex.lowerEntry(timestampMs);
  let position = k < 0 ? 0 : segment.offsetIndex.lookup(segment.timeIndex.relativeOffset(k));
  const readSize = indexIntervalBytes + 2 * MAX_FRAME_HEADER_BYTES;
  const cursor = new FrameCursor(segment, segment.size, clamp(readSize, MIN_READ_BYTES, MAX_READ_BYTES));
  while (position < cursor.end) {
    const header = await cursor.header(position);
    if (header.appendTimeMs >= timestampMs) return header.baseOffset;
    position += header.frameBytes;
  }
  return null;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
