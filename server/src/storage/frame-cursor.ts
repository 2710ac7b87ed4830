/**
 * Walks the frames of one segment through a read window, doing constant work per batch: only the
 * frame headers (batch-frame.ts) are parsed, the records are skipped by length.
 *
 * The cursor reads `[position, position + readSize)` at a time (clipped to `end`, the segment's
 * committed size captured by the caller, so a frame being appended is never seen). A header that
 * falls outside the window triggers one refill starting at that header. Whole-frame bytes are
 * served as views of the window when it holds them, else with one fresh read.
 *
 * The caller must hold a reference on the segment (Segment.acquire) for the cursor's lifetime.
 */
import {
  type FrameHeader,
  type FrameProblem,
  isFrameProblem,
  MAX_FRAME_HEADER_BYTES,
  parseFrameHeader,
} from "./batch-frame.js";
import { CorruptBatchError } from "./errors.js";
import type { Segment } from "./segment.js";

const EMPTY = Buffer.alloc(0);

export class FrameCursor {
  private window: Buffer = EMPTY;
  private windowStart = 0;

  constructor(
    private readonly segment: Segment,
    /** Bytes of the segment the cursor may see (exclusive). */
    readonly end: number,
    /** Bytes to read when the window must be refilled. */
    public readSize: number,
  ) {}

  /** The header of the frame at `position`, or why there is none (`incomplete`: it runs past `end`). */
  async headerOrProblem(position: number): Promise<FrameHeader | FrameProblem> {
    if (position >= this.end) return { problem: "end of segment", incomplete: true };
    let parsed = this.parseInWindow(position);
    if (isFrameProblem(parsed) && parsed.incomplete && !this.windowReachesEnd(position)) {
      await this.fill(position, Math.max(this.readSize, MAX_FRAME_HEADER_BYTES));
      parsed = this.parseInWindow(position);
    }
    if (!isFrameProblem(parsed) && position + parsed.frameBytes > this.end) {
      return {
        problem: `frame of ${parsed.frameBytes} bytes runs past the end at ${this.end}`,
        incomplete: true,
      };
    }
    return parsed;
  }

  /** Like headerOrProblem, but a problem is a CorruptBatchError naming the file and position. */
  async header(position: number): Promise<FrameHeader> {
    const parsed = await this.headerOrProblem(position);
    if (isFrameProblem(parsed)) throw new CorruptBatchError(this.segment.logPath, position, parsed.problem);
    return parsed;
  }

  /** Bytes [position, position + length): a view of the window if it holds them, else a fresh read. */
  async bytes(position: number, length: number): Promise<Buffer> {
    const offset = position - this.windowStart;
    if (offset >= 0 && offset + length <= this.window.length)
      return this.window.subarray(offset, offset + length);
    const read = await this.segment.read(position, length);
    if (read.length < length) {
      throw new CorruptBatchError(
        this.segment.logPath,
        position,
        `file ends ${length - read.length} bytes early`,
      );
    }
    return read;
  }

  private parseInWindow(position: number): FrameHeader | FrameProblem {
    const offset = position - this.windowStart;
    if (offset < 0 || offset >= this.window.length)
      return { problem: "outside the window", incomplete: true };
    return parseFrameHeader(this.window, offset, this.window.length);
  }

  /** Whether the window already holds every byte from `position` to `end` (no refill can help). */
  private windowReachesEnd(position: number): boolean {
    return position >= this.windowStart && this.windowStart + this.window.length >= this.end;
  }

  private async fill(position: number, size: number): Promise<void> {
    this.window = await this.segment.read(position, Math.min(size, this.end - position));
    this.windowStart = position;
  }
}
