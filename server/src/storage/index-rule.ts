/**
 * When a segment's index entries are added. One rule, shared by appends (segment.ts) and by
 * recovery scans (segment-scan.ts), so a rebuilt index equals what appends plus roll/close wrote.
 *
 * Per batch, in log order (indexBatch):
 * - offset index: the segment's first batch, then any batch starting >= indexIntervalBytes after
 *   the last entry's position;
 * - time index: the segment's first batch, then a batch that gets an offset entry and whose append
 *   time is newer than the last time entry (as Kafka, the time index is written alongside the
 *   offset index). Batches between entries are found by walking frames (segment-reader.ts).
 * Per segment, when it stops being appended to (roll, clean close) or after a recovery scan
 * (addFinalTimeEntry):
 * - a final time entry (newest append time, relative offset of the first batch carrying it) if the
 *   newest time is newer than the last entry.
 *
 * So a time index holds at most (offset entries + 1) entries, and once final, its last timestamp is
 * the segment's newest append time. Between those points the segment tracks the newest time in
 * memory (NewestTime), exactly.
 */
import type { OffsetIndex } from "./offset-index.js";
import type { TimeIndex } from "./time-index.js";

/** A segment's newest append time and the relative offset of its first batch carrying it (-1 if empty). */
export interface NewestTime {
  timeMs: number;
  relativeOffset: number;
}

export function noNewestTime(): NewestTime {
  return { timeMs: -1, relativeOffset: -1 };
}

/** The newest time a time index records: its last entry (exact once the index is final). */
export function newestTimeOf(timeIndex: TimeIndex): NewestTime {
  const n = timeIndex.entryCount;
  if (n === 0) return noNewestTime();
  return { timeMs: timeIndex.timestamp(n - 1), relativeOffset: timeIndex.relativeOffset(n - 1) };
}

/** What the rule maintains for one segment. */
export interface SegmentIndexes {
  offsetIndex: OffsetIndex;
  timeIndex: TimeIndex;
  newest: NewestTime;
}

/** Adds the entries the batch at `position` calls for and updates the newest time. */
export function indexBatch(
  indexes: SegmentIndexes,
  indexIntervalBytes: number,
  relativeOffset: number,
  position: number,
  appendTimeMs: number,
): void {
  const { offsetIndex, timeIndex, newest } = indexes;
  const last = offsetIndex.lastPosition;
  const offsetEntry = last < 0 || position - last >= indexIntervalBytes;
  if (offsetEntry) offsetIndex.append(relativeOffset, position);
  if (timeIndex.entryCount === 0 || (offsetEntry && appendTimeMs > timeIndex.lastTimestamp))
    timeIndex.append(appendTimeMs, relativeOffset);
  if (appendTimeMs > newest.timeMs) {
    newest.timeMs = appendTimeMs;
    newest.relativeOffset = relativeOffset;
  }
}

/** Appends the final time entry if the index lacks it; returns whether it did. */
export function addFinalTimeEntry(timeIndex: TimeIndex, newest: NewestTime): boolean {
  if (newest.timeMs <= timeIndex.lastTimestamp) return false;
  timeIndex.append(newest.timeMs, newest.relativeOffset);
  return true;
}
