/**
 * Where the most recent frames of a segment start, in memory only: a ring of the last
 * `RECENT_FRAMES` appends, each (offset relative to the segment's base, byte position in the .log).
 *
 * Why: a following Fetch reads at the tail, usually the batch appended a moment ago. The sparse
 * offset index (index-rule.ts) points up to `index.interval.bytes` before it, so without this every
 * wakeup would read and walk up to that many bytes of older frames first (at one small batch per
 * append, a dozen headers and a 4 KiB read per wakeup). With it the read starts at the frame itself.
 *
 * Invariants: entries are in append order, so both relative offsets and positions increase from
 * the oldest entry to the newest; every entry is the start of a committed frame of the segment
 * (`truncate` drops entries at or past a size the segment is cut back to). It is only a hint:
 * readers check the frame header at the position (base offset, framing) exactly as they check an
 * offset-index entry, so a wrong entry costs a longer walk, never wrong data.
 */

/** Appends remembered per segment. */
export const RECENT_FRAMES = 32;

export class RecentFrames {
  private readonly relatives = new Float64Array(RECENT_FRAMES);
  private readonly positions = new Float64Array(RECENT_FRAMES);
  /** Slot of the next entry. */
  private next = 0;
  private count = 0;

  /** Remembers a frame starting at `position` with base offset `relative` (after every earlier one). */
  add(relative: number, position: number): void {
    this.relatives[this.next] = relative;
    this.positions[this.next] = position;
    this.next = (this.next + 1) % RECENT_FRAMES;
    if (this.count < RECENT_FRAMES) this.count++;
  }

  /**
   * The newest remembered frame whose base offset is at or below `relative`, as
   * `{ relative, position }`, or null if none is.
   */
  floor(relative: number): { relative: number; position: number } | null {
    for (let i = 1; i <= this.count; i++) {
      const slot = (this.next - i + RECENT_FRAMES) % RECENT_FRAMES;
      if (this.relatives[slot]! <= relative) {
        return { relative: this.relatives[slot]!, position: this.positions[slot]! };
      }
    }
    return null;
  }

  /** Forgets the frames at or past `size` (the segment was cut back to it). */
  truncate(size: number): void {
    while (this.count > 0) {
      const newest = (this.next - 1 + RECENT_FRAMES) % RECENT_FRAMES;
      if (this.positions[newest]! < size) return;
      this.next = newest;
      this.count--;
    }
  }
}
