/**
 * The sparse offset index of one segment: relative offset → byte position in the .log file.
 *
 * File layout (`<base>.index`): a sequence of 8-byte entries, big-endian (as Kafka's):
 *
 *   0  u32  relativeOffset   base offset of an indexed batch minus the segment's base offset
 *   4  u32  position         byte position of that batch's frame in the segment's .log file
 *
 * Invariants (checked on open; an index that breaks one is rebuilt from the log):
 * - the first batch of a non-empty segment is always indexed: the first entry is (0, 0);
 * - relativeOffset and position are strictly increasing;
 * - every position lies inside the .log file and starts a frame whose base offset is
 *   segment base + relativeOffset (segment.ts checks the last entry against the log);
 * - an entry is added for a batch when the index is empty or when at least indexIntervalBytes of
 *   log were written since the last entry's position (index-rule.ts; the time index gets its
 *   entries alongside these).
 *
 * All entries are also kept in memory (typed arrays), so lookups never touch the file. Only the
 * partition's append path mutates an index, synchronously; async readers see whole entries.
 */
import { U32Column } from "./index-file.js";

export class OffsetIndex {
  static readonly ENTRY_BYTES = 8;

  private readonly relativeOffsets = new U32Column();
  private readonly positions = new U32Column();

  get entryCount(): number {
    return this.positions.length;
  }

  relativeOffset(i: number): number {
    return this.relativeOffsets.at(i);
  }

  position(i: number): number {
    return this.positions.at(i);
  }

  /** Position of the last entry, or -1 if empty. */
  get lastPosition(): number {
    return this.entryCount === 0 ? -1 : this.positions.at(this.entryCount - 1);
  }

  append(relativeOffset: number, position: number): void {
    this.relativeOffsets.push(relativeOffset);
    this.positions.push(position);
  }

  /** Drops every entry from `count` on. */
  truncateTo(count: number): void {
    if (count < this.entryCount) {
      this.relativeOffsets.length = count;
      this.positions.length = count;
    }
  }

  /** Index of the last entry whose relative offset is <= relativeOffset, or -1. */
  floorEntry(relativeOffset: number): number {
    return this.relativeOffsets.floor(relativeOffset);
  }

  /** Where to start walking frames to find `relativeOffset`: the floor entry's position, or 0. */
  lookup(relativeOffset: number): number {
    const i = this.floorEntry(relativeOffset);
    return i < 0 ? 0 : this.positions.at(i);
  }

  /** Entries [from, entryCount) in the file layout. */
  encode(from = 0): Buffer {
    const out = Buffer.allocUnsafe((this.entryCount - from) * OffsetIndex.ENTRY_BYTES);
    for (let i = from, at = 0; i < this.entryCount; i++, at += OffsetIndex.ENTRY_BYTES) {
      out.writeUInt32BE(this.relativeOffsets.at(i), at);
      out.writeUInt32BE(this.positions.at(i), at + 4);
    }
    return out;
  }

  /** Decodes a whole index file; `problem` is set when its size is not a multiple of 8. */
  static decode(bytes: Buffer): { index: OffsetIndex; problem: string | null } {
    const index = new OffsetIndex();
    const count = Math.floor(bytes.length / OffsetIndex.ENTRY_BYTES);
    for (let i = 0, at = 0; i < count; i++, at += OffsetIndex.ENTRY_BYTES) {
      index.append(bytes.readUInt32BE(at), bytes.readUInt32BE(at + 4));
    }
    const problem =
      bytes.length % OffsetIndex.ENTRY_BYTES === 0
        ? null
        : `size ${bytes.length} is not a multiple of ${OffsetIndex.ENTRY_BYTES}`;
    return { index, problem };
  }

  /**
   * Why these entries cannot index a .log of `logBytes` bytes holding `offsetSpan` offsets
   * (null = unknown), or null if they can.
   */
  check(logBytes: number, offsetSpan: number | null): string | null {
    const n = this.entryCount;
    if (logBytes === 0) return n === 0 ? null : `${n} entries for an empty log`;
    if (n === 0) return "no entries for a non-empty log";
    if (this.relativeOffsets.at(0) !== 0 || this.positions.at(0) !== 0) return "first entry is not (0, 0)";
    for (let i = 1; i < n; i++) {
      if (this.relativeOffsets.at(i) <= this.relativeOffsets.at(i - 1))
        return `relative offset not increasing at entry ${i}`;
      if (this.positions.at(i) <= this.positions.at(i - 1)) return `position not increasing at entry ${i}`;
    }
    if (this.lastPosition >= logBytes)
      return `position ${this.lastPosition} is past the log's ${logBytes} bytes`;
    const last = this.relativeOffsets.at(n - 1);
    if (offsetSpan !== null && last >= offsetSpan)
      return `relative offset ${last} is past the segment's ${offsetSpan} offsets`;
    return null;
  }

  equals(other: OffsetIndex): boolean {
    if (other.entryCount !== this.entryCount) return false;
    for (let i = 0; i < this.entryCount; i++) {
      if (other.relativeOffset(i) !== this.relativeOffset(i) || other.position(i) !== this.position(i))
        return false;
    }
    return true;
  }
}
