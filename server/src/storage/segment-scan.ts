/**
 * Walking a segment's frames at open time (recovery.ts): framing, dense offsets and, on request,
 * CRCs are checked frame by frame; the walk stops at the first bad frame.
 *
 * While walking, the scan does three things:
 * - derives fresh indexes with the append path's own rule (index-rule.ts), final time entry
 *   included, used when an index must be rebuilt, so a rebuilt index equals what appends plus a
 *   roll or close would have written;
 * - finds the newest append time of the frames walked and the first batch carrying it (`newest`;
 *   exact for a walk from position 0), which the segment takes after a full scan;
 * - checks that the loaded indexes agree with the log, streaming (O(1) memory): every loaded entry
 *   at or after the walk's start must name a real frame (offset entry: position and relative
 *   offset; time entry: relative offset and that batch's append time), none may point past the last
 *   good frame, and a walk from 0 must see the first entries at the first frame. Agreement, not
 *   equality, is required: sparse entries (or the dense ones of older versions, or ones written with
 *   another index.interval.bytes) are all accepted. Separately, `timeIndexFinal` says whether the
 *   loaded time index ends with the newest time walked: recovery requires it of every segment but
 *   the active one after an unclean stop, whose final entry it appends instead.
 */
import { isFrameProblem, verifyFrameCrc } from "./batch-frame.js";
import { FrameCursor } from "./frame-cursor.js";
import { addFinalTimeEntry, indexBatch, type NewestTime, noNewestTime } from "./index-rule.js";
import { OffsetIndex } from "./offset-index.js";
import type { Segment } from "./segment.js";
import { TimeIndex } from "./time-index.js";

const MAX_RELATIVE_OFFSET = 0xffffffff;

export interface ScanOptions {
  /** Where to start: a frame boundary and the relative offset of the batch there. */
  from: { position: number; relativeOffset: number };
  /** The loaded entries to check, from these entry numbers on (entries before are trusted). */
  compareFrom: { offsetEntry: number; timeEntry: number };
  verifyCrc: boolean;
  /** The next segment's base offset; a batch reaching past it is bad. */
  nextBase: bigint | null;
  readSize: number;
  indexIntervalBytes: number;
}

export interface ScanResult {
  /** Bytes from the start of the segment to the end of the last good frame. */
  validBytes: number;
  nextOffset: bigint;
  /** Why the walk stopped before the end of the segment, or null. */
  problem: string | null;
  /** Indexes derived from the frames walked (complete only for a walk from position 0). */
  offsetIndex: OffsetIndex;
  timeIndex: TimeIndex;
  /** Newest append time of the frames walked and the first of them carrying it. */
  newest: NewestTime;
  offsetIndexAgrees: boolean;
  timeIndexAgrees: boolean;
  /** Whether the loaded time index's last timestamp is the newest append time walked. */
  timeIndexFinal: boolean;
}

export async function scanSegment(segment: Segment, options: ScanOptions): Promise<ScanResult> {
  const cursor = new FrameCursor(segment, segment.size, options.readSize);
  const derived = { offsetIndex: new OffsetIndex(), timeIndex: new TimeIndex(), newest: noNewestTime() };
  const agreement = new IndexAgreement(segment.offsetIndex, segment.timeIndex, options.compareFrom);
  let position = options.from.position;
  let expected = segment.baseOffset + BigInt(options.from.relativeOffset);
  let problem: string | null = null;
  while (position < segment.size) {
    const header = await cursor.headerOrProblem(position);
    if (isFrameProblem(header)) {
      problem = header.problem;
      break;
    }
    const count = BigInt(header.recordCount);
    const relative = Number(expected - segment.baseOffset);
    if (header.baseOffset !== expected) {
      problem = `base offset ${header.baseOffset} where ${expected} was expected`;
    } else if (options.nextBase !== null && expected + count > options.nextBase) {
      problem = `batch runs past the next segment's base offset ${options.nextBase}`;
    } else if (relative + header.recordCount - 1 > MAX_RELATIVE_OFFSET) {
      problem = "batch does not fit the segment's relative offsets";
    } else if (
      options.verifyCrc &&
      !verifyFrameCrc(await cursor.bytes(position, header.frameBytes), 0, header)
    ) {
      problem = "CRC mismatch";
    }
    if (problem !== null) break;
    indexBatch(derived, options.indexIntervalBytes, relative, position, header.appendTimeMs);
    agreement.visit(position, relative, header.appendTimeMs);
    position += header.frameBytes;
    expected += count;
  }
  agreement.finish(options.from.position === 0, derived.newest.timeMs);
  addFinalTimeEntry(derived.timeIndex, derived.newest);
  return {
    validBytes: position,
    nextOffset: expected,
    problem,
    ...derived,
    offsetIndexAgrees: agreement.offsetAgrees,
    timeIndexAgrees: agreement.timeAgrees,
    timeIndexFinal: agreement.timeFinal,
  };
}

/** Streams loaded index entries alongside the frames of a walk (both are sorted). */
class IndexAgreement {
  offsetAgrees = true;
  timeAgrees = true;
  timeFinal = true;
  private i: number;
  private j: number;
  private frames = 0;

  constructor(
    private readonly offsets: OffsetIndex,
    private readonly times: TimeIndex,
    from: { offsetEntry: number; timeEntry: number },
  ) {
    this.i = from.offsetEntry;
    this.j = from.timeEntry;
  }

  visit(position: number, relativeOffset: number, appendTimeMs: number): void {
    const o = this.offsets;
    while (this.i < o.entryCount && o.position(this.i) < position) this.disagree("offset");
    if (this.i < o.entryCount && o.position(this.i) === position) {
      if (o.relativeOffset(this.i) !== relativeOffset) this.offsetAgrees = false;
      this.i++;
    }
    const t = this.times;
    while (this.j < t.entryCount && t.relativeOffset(this.j) < relativeOffset) this.disagree("time");
    if (this.j < t.entryCount && t.relativeOffset(this.j) === relativeOffset) {
      if (t.timestamp(this.j) !== appendTimeMs) this.timeAgrees = false;
      this.j++;
    }
    this.frames++;
  }

  /**
   * Entries left over point past the last good frame; a walk from 0 must also see the first
   * entries; the time index is final if it ends with the newest time walked.
   */
  finish(fromStart: boolean, newestTimeMs: number): void {
    const o = this.offsets;
    const t = this.times;
    if (this.i < o.entryCount) this.offsetAgrees = false;
    if (this.j < t.entryCount) this.timeAgrees = false;
    if (this.frames === 0) return;
    this.timeFinal = t.lastTimestamp === newestTimeMs;
    if (fromStart && (o.entryCount === 0 || o.position(0) !== 0)) this.offsetAgrees = false;
    if (fromStart && (t.entryCount === 0 || t.relativeOffset(0) !== 0)) this.timeAgrees = false;
  }

  private disagree(which: "offset" | "time"): void {
    if (which === "offset") {
      this.offsetAgrees = false;
      this.i++;
    } else {
      this.timeAgrees = false;
      this.j++;
    }
  }
}
