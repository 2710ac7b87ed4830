/**
 * Finding the way past a damaged frame (bit rot in fsynced data, found by a read).
 *
 * A damaged frame's length cannot be trusted, so the next frame is found without it: the first
 * byte position after the damage where a whole frame parses (batch-frame.ts), passes its CRC, and
 * carries a base offset inside the range the damaged frame could have held (after the offset the
 * damaged frame should have started at, before the segment's end offset). The search is bounded by
 * the segment's next offset-index entry past the damage, whose frame (checked the same way) is the
 * answer when nothing earlier is. So a read skips at most the damaged bytes, and the offsets it
 * reports as lost are exactly [the damaged frame's expected base offset, the good frame's base).
 *
 * Invariants: read-only; work is bounded by the bytes between the damage and the next index entry
 * (at most the segment); only called on the error path. A false match needs a whole valid frame
 * with a correct CRC32C and a plausible base offset inside the producer's record bytes.
 */
import { isFrameProblem, MAX_FRAME_HEADER_BYTES, parseFrameHeader, verifyFrameCrc } from "./batch-frame.js";
import type { Segment } from "./segment.js";

/** Bytes searched per read. */
const WINDOW_BYTES = 64 * 1024;

export interface GoodFrame {
  position: number;
  baseOffset: bigint;
  appendTimeMs: number;
}

/**
 * The first good frame at or after byte `from` of `segment` (of its first `end` bytes) whose base
 * offset is in (`after`, `before`) (default: the segment's next offset), or null if there is none
 * before `end`. The caller holds a reference on the segment (or owns it, at open).
 */
export async function nextGoodFrame(
  segment: Segment,
  from: number,
  after: bigint,
  end: number,
  before: bigint = segment.nextOffset,
): Promise<GoodFrame | null> {
  const plausible = (base: bigint) => base > after && base < before;
  let limit = end;
  let indexed: GoodFrame | null = null;
  const k = segment.offsetIndex.floorEntry(Number(after - segment.baseOffset)) + 1;
  for (let i = Math.max(k, 0); i < segment.offsetIndex.entryCount; i++) {
    const position = segment.offsetIndex.position(i);
    if (position < from) continue;
    const base = segment.baseOffset + BigInt(segment.offsetIndex.relativeOffset(i));
    const frame = await goodFrameAt(segment, position, end);
    if (frame !== null && frame.baseOffset === base && plausible(base)) {
      indexed = frame;
      limit = position;
    }
    break;
  }
  for (let start = from; start < limit; start += WINDOW_BYTES) {
    const window = await segment.read(start, Math.min(WINDOW_BYTES + MAX_FRAME_HEADER_BYTES, end - start));
    const stop = Math.min(WINDOW_BYTES, limit - start, window.length);
    for (let i = window.indexOf(0x0a, 0); i >= 0 && i < stop; i = window.indexOf(0x0a, i + 1)) {
      const header = parseFrameHeader(window, i, window.length);
      if (isFrameProblem(header) || !plausible(header.baseOffset)) continue;
      const frame = await goodFrameAt(segment, start + i, end);
      if (frame !== null) return frame;
    }
  }
  return indexed;
}

/** The frame at `position` if it is whole before `end` and passes its CRC, else null. */
export async function goodFrameAt(
  segment: Segment,
  position: number,
  end: number,
): Promise<GoodFrame | null> {
  const head = await segment.read(position, Math.min(MAX_FRAME_HEADER_BYTES, end - position));
  const header = parseFrameHeader(head, 0, head.length);
  if (isFrameProblem(header) || position + header.frameBytes > end) return null;
  const bytes = await segment.read(position, header.frameBytes);
  if (bytes.length < header.frameBytes || !verifyFrameCrc(bytes, 0, header)) return null;
  return { position, baseOffset: header.baseOffset, appendTimeMs: header.appendTimeMs };
}
