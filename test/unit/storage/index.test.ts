import { describe, expect, it } from "vitest";
import { addFinalTimeEntry, indexBatch, noNewestTime } from "../../../server/src/storage/index-rule.js";
import { OffsetIndex } from "../../../server/src/storage/offset-index.js";
import { TimeIndex } from "../../../server/src/storage/time-index.js";

describe("storage > offset-index", () => {
  it("finds the floor entry and round-trips through its big-endian file layout", () => {
    // Ensures lookups return the last entry at or before the offset, and encode/decode is lossless.
    const index = new OffsetIndex();
    index.append(0, 0);
    index.append(10, 4100);
    index.append(25, 8300);
    expect(index.lookup(0)).toBe(0);
    expect(index.lookup(9)).toBe(0);
    expect(index.lookup(10)).toBe(4100);
    expect(index.lookup(24)).toBe(4100);
    expect(index.lookup(1_000_000)).toBe(8300);
    const bytes = index.encode();
    expect(bytes.subarray(8, 16)).toEqual(Buffer.from([0, 0, 0, 10, 0, 0, 0x10, 0x04]));
    const { index: decoded, problem } = OffsetIndex.decode(bytes);
    expect(problem).toBeNull();
    expect(decoded.equals(index)).toBe(true);
    expect(decoded.check(9000, 30)).toBeNull();
  });

  it("fails its sanity check when entries cannot belong to the log", () => {
    // Ensures open() notices indexes that must be rebuilt.
    const index = new OffsetIndex();
    index.append(0, 0);
    index.append(5, 300);
    expect(index.check(300, null)).toMatch(/past the log/);
    expect(index.check(400, 5)).toMatch(/past the segment/);
    expect(index.check(0, null)).toMatch(/empty log/);
    expect(new OffsetIndex().check(10, null)).toMatch(/no entries/);
    index.append(4, 500);
    expect(index.check(1000, null)).toMatch(/not increasing/);
    expect(OffsetIndex.decode(Buffer.alloc(9)).problem).toMatch(/multiple of 8/);
  });
});

describe("storage > time-index", () => {
  it("finds the last entry strictly before a time and round-trips its file layout", () => {
    // Ensures offsetForTimestamp can start its walk at the right entry.
    const index = new TimeIndex();
    index.append(1000, 0);
    index.append(2000, 7);
    index.append(2_000_000_000_000, 9);
    expect(index.lowerEntry(1000)).toBe(-1);
    expect(index.lowerEntry(1001)).toBe(0);
    expect(index.lowerEntry(2000)).toBe(0);
    expect(index.lowerEntry(2001)).toBe(1);
    expect(index.lowerEntry(Number.MAX_SAFE_INTEGER)).toBe(2);
    const { index: decoded, problem } = TimeIndex.decode(index.encode());
    expect(problem).toBeNull();
    expect(decoded.equals(index)).toBe(true);
    expect(decoded.lastTimestamp).toBe(2_000_000_000_000);
    expect(decoded.check(100, 10)).toBeNull();
    expect(decoded.check(100, 9)).toMatch(/past the segment/);
  });

  it("rejects negative or non-increasing timestamps", () => {
    // Ensures garbage time indexes are rebuilt rather than trusted.
    const bad = Buffer.alloc(24, 0xff);
    expect(TimeIndex.decode(bad).index.check(100, null)).not.toBeNull();
    const flat = new TimeIndex();
    flat.append(5, 0);
    flat.append(5, 1);
    expect(flat.check(100, null)).toMatch(/timestamp not increasing/);
  });
});

describe("storage > index-rule", () => {
  it("adds time entries with the first batch and with offset entries only, plus a final one", () => {
    // Ensures the sparse rule: a new time per batch does not mean a time entry per batch.
    const indexes = { offsetIndex: new OffsetIndex(), timeIndex: new TimeIndex(), newest: noNewestTime() };
    // [relative offset, position, append time]: offset entries every >= 100 bytes.
    const batches = [
      [0, 0, 10],
      [1, 60, 11],
      [2, 120, 12], // offset entry, newer time: time entry
      [3, 180, 12],
      [4, 240, 12], // offset entry, same time as the last time entry: none
      [5, 300, 13],
      [6, 360, 14], // offset entry, newer time: time entry
      [7, 400, 15],
      [8, 440, 15], // newest time first carried by batch 7
    ] as const;
    for (const [rel, pos, time] of batches) indexBatch(indexes, 100, rel, pos, time);
    const entries = (index: TimeIndex) =>
      Array.from({ length: index.entryCount }, (_, i) => [index.timestamp(i), index.relativeOffset(i)]);
    expect(indexes.offsetIndex.entryCount).toBe(4);
    expect(entries(indexes.timeIndex)).toEqual([
      [10, 0],
      [12, 2],
      [14, 6],
    ]);
    expect(indexes.newest).toEqual({ timeMs: 15, relativeOffset: 7 });
    expect(addFinalTimeEntry(indexes.timeIndex, indexes.newest)).toBe(true);
    expect(addFinalTimeEntry(indexes.timeIndex, indexes.newest)).toBe(false);
    expect(entries(indexes.timeIndex).at(-1)).toEqual([15, 7]);
    expect(indexes.timeIndex.check(1000, 9)).toBeNull();
  });
});
