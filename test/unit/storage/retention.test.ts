import { existsSync, readdirSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { frameBytes } from "../../../server/src/storage/batch-frame.js";
import { OffsetOutOfRangeError } from "../../../server/src/storage/errors.js";
import { segmentsToDelete } from "../../../server/src/storage/retention.js";
import { FaultyFileSystem, Harness, opaqueBatch, readAll, shape, timeIndexEntries } from "./helpers.js";

/** One batch with 100 bytes of records; segments hold two such frames. */
const FRAME = frameBytes(100);

let h: Harness;
beforeEach(() => {
  h = new Harness({ segmentBytes: 2 * FRAME, indexIntervalBytes: 50 });
});
afterEach(async () => {
  await h.cleanup();
});

describe("storage > retention > by time", () => {
  it("deletes closed segments whose newest batch is older than retention.ms", async () => {
    // Ensures age-based deletion, the new log start, and OffsetOutOfRangeError below it.
    let log = await h.open({ config: { retentionMs: 1000 } });
    for (let i = 0; i < 10; i++) {
      log.append([opaqueBatch(100)]);
      h.clock.advance(100);
    }
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n, 4n, 6n, 8n]);
    expect(await log.applyRetention()).toBe(0);
    // Newest batches of the segments were appended at t0+100, +300, +500, +700, +900; now = t0+1000.
    h.clock.advance(450);
    expect(await log.applyRetention()).toBe(2);
    expect(log.logStartOffset).toBe(4n);
    expect(existsSync(h.path(0n, "log"))).toBe(false);
    expect(readdirSync(h.dir).some((n) => n.endsWith(".deleted"))).toBe(false);
    await expect(log.read(3n, 1000)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
    expect(shape(await readAll(log))[0]).toEqual([4, 1]);
    log = await h.reopen(log);
    expect(log.logStartOffset).toBe(4n);
    expect(log.logEndOffset).toBe(10n);
    await expect(log.read(0n, 1000)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
  });

  it("rolls a wholly expired active segment so it can be deleted, keeping the log end", async () => {
    // Ensures an idle partition empties out but keeps its offsets.
    let log = await h.open({ config: { retentionMs: 1000, segmentBytes: 1 << 20 } });
    log.append([opaqueBatch(10), opaqueBatch(10)]);
    h.clock.advance(1001);
    expect(await log.applyRetention()).toBe(1);
    expect(log.logStartOffset).toBe(2n);
    expect(log.logEndOffset).toBe(2n);
    expect(log.segmentBaseOffsets()).toEqual([2n]);
    expect((await log.read(2n, 100)).batchCount).toBe(0);
    log = await h.reopen(log);
    expect([log.logStartOffset, log.logEndOffset]).toEqual([2n, 2n]);
    expect(log.append([opaqueBatch(10)])[0]!.baseOffset).toBe(2n);
    expect(await log.applyRetention()).toBe(0);
  });

  it.each(["clean", "crash"] as const)(
    "uses each segment's exact newest append time after a %s reopen, though time indexes are sparse",
    async (stop) => {
      // Ensures retention never reads an understated newest time from a sparse time index: closed
      // segments end with a final entry, the active one's time comes from the recovery scan.
      h.config = { ...h.config, retentionMs: 1000, segmentBytes: 10 * FRAME, indexIntervalBytes: 1 << 20 };
      let log = await h.open();
      const t0 = h.clock.now();
      for (let i = 0; i < 25; i++) {
        log.append([opaqueBatch(100)]);
        h.clock.advance(1);
      }
      expect(log.segmentBaseOffsets()).toEqual([0n, 10n, 20n]);
      expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([
        [t0, 0],
        [t0 + 9, 9],
      ]);
      expect(timeIndexEntries(h.path(20n, "timeindex"))).toEqual([[t0 + 20, 0]]);
      log = stop === "clean" ? await h.reopen(log) : await h.reopenAfterCrash(log);
      expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
      const expectRetention = async (now: number, deleted: number, logStart: bigint) => {
        h.clock.set(now);
        expect(await log.applyRetention()).toBe(deleted);
        expect(log.logStartOffset).toBe(logStart);
      };
      await expectRetention(t0 + 9 + 1000, 0, 0n);
      await expectRetention(t0 + 9 + 1001, 1, 10n);
      await expectRetention(t0 + 24 + 1000, 1, 20n);
      await expectRetention(t0 + 24 + 1001, 1, 25n);
      expect(log.logEndOffset).toBe(25n);
    },
  );

  it("never deletes anything when retention.ms is -1", async () => {
    // Ensures -1 means keep forever.
    let log = await h.open({ config: { retentionMs: -1 } });
    for (let i = 0; i < 6; i++) log.append([opaqueBatch(100)]);
    h.clock.advance(10 ** 12);
    expect(await log.applyRetention()).toBe(0);
    expect(log.logStartOffset).toBe(0n);
    log = await h.reopen(log);
    expect(await log.applyRetention()).toBe(0);
    expect(shape(await readAll(log))).toHaveLength(6);
  });
});

describe("storage > retention > by size", () => {
  it("deletes the oldest closed segments while the log is over retention.bytes", async () => {
    // Ensures size-based deletion keeps the newest data and never the active segment.
    let log = await h.open({ config: { retentionBytes: 5 * FRAME } });
    for (let i = 0; i < 9; i++) log.append([opaqueBatch(100)]);
    expect(log.sizeBytes).toBe(9 * FRAME);
    expect(await log.applyRetention()).toBe(2);
    expect(log.sizeBytes).toBe(5 * FRAME);
    expect(log.logStartOffset).toBe(4n);
    log = await h.reopen(log, { config: { retentionBytes: 0 } });
    expect(await log.applyRetention()).toBe(2);
    expect(log.segmentBaseOffsets()).toEqual([8n]);
    expect(shape(await readAll(log))).toEqual([[8, 1]]);
  });

  it("plans deletions from both limits, oldest first", () => {
    // Ensures the pure planning rule: time first, then size, never the last segment.
    const seg = (size: number, lastAppendTimeMs: number) => ({ size, lastAppendTimeMs });
    const segments = [seg(100, 10), seg(100, 20), seg(100, 30), seg(0, -1)];
    expect(segmentsToDelete(segments, 100, { retentionMs: 75, retentionBytes: -1 })).toBe(2);
    expect(segmentsToDelete(segments, 100, { retentionMs: -1, retentionBytes: 150 })).toBe(2);
    expect(segmentsToDelete(segments, 100, { retentionMs: 0, retentionBytes: 0 })).toBe(3);
    expect(segmentsToDelete([seg(100, 1)], 100, { retentionMs: 0, retentionBytes: 0 })).toBe(0);
  });
});

describe("storage > retention > concurrency", () => {
  it("lets a read in flight finish while its segment is deleted", async () => {
    // Ensures deletion never pulls a descriptor from under a read: it completes or is out of range.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    const log = await h.open({ config: { retentionBytes: 0 } });
    for (let i = 0; i < 6; i++) log.append([opaqueBatch(100)]);
    let retention: Promise<number> | null = null;
    fs.beforeReadResolves = async () => {
      fs.beforeReadResolves = null;
      retention = log.applyRetention();
      await retention;
    };
    const read = await log.read(0n, 1 << 20);
    expect(read.batchCount).toBe(2);
    expect(await retention).toBe(2);
    expect(existsSync(h.path(0n, "log"))).toBe(false);
    await expect(log.read(0n, 100)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
    expect((await log.offsetForTimestamp(0))!).toBe(4n);
    const reopened = await h.reopen(log);
    expect(shape(await readAll(reopened))).toEqual([
      [4, 1],
      [5, 1],
    ]);
  });
});
