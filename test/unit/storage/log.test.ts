import { closeSync, existsSync, openSync, readdirSync, statSync, writeSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FetchResponse } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { frameBytes } from "../../../server/src/storage/batch-frame.js";
import {
  CorruptBatchError,
  LogClosedError,
  OffsetOutOfRangeError,
} from "../../../server/src/storage/errors.js";
import type { Log } from "../../../server/src/storage/log.js";
import type { CompressionCode } from "../../../server/src/storage/log-api.js";
import {
  batchOf,
  FaultyFileSystem,
  framePositions,
  Harness,
  opaqueBatch,
  readAll,
  shape,
} from "./helpers.js";

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

/** Appends `groups` (each a list of record counts) and returns the expected [base, count] shape. */
function appendGroups(log: Log, groups: number[][]): Array<[number, number]> {
  const expected: Array<[number, number]> = [];
  for (const counts of groups) {
    const results = log.append(counts.map((c, i) => batchOf(c, `g${expected.length}-${i}`)));
    for (const r of results) expected.push([Number(r.baseOffset), r.recordCount]);
  }
  return expected;
}

/** Segment sizes from "one batch per segment" to "everything in one", like Liftbridge's table. */
const segmentSizes = [1, 100, 250, 600, 1500, 1 << 20];
const groups = [[1], [2, 3], [1, 1, 1, 1], [4], [2], [1, 2, 3, 4, 5], [1], [3, 1], [7], [1, 1]];

describe("storage > log > append", () => {
  it.each(segmentSizes)(
    "assigns dense offsets and reads every batch back with segment.bytes = %i",
    async (segmentBytes) => {
      // Ensures appends and reads agree across segment boundaries, before and after a reopen.
      let log = await h.open({ config: { segmentBytes, indexIntervalBytes: 64 } });
      const expected = appendGroups(log, groups);
      const records = expected.reduce((n, [, c]) => n + c, 0);
      expect(log.logEndOffset).toBe(BigInt(records));
      expect(shape(await readAll(log))).toEqual(expected);
      if (segmentBytes < 600) expect(log.segmentCount).toBeGreaterThan(3);
      for (const base of log.segmentBaseOffsets()) {
        const size = statSync(h.path(base, "log")).size;
        if (framePositions(h.path(base, "log")).length > 1) expect(size).toBeLessThanOrEqual(segmentBytes);
      }
      const segments = log.segmentCount;
      log = await h.reopen(log);
      expect(log.segmentCount).toBe(segments);
      expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
      expect(shape(await readAll(log))).toEqual(expected);
      for (let offset = 0n; offset < log.logEndOffset; offset++) {
        const read = await log.read(offset, 1);
        const [batch] = FetchResponse.decode(read.data).batches;
        expect(batch!.baseOffset <= offset && offset < batch!.baseOffset + BigInt(batch!.recordCount)).toBe(
          true,
        );
      }
    },
  );

  it("writes several inputs of one segment with a single vectored write, without copying records", async () => {
    // Ensures the zero-copy group write: one writev on the .log holding [header, records] pairs.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    let log = await h.open();
    const logWrites: number[] = [];
    const writev = fs.writevSync.bind(fs);
    fs.writevSync = (fd, buffers, position) => {
      if ((fs.paths.get(fd) ?? "").endsWith(".log")) logWrites.push(buffers.length);
      return writev(fd, buffers, position);
    };
    const inputs = [batchOf(1), batchOf(2), batchOf(3)];
    log.append(inputs);
    expect(logWrites).toEqual([6]);
    expect(shape(await readAll(log))).toEqual([
      [0, 1],
      [1, 2],
      [3, 3],
    ]);
    log = await h.reopen(log);
    expect(shape(await readAll(log))).toHaveLength(3);
  });

  it("puts a frame bigger than segment.bytes alone in a fresh segment", async () => {
    // Ensures oversized batches are never rejected by storage (max.batch.bytes is the broker's job).
    let log = await h.open({ config: { segmentBytes: 200 } });
    log.append([opaqueBatch(10)]);
    log.append([opaqueBatch(1000, 5)]);
    log.append([opaqueBatch(10)]);
    expect(log.segmentBaseOffsets()).toEqual([0n, 1n, 6n]);
    expect(statSync(h.path(1n, "log")).size).toBe(frameBytes(1000));
    log = await h.reopen(log);
    expect(shape(await readAll(log))).toEqual([
      [0, 1],
      [1, 5],
      [6, 1],
    ]);
  });

  it("rolls when the active segment's first batch is older than segment.ms", async () => {
    // Ensures time-based rolls read the injected clock.
    let log = await h.open({ config: { segmentMs: 1000 } });
    log.append([batchOf(1)]);
    h.clock.advance(1000);
    log.append([batchOf(1)]);
    expect(log.segmentCount).toBe(1);
    h.clock.advance(1);
    log.append([batchOf(1)]);
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n]);
    log = await h.reopen(log);
    h.clock.advance(500);
    log.append([batchOf(1)]);
    expect(log.segmentCount).toBe(2);
    expect(shape(await readAll(log))).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
  });

  it("stamps monotonic append times even when the clock goes back", async () => {
    // Ensures append_time_ms never decreases, also across a reopen.
    let log = await h.open();
    h.clock.set(5000);
    const [a] = log.append([batchOf(1)]);
    h.clock.set(1000);
    const [b] = log.append([batchOf(1)]);
    expect(a!.appendTimeMs).toBe(5000);
    expect(b!.appendTimeMs).toBe(5000);
    log = await h.reopen(log);
    const [c] = log.append([batchOf(1)]);
    expect(c!.appendTimeMs).toBe(5000);
    expect((await readAll(log)).map((x) => Number(x.appendTimeMs))).toEqual([5000, 5000, 5000]);
  });

  it("rejects malformed inputs without changing the log", async () => {
    // Ensures validation happens before any byte is written.
    let log = await h.open();
    log.append([batchOf(2)]);
    expect(() => log.append([batchOf(1), { ...batchOf(1), recordCount: 0 }])).toThrow(RangeError);
    expect(() => log.append([{ ...batchOf(1), compression: 200 as CompressionCode }])).toThrow(RangeError);
    expect(log.append([])).toEqual([]);
    expect(log.logEndOffset).toBe(2n);
    log = await h.reopen(log);
    expect(shape(await readAll(log))).toEqual([[0, 2]]);
  });
});

describe("storage > log > read", () => {
  it("starts with the batch containing the offset and returns whole frames up to maxBytes", async () => {
    // Ensures the read contract: first frame always whole, later frames only while they fit.
    let log = await h.open({ config: { indexIntervalBytes: 1 } });
    for (let i = 0; i < 10; i++) log.append([batchOf(3, `b${i}`)]);
    const frame = (await log.read(0n, 1)).data.length;
    const two = await log.read(4n, 2 * frame);
    expect(two.batchCount).toBe(2);
    expect(shape(FetchResponse.decode(two.data).batches)).toEqual([
      [3, 3],
      [6, 3],
    ]);
    expect(two.nextOffset).toBe(9n);
    const one = await log.read(5n, 1);
    expect(one.batchCount).toBe(1);
    expect(one.nextOffset).toBe(6n);
    expect((await log.read(0n, 2 * frame - 1)).batchCount).toBe(1);
    log = await h.reopen(log);
    expect((await log.read(4n, 2 * frame)).data.equals(two.data)).toBe(true);
  });

  it("never returns a batch ending past upTo", async () => {
    // Ensures a non-following Fetch stops at the high watermark it started with.
    let log = await h.open();
    log.append([batchOf(2), batchOf(2), batchOf(2)]);
    for (let round = 0; round < 2; round++) {
      if (round === 1) log = await h.reopen(log);
      expect((await log.read(0n, 1 << 20, 4n)).nextOffset).toBe(4n);
      expect((await log.read(0n, 1 << 20, 3n)).nextOffset).toBe(2n);
      expect((await log.read(3n, 1 << 20, 3n)).batchCount).toBe(0);
      const empty = await log.read(4n, 1 << 20, 4n);
      expect(empty).toEqual({ data: Buffer.alloc(0), nextOffset: 4n, batchCount: 0, spare: 0 });
    }
  });

  it("throws OffsetOutOfRangeError outside the log and reads nothing at its end", async () => {
    // Ensures the range check matches the contract [logStartOffset, logEndOffset].
    let log = await h.open();
    await expect(log.read(1n, 100)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
    expect((await log.read(0n, 100)).batchCount).toBe(0);
    log.append([batchOf(2)]);
    for (let round = 0; round < 2; round++) {
      if (round === 1) log = await h.reopen(log);
      await expect(log.read(3n, 100)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
      await expect(log.read(-1n, 100)).rejects.toBeInstanceOf(OffsetOutOfRangeError);
      expect((await log.read(2n, 100)).batchCount).toBe(0);
    }
  });

  it("reports a damaged first batch as corrupt and serves the good prefix before a damaged one", async () => {
    // Ensures reads verify CRCs: bad data is never served.
    let log = await h.open();
    for (let i = 0; i < 4; i++) log.append([batchOf(1, `x${i}`)]);
    const positions = framePositions(h.path(0n, "log"));
    const fd = openSync(h.path(0n, "log"), "r+");
    writeSync(fd, Buffer.from([0xee]), 0, 1, positions[3]! - 1);
    closeSync(fd);
    for (let round = 0; round < 2; round++) {
      // A clean open trusts the data it does not walk; reads still refuse the damaged batch.
      if (round === 1) log = await h.reopen(log);
      const read = await log.read(0n, 1 << 20);
      expect(read.batchCount).toBe(2);
      expect(read.nextOffset).toBe(2n);
      const error = await log.read(2n, 1 << 20).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptBatchError);
      expect((error as CorruptBatchError).position).toBe(positions[2]);
      expect((await log.read(3n, 1 << 20)).batchCount).toBe(1);
    }
    log = await h.reopen(log, { cleanShutdown: false });
    expect(log.logEndOffset).toBe(2n);
  });

  it("finds the first batch appended at or after a time", async () => {
    // Ensures offsetForTimestamp walks from the time index to the exact batch, across segments.
    let log = await h.open({ config: { segmentBytes: 300, indexIntervalBytes: 100 } });
    const t0 = h.clock.now();
    for (let i = 0; i < 20; i++) {
      log.append([batchOf(2)]);
      if (i % 3 === 2) h.clock.advance(10);
    }
    for (let round = 0; round < 2; round++) {
      if (round === 1) log = await h.reopen(log);
      const l = log;
      expect(await l.offsetForTimestamp(0)).toBe(0n);
      expect(await l.offsetForTimestamp(t0)).toBe(0n);
      expect(await l.offsetForTimestamp(t0 + 1)).toBe(6n);
      expect(await l.offsetForTimestamp(t0 + 10)).toBe(6n);
      expect(await l.offsetForTimestamp(t0 + 60)).toBe(36n);
      expect(await l.offsetForTimestamp(t0 + 61)).toBeNull();
    }
  });
});

describe("storage > log > reads at the tail", () => {
  it("starts a read at a recent append, not at the offset-index entry before it", async () => {
    // Ensures a following Fetch reads the new frame alone, not the index interval before it
    // (recent-frames.ts), and that a failed append leaves no hint past the committed size.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    const log = await h.open({ config: { indexIntervalBytes: 1 << 20 } });
    for (let i = 0; i < 40; i++) log.append([opaqueBatch(100)]);
    const frame = log.sizeBytes / 40;
    fs.readBytes = 0;
    const tail = await log.read(39n, 1 << 20);
    expect([tail.batchCount, tail.nextOffset]).toEqual([1, 40n]);
    expect(fs.readBytes).toBe(frame);
    fs.readBytes = 0;
    expect((await log.read(20n, 1 << 20)).batchCount).toBe(20);
    expect(fs.readBytes).toBe(20 * frame);
    // Past the ring (32 appends back): from the segment's start.
    fs.readBytes = 0;
    expect((await log.read(2n, 1 << 20)).batchCount).toBe(38);
    expect(fs.readBytes).toBe(40 * frame);

    fs.writevFault = { code: "EIO", partialBytes: 30 };
    expect(() => log.append([opaqueBatch(300)])).toThrow(/EIO/);
    log.append([opaqueBatch(20, 2)]);
    const after = await log.read(40n, 1 << 20);
    expect(shape(await readAll(log, 38n))).toEqual([
      [38, 1],
      [39, 1],
      [40, 2],
    ]);
    expect([after.batchCount, after.nextOffset]).toEqual([1, 42n]);
  });
});

describe("storage > log > flush and close", () => {
  it("fsyncs rolled segments and shares one fsync among concurrent flushes", async () => {
    // Ensures group commit: callers arriving during an fsync share the next one.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    let log = await h.open({ config: { segmentBytes: 200 } });
    log.append([opaqueBatch(150)]);
    log.append([opaqueBatch(150)]);
    expect(await log.flush()).toBe(2n);
    // The rolled segment's .log, .index and .timeindex, the active one's .log, and the partition
    // directory (the roll created files in it); then the recovery point moves past the rolled
    // segment: its temporary file and the directory.
    expect(fs.calls.fsync).toBe(5 + 2);
    log.append([opaqueBatch(10)]);
    const first = log.flush();
    log.append([opaqueBatch(10)]);
    const shared = [log.flush(), log.flush(), log.flush()];
    expect(await first).toBe(3n);
    expect(await Promise.all(shared)).toEqual([4n, 4n, 4n]);
    // The first round also covers a roll: the rolled segment's three files, the new active one's
    // .log, the directory, and the recovery point moves again; the shared round: the active .log.
    expect(fs.calls.fsync).toBe(5 + 2 + (3 + 1 + 1 + 2) + 1);
    expect(await log.flush()).toBe(4n);
    log = await h.reopen(log);
    expect(log.logEndOffset).toBe(4n);
  });

  it("fsyncs only the active segment's .log; its indexes once it rolls, and everything at close", async () => {
    // Ensures one fsync per FSYNCED ack, while no segment's indexes are left unsynced below the
    // recovery point (an unclean open rebuilds only the active segment's indexes from its .log).
    const fs = new FaultyFileSystem();
    h.fs = fs;
    const log = await h.open({ config: { segmentBytes: 200 } });
    const segmentFiles = () =>
      fs.fsynced
        .splice(0)
        .filter((n) => /\.(log|index|timeindex)$/.test(n))
        .sort();
    segmentFiles();
    log.append([opaqueBatch(150)]);
    await log.flush();
    expect(segmentFiles()).toEqual(["00000000000000000000.log"]);
    log.append([opaqueBatch(150)]); // rolls
    await log.flush();
    expect(segmentFiles()).toEqual([
      "00000000000000000000.index",
      "00000000000000000000.log",
      "00000000000000000000.timeindex",
      "00000000000000000001.log",
    ]);
    await log.close();
    expect(segmentFiles()).toEqual([
      "00000000000000000001.index",
      "00000000000000000001.log",
      "00000000000000000001.timeindex",
    ]);
  });

  it("keeps index descriptors only for the active segment once rolled segments are flushed", async () => {
    // Ensures descriptors do not grow with the segment count: closed segments keep just their .log.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    let log = await h.open({ config: { segmentBytes: 1 } });
    for (let i = 0; i < 20; i++) log.append([batchOf(1)]);
    expect(fs.paths.size).toBe(20 * 3);
    await log.flush();
    expect(fs.paths.size).toBe(20 + 2);
    await log.close();
    expect(fs.paths.size).toBe(0);
    log = await h.open();
    expect(fs.paths.size).toBe(20 + 2);
    expect(shape(await readAll(log))).toHaveLength(20);
  });

  it("refuses work after close and removes everything on destroy", async () => {
    // Ensures LogClosedError after close and a clean directory removal.
    const log = await h.open();
    log.append([batchOf(1)]);
    await log.close();
    await log.close();
    expect(() => log.append([batchOf(1)])).toThrow(LogClosedError);
    await expect(log.read(0n, 10)).rejects.toBeInstanceOf(LogClosedError);
    await expect(log.flush()).rejects.toBeInstanceOf(LogClosedError);
    const other = await h.open();
    expect(readdirSync(h.dir).length).toBe(3);
    await other.destroy();
    expect(existsSync(h.dir)).toBe(false);
  });
});
