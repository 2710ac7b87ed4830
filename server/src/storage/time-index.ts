/**
 * The sparse time index of one segment: append time → relative offset.
 *
 * File layout (`<base>.timeindex`): a sequence of 12-byte entries, big-endian (as Kafka's):
 *
 *   0  i64  timestamp        append_time_ms of an indexed batch (ms since the Unix epoch)
 *   8  u32  relativeOffset   that batch's base offset minus the segment's base offset
 *
 * Append times are monotonic per log (the log stamps max(clock, previous append time)). Entries
 * follow index-rule.ts: the first batch, then batches that get an offset-index entry and carry a
 * newer time than the last entry, then a final entry with the segment's newest time, added on roll
 * and close. So the index holds at most (offset entries + 1) entries, not one per distinct
 * millisecond. Invariants checked on open (check() here; segment-scan.ts checks entries against
 * the frames):
 * - the first batch of a non-empty segment is always indexed: the first entry has relative offset 0,
 *   and its timestamp is the segment's oldest append time (segment.ms rolls read it);
 * - timestamps and relative offsets are strictly increasing; timestamps are safe integers >= 0;
 * - every entry names a batch of the segment and that batch's append time;
 * - the last entry's timestamp is the segment's newest append time for every segment except the
 *   active one between appends (the segment tracks that exactly in memory; recovery appends the
 *   missing final entry after an unclean stop).
 * Lookups: lowerEntry() gives the last entry strictly before a time, where a walk of the frames
 * must start (segment-reader.ts); every batch up to that entry is older than the time.
 *
 * All entries are also kept in memory (typed arrays); lookups never touch the file.
 */
import { F64Column, U32Column } from "./index-file.js";

const TWO_32 = 2 ** 32;

export class TimeIndex {
  static readonly ENTRY_BYTES = 12;

  private readonly timestamps = new F64Column();
  private readonly relativeOffsets = new U32Column();

  get entryCount(): number {
    return this.relativeOffsets.length;
  }

  timestamp(i: number): number {
    return this.timestamps.at(i);
  }

  relativeOffset(i: number): number {
    return this.relativeOffsets.at(i);
  }

  /** The oldest indexed time, or -1 if empty. */
  get firstTimestamp(): number {
    return this.entryCount === 0 ? -1 : this.timestamps.at(0);
  }

  /** The newest indexed time, or -1 if empty. */
  get lastTimestamp(): number {
    return this.entryCount === 0 ? -1 : this.timestamps.at(this.entryCount - 1);
  }

  append(timestampMs: number, relativeOffset: number): void {
    this.timestamps.push(timestampMs);
    this.relativeOffsets.push(relativeOffset);
  }

  truncateTo(count: number): void {
    if (count < this.entryCount) {
      this.timestamps.length = count;
      this.relativeOffsets.length = count;
    }
  }

  /** Index of the last entry with a timestamp strictly before `timestampMs`, or -1. */
  lowerEntry(timestampMs: number): number {
    return this.timestamps.floor(Math.ceil(timestampMs) - 1);
  }

  /** Index of the last entry whose relative offset is <= relativeOffset, or -1. */
  floorEntryByOffset(relativeOffset: number): number {
    return this.relativeOffsets.floor(relativeOffset);
  }

  encode(from = 0): Buffer {
    const out = Buffer.allocUnsafe((this.entryCount - from) * TimeIndex.ENTRY_BYTES);
    for (let i = from, at = 0; i < this.entryCount; i++, at += TimeIndex.ENTRY_BYTES) {
      const t = this.timestamps.at(i);
      out.writeUInt32BE(Math.floor(t / TWO_32), at);
      out.writeUInt32BE(t % TWO_32, at + 4);
      out.writeUInt32BE(this.relativeOffsets.at(i), at + 8);
    }
    return out;
  }

  /** Decodes a whole index file; `problem` is set when its size is not a multiple of 12. */
  static decode(bytes: Buffer): { index: TimeIndex; problem: string | null } {
    const index = new TimeIndex();
    const count = Math.floor(bytes.length / TimeIndex.ENTRY_BYTES);
    for (let i = 0, at = 0; i < count; i++, at += TimeIndex.ENTRY_BYTES) {
      // A negative or huge i64 decodes to a value check() rejects.
      const t = bytes.readInt32BE(at) * TWO_32 + bytes.readUInt32BE(at + 4);
      index.append(t, bytes.readUInt32BE(at + 8));
    }
    const problem =
      bytes.length % TimeIndex.ENTRY_BYTES === 0
        ? null
        : `size ${bytes.length} is not a multiple of ${TimeIndex.ENTRY_BYTES}`;
    return { index, problem };
  }

  /** Why these entries cannot index a segment of `logBytes` bytes and `offsetSpan` offsets (null = unknown). */
  check(logBytes: number, offsetSpan: number | null): string | null {
    const n = this.entryCount;
    if (logBytes === 0) return n === 0 ? null : `${n} entries for an empty log`;
    if (n === 0) return "no entries for a non-empty log";
    if (this.relativeOffsets.at(0) !== 0) return "first entry does not index the first batch";
    for (let i = 0; i < n; i++) {
      const t = this.timestamps.at(i);
      if (!Number.isSafeInteger(t) || t < 0) return `timestamp out of range at entry ${i}`;
      if (i === 0) continue;
      if (t <= this.timestamps.at(i - 1)) return `timestamp not increasing at entry ${i}`;
      if (this.relativeOffsets.at(i) <= this.relativeOffsets.at(i - 1))
        return `relative offset not increasing at entry ${i}`;
    }
    const last = this.relativeOffsets.at(n - 1);
    if (offsetSpan !== null && last >= offsetSpan)
      return `relative offset ${last} is past the segment's ${offsetSpan} offsets`;
    return null;
  }

  equals(other: TimeIndex): boolean {
    if (other.entryCount !== this.entryCount) return false;
    for (let i = 0; i < this.entryCount; i++) {
      if (other.timestamp(i) !== this.timestamp(i) || other.relativeOffset(i) !== this.relativeOffset(i))
        return false;
    }
    return true;
  }
}
