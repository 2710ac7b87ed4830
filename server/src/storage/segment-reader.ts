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
import type { Logger } from "../logger.js";
import { type FrameHeader, isFrameProblem, MAX_FRAME_HEADER_BYTES, verifyFrameCrc } from "./batch-frame.js";
import { CorruptBatchError } from "./errors.js";
import { FrameCursor } from "./frame-cursor.js";
import { goodFrameAt, nextGoodFrame } from "./frame-resync.js";
import type { ReadResult } from "./log-api.js";
import type { Segment } from "./segment.js";

/** Bounds of a read's first window (see FrameCursor). */
const MIN_READ_BYTES = 4096;
const MAX_READ_BYTES = 8 << 20;
const EMPTY = Buffer.alloc(0);

export function emptyRead(offset: bigint): ReadResult {
  return { data: EMPTY, nextOffset: offset, batchCount: 0, spare: 0 };
}

/** Where a walk to `relative` starts: a checked offset-index entry, or the segment's start. */
interface WalkStart {
  position: number;
  /** The base offset of the batch at `position`. */
  expected: bigint;
}

/**
 * The offset-index entry at or before `relative`, if the frame it points at is really the batch
 * it names (bit rot in an index must never make a read serve the wrong offsets); else the
 * segment's start, with a warning naming the index file and entry.
 */
async function walkStart(
  segment: Segment,
  cursor: FrameCursor,
  relative: number,
  logger: Logger | undefined,
  check?: (header: FrameHeader) => boolean,
): Promise<WalkStart> {
  const atStart = { position: 0, expected: segment.baseOffset };
  const k = relative > 0 ? segment.offsetIndex.floorEntry(relative) : -1;
  // A recent append at or before the offset, closer than the index entry (recent-frames.ts): a
  // following read starts right at the new frames. Checked like an index entry; a miss is silent.
  const recent = segment.recentFrames?.floor(relative);
  if (recent && recent.position > 0 && (k <= 0 || recent.relative > segment.offsetIndex.relativeOffset(k))) {
    const expected = segment.baseOffset + BigInt(recent.relative);
    if (await frameStartsAt(cursor, recent.position, expected, check))
      return { position: recent.position, expected };
  }
  if (k <= 0) return atStart;
  const position = segment.offsetIndex.position(k);
  const expected = segment.baseOffset + BigInt(segment.offsetIndex.relativeOffset(k));
  if (await frameStartsAt(cursor, position, expected, check)) return { position, expected };
  logger?.warn(
    { file: segment.indexPath, entry: k, position, expectedOffset: String(expected) },
    "index entry does not match the log (damaged index?): walking the segment from its start",
  );
  return atStart;
}

/** Whether a frame with base offset `expected` (and passing `check`) starts at `position`. */
async function frameStartsAt(
  cursor: FrameCursor,
  position: number,
  expected: bigint,
  check: ((header: FrameHeader) => boolean) | undefined,
): Promise<boolean> {
  if (position >= cursor.end) return false;
  const header = await cursor.headerOrProblem(position);
  return !isFrameProblem(header) && header.baseOffset === expected && (check?.(header) ?? true);
}

/**
 * The first frame of a read: the batch containing `offset` (or, past damage, the first good one
 * after it), walking headers from `start`. Offsets are dense inside a segment, so every header must
 * carry the base offset the previous one implies. When one does not (or does not parse): if that
 * frame is whole and passes its CRC, the previous frame's record count was what lied, and the
 * offsets between the two are lost; else this frame is damaged and the next good frame
 * (frame-resync.ts) says which offsets are lost. Either way the read fails with the lost range if
 * `offset` is in it, or goes on past it.
 */
async function findFirst(
  segment: Segment,
  cursor: FrameCursor,
  offset: bigint,
  start: WalkStart,
): Promise<{ at: number; header: FrameHeader } | null> {
  const end = cursor.end;
  let { position, expected } = start;
  let previous: { at: number; baseOffset: bigint } | null = null;
  while (position < end) {
    const header = await cursor.headerOrProblem(position);
    if (isFrameProblem(header) || header.baseOffset !== expected) {
      const here = isFrameProblem(header) ? null : await goodFrameAt(segment, position, end);
      if (here !== null && previous !== null && here.baseOffset > previous.baseOffset) {
        if (offset < here.baseOffset) {
          const why = `record count disagrees with the next batch's base offset ${here.baseOffset}`;
          throw new CorruptBatchError(segment.logPath, previous.at, why, {
            from: previous.baseOffset,
            resumeAt: here.baseOffset,
          });
        }
        expected = here.baseOffset;
        continue;
      }
      const why = isFrameProblem(header)
        ? header.problem
        : `base offset ${header.baseOffset} where ${expected} was expected`;
      const next = await nextGoodFrame(segment, position + 1, expected, end);
      const resumeAt = next?.baseOffset ?? segment.nextOffset;
      if (offset < resumeAt)
        throw new CorruptBatchError(segment.logPath, position, why, { from: expected, resumeAt });
      if (next === null) return null;
      position = next.position;
      expected = next.baseOffset;
      previous = null;
      continue;
    }
    if (header.baseOffset + BigInt(header.recordCount) > offset) return { at: position, header };
    previous = { at: position, baseOffset: header.baseOffset };
    position += header.frameBytes;
    expected = header.baseOffset + BigInt(header.recordCount);
  }
  return null;
}

/**
 * Frames from the batch containing `offset` (or, in a hole, the segment's first batch after it).
 * Null if no batch of the segment ends after `offset`: the caller tries the next segment. A bad
 * first frame throws CorruptBatchError naming the file, the position and, when it can be told, the
 * lost offsets and where to resume; a bad later frame ends the run before it. A bad first frame
 * whose (damaged) record count made it seem to hold `offset` is stepped over.
 */
export async function readSegment(
  segment: Segment,
  offset: bigint,
  maxBytes: number,
  bound: bigint,
  indexIntervalBytes: number,
  logger?: Logger,
): Promise<ReadResult | null> {
  const end = segment.size;
  const readSize = clamp(
    indexIntervalBytes + maxBytes + MAX_FRAME_HEADER_BYTES,
    MIN_READ_BYTES,
    MAX_READ_BYTES,
  );
  const cursor = new FrameCursor(segment, end, readSize);
  let start = await walkStart(segment, cursor, Number(offset - segment.baseOffset), logger);
  // Each round starts strictly further into the segment, so this ends.
  for (;;) {
    const found = await findFirst(segment, cursor, offset, start);
    if (found === null) return null;
    const { at: position, header: first } = found;
    if (first.baseOffset + BigInt(first.recordCount) > bound) return emptyRead(offset);
    const frames: Array<{ at: number; header: FrameHeader }> = [{ at: position, header: first }];
    let total = first.frameBytes;
    let expected = first.baseOffset + BigInt(first.recordCount);
    for (let at = position + total; at < end && total < maxBytes; ) {
      cursor.readSize = Math.max(maxBytes - total + MAX_FRAME_HEADER_BYTES, MIN_READ_BYTES);
      const header = await cursor.headerOrProblem(at);
      if (isFrameProblem(header) || header.baseOffset !== expected) break; // served up to here; the next read reports it
      if (header.baseOffset + BigInt(header.recordCount) > bound || total + header.frameBytes > maxBytes)
        break;
      frames.push({ at, header });
      total += header.frameBytes;
      at += header.frameBytes;
      expected = header.baseOffset + BigInt(header.recordCount);
    }
    const data = await cursor.bytes(position, total);
    let good = 0;
    let goodBytes = 0;
    for (const { at, header } of frames) {
      if (!verifyFrameCrc(data, at - position, header)) break;
      good++;
      goodBytes += header.frameBytes;
    }
    if (good === 0) {
      const next = await nextGoodFrame(segment, position + 1, first.baseOffset, end);
      const resumeAt = next?.baseOffset ?? segment.nextOffset;
      if (offset < resumeAt) {
        throw new CorruptBatchError(segment.logPath, position, "CRC mismatch", {
          from: first.baseOffset,
          resumeAt,
        });
      }
      if (next === null) return null;
      start = { position: next.position, expected: next.baseOffset };
      continue;
    }
    const last = frames[good - 1]!.header;
    const served = goodBytes === total ? data : data.subarray(0, goodBytes);
    return {
      data: served,
      nextOffset: last.baseOffset + BigInt(last.recordCount),
      batchCount: good,
      // The cursor's window or fresh read is this read's own (readFully never pools), and nothing
      // reads it after this: what follows `served` in it is free.
      spare: served.buffer.byteLength - served.byteOffset - served.length,
    };
  }
}

/**
 * The base offset of the segment's first batch appended at/after `timestampMs`, or null. The walk
 * starts at the offset-index entry at or before the time-index entry just older than the time, if
 * that entry's frame is the batch it names and is older than the time (append times being
 * monotonic, every batch before it is then older too); else at the segment's start. So a damaged
 * index costs a longer walk, never a wrong answer. Damage met on the way is stepped over; if the
 * first good batch after it is at/after the time, the damaged range's first offset is the answer
 * (a reader starting there is told what was lost and where to resume).
 */
export async function findTimestamp(
  segment: Segment,
  timestampMs: number,
  indexIntervalBytes: number,
  logger?: Logger,
): Promise<bigint | null> {
  const k = segment.timeIndex.lowerEntry(timestampMs);
  const readSize = indexIntervalBytes + 2 * MAX_FRAME_HEADER_BYTES;
  const cursor = new FrameCursor(segment, segment.size, clamp(readSize, MIN_READ_BYTES, MAX_READ_BYTES));
  const relative = k < 0 ? 0 : segment.timeIndex.relativeOffset(k);
  let { position, expected } = await walkStart(
    segment,
    cursor,
    relative,
    logger,
    (header) => header.appendTimeMs < timestampMs,
  );
  while (position < cursor.end) {
    const header = await cursor.headerOrProblem(position);
    if (isFrameProblem(header) || header.baseOffset !== expected) {
      // A whole frame with a good CRC here: only the previous record count lied; go on from it.
      const here = isFrameProblem(header) ? null : await goodFrameAt(segment, position, cursor.end);
      const next = here ?? (await nextGoodFrame(segment, position + 1, expected, cursor.end));
      if (next === null || (here === null && next.appendTimeMs >= timestampMs)) return expected;
      position = next.position;
      expected = next.baseOffset;
      continue;
    }
    if (header.appendTimeMs >= timestampMs) return header.baseOffset;
    position += header.frameBytes;
    expected = header.baseOffset + BigInt(header.recordCount);
  }
  return null;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
