import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CorruptBatchError } from "../../../server/src/storage/errors.js";
import { RECOVERY_POINT_FILE } from "../../../server/src/storage/file-names.js";
import type { Log } from "../../../server/src/storage/log.js";
import {
  batchOf,
  FaultyFileSystem,
  framePositions,
  Harness,
  opaqueBatch,
  readAll,
  shape,
  timeIndexEntries,
} from "./helpers.js";

let h: Harness;
beforeEach(() => {
  // Index every batch and give every batch its own time, so each frame has both index entries.
  h = new Harness({ indexIntervalBytes: 1 });
});
afterEach(async () => {
  await h.cleanup();
});

/** Five one-record batches at distinct times, then a clean close. Returns the .log path. */
async function fiveBatches(): Promise<string> {
  const log = await h.open();
  for (let i = 0; i < 5; i++) {
    log.append([batchOf(1, `v${i}`)]);
    h.clock.advance(10);
  }
  await log.close();
  return h.path(0n, "log");
}

function offsets(batches: Array<[number, number]>): number[] {
  return batches.map(([base]) => base);
}

/** Reopens after a clean close and checks the log reads the same and appends go on densely. */
async function appendAndReopen(log: Log, survivors: number[]): Promise<void> {
  const next = survivors.length;
  expect(log.logEndOffset).toBe(BigInt(next));
  const [result] = log.append([batchOf(1, "after")]);
  expect(result!.baseOffset).toBe(BigInt(next));
  const reopened = await h.reopen(log);
  expect(reopened.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
  expect(offsets(shape(await readAll(reopened)))).toEqual([...survivors, next]);
}

describe("storage > recovery > torn or damaged log", () => {
  it("cuts a truncated last frame", async () => {
    // Ensures a torn write at the tail is dropped and only whole batches survive.
    const path = await fiveBatches();
    const positions = framePositions(path);
    const size = statSync(path).size;
    truncateSync(path, size - 10);
    const log = await h.open({ cleanShutdown: false });
    expect(offsets(shape(await readAll(log)))).toEqual([0, 1, 2, 3]);
    expect(log.recovery).toEqual({ truncatedBytes: size - 10 - positions[4]!, rebuiltIndexes: 2 });
    expect(statSync(path).size).toBe(positions[4]);
    await appendAndReopen(log, [0, 1, 2, 3]);
  });

  it("cuts at a frame whose CRC fails, dropping everything after it", async () => {
    // Ensures a flipped byte inside a frame is found by its CRC and the log ends before it.
    const path = await fiveBatches();
    const positions = framePositions(path);
    const bytes = readFileSync(path);
    bytes[positions[3]! - 2] = bytes[positions[3]! - 2]! ^ 0x40; // inside frame 2's records
    writeFileSync(path, bytes);
    const log = await h.open({ cleanShutdown: false });
    expect(offsets(shape(await readAll(log)))).toEqual([0, 1]);
    expect(log.recovery).toEqual({ truncatedBytes: bytes.length - positions[2]!, rebuiltIndexes: 2 });
    await appendAndReopen(log, [0, 1]);
  });

  it("cuts garbage appended after the last frame", async () => {
    // Ensures bytes that are not a frame are dropped, and the indexes, still right, are kept.
    const path = await fiveBatches();
    appendFileSync(path, Buffer.concat([Buffer.from([0x0a, 0x7f]), Buffer.alloc(98, 0xab)]));
    const log = await h.open({ cleanShutdown: false });
    expect(offsets(shape(await readAll(log)))).toEqual([0, 1, 2, 3, 4]);
    expect(log.recovery).toEqual({ truncatedBytes: 100, rebuiltIndexes: 0 });
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("cuts a torn tail even when told the shutdown was clean", async () => {
    // Ensures the header walk after the last index entry catches what the clean flag would hide.
    const path = await fiveBatches();
    const size = statSync(path).size;
    appendFileSync(path, Buffer.alloc(33, 0x0a));
    const log = await h.open({ cleanShutdown: true });
    expect(log.recovery.truncatedBytes).toBe(33);
    expect(statSync(path).size).toBe(size);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("cuts a batch whose base offset breaks the dense sequence", async () => {
    // Ensures a well-formed frame with the wrong offset (e.g. a stale page) is not trusted.
    const path = await fiveBatches();
    const positions = framePositions(path);
    const bytes = readFileSync(path);
    const wrong = Buffer.from(bytes.subarray(positions[1]!, positions[2]!)); // frame of offset 1 again
    writeFileSync(path, Buffer.concat([bytes, wrong]));
    const log = await h.open({ cleanShutdown: false });
    expect(log.recovery.truncatedBytes).toBe(wrong.length);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });
});

describe("storage > recovery > indexes", () => {
  it("rebuilds a deleted offset index identical to the one appends wrote", async () => {
    // Ensures indexes are disposable: missing means rebuilt, with the same bytes.
    const path = await fiveBatches();
    const original = readFileSync(h.path(0n, "index"));
    expect(original.length).toBe(5 * 8);
    writeFileSync(h.path(0n, "index"), Buffer.alloc(0));
    const log = await h.open();
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 1 });
    expect(readFileSync(h.path(0n, "index")).equals(original)).toBe(true);
    expect(framePositions(path)).toHaveLength(5);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("fsyncs the indexes it rebuilds for a closed segment before closing their descriptors", async () => {
    // Ensures a rebuilt index below the recovery point is durable: no later flush can fsync it
    // (closed segments keep only their .log descriptor) and the point may pass the segment.
    let log = await h.open({ config: { segmentBytes: 200 } });
    for (let i = 0; i < 3; i++) log.append([opaqueBatch(150)]);
    await log.close();
    writeFileSync(h.path(0n, "index"), Buffer.alloc(3)); // not a whole entry
    const fs = new FaultyFileSystem();
    h.fs = fs;
    log = await h.open({ config: { segmentBytes: 200 } });
    expect(log.recovery.rebuiltIndexes).toBe(1);
    expect(fs.fsynced).toContain("00000000000000000000.index");
    expect(fs.fsynced).not.toContain("00000000000000000001.index"); // untouched: nothing to fsync
  });

  it("rebuilds a missing time index file", async () => {
    // Ensures a deleted .timeindex is recreated and timestamp lookups still work.
    await fiveBatches();
    const original = readFileSync(h.path(0n, "timeindex"));
    rmSync(h.path(0n, "timeindex"));
    const log = await h.open();
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 1 });
    expect(readFileSync(h.path(0n, "timeindex")).equals(original)).toBe(true);
    expect(await log.offsetForTimestamp(h.clock.now() - 25)).toBe(3n);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it.each([
    ["a partial trailing entry", (b: Buffer) => Buffer.concat([b, Buffer.from([1, 2, 3, 4, 5])])],
    ["random bytes", (b: Buffer) => Buffer.from(b.map((_, i) => (i * 73 + 11) & 0xff))],
    [
      "an entry past the end of the log",
      (b: Buffer) => Buffer.concat([b, Buffer.from([0, 0, 0, 99, 0, 1, 0, 0])]),
    ],
    [
      "an entry pointing into a frame",
      (b: Buffer) => Buffer.concat([b.subarray(0, 8), Buffer.from([0, 0, 0, 1, 0, 0, 0, 3])]),
    ],
  ])("rebuilds an offset index holding %s", async (_name, damage) => {
    // Ensures a garbage or over-long index is detected on a clean open and rebuilt from the log.
    await fiveBatches();
    const original = readFileSync(h.path(0n, "index"));
    writeFileSync(h.path(0n, "index"), damage(original));
    const log = await h.open();
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 1 });
    expect(readFileSync(h.path(0n, "index")).equals(original)).toBe(true);
    for (let o = 0n; o < 5n; o++) expect((await log.read(o, 1)).nextOffset).toBe(o + 1n);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("rebuilds a time index that misses the newest batch", async () => {
    // Ensures retention and timestamp lookups never trust a time index that understates the newest time.
    await fiveBatches();
    const original = readFileSync(h.path(0n, "timeindex"));
    writeFileSync(h.path(0n, "timeindex"), original.subarray(0, original.length - 12));
    const log = await h.open();
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 1 });
    expect(readFileSync(h.path(0n, "timeindex")).equals(original)).toBe(true);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("appends the active segment's missing final time entry after an unclean stop, rebuilding nothing", async () => {
    // Ensures a sparse time index without its final entry (no close ran) is completed from the scan.
    h.config.indexIntervalBytes = 1 << 20;
    let log = await h.open();
    const t0 = h.clock.now();
    for (let i = 0; i < 5; i++) {
      log.append([batchOf(1, `v${i}`)]);
      h.clock.advance(10);
    }
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([[t0, 0]]);
    log = await h.reopenAfterCrash(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([
      [t0, 0],
      [t0 + 40, 4],
    ]);
    expect(await log.offsetForTimestamp(t0 + 25)).toBe(3n);
    expect(await log.offsetForTimestamp(t0 + 40)).toBe(4n);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it.each([true, false])(
    "rebuilds a closed segment's time index that lacks its final entry (clean shutdown: %s)",
    async (cleanShutdown) => {
      // Ensures only the active segment after an unclean stop may lack the final entry.
      h.config = { ...h.config, indexIntervalBytes: 1 << 20, segmentBytes: 150 };
      let log = await h.open();
      for (let i = 0; i < 4; i++) {
        log.append([batchOf(1, `v${i}`)]);
        h.clock.advance(10);
      }
      expect(log.segmentBaseOffsets()).toEqual([0n, 2n]);
      await log.close();
      const original = readFileSync(h.path(0n, "timeindex"));
      expect(original.length).toBe(24);
      writeFileSync(h.path(0n, "timeindex"), original.subarray(0, 12));
      log = await h.open({ cleanShutdown });
      expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 1 });
      expect(readFileSync(h.path(0n, "timeindex")).equals(original)).toBe(true);
      expect(await log.offsetForTimestamp(h.clock.now() - 25)).toBe(2n);
    },
  );

  it("keeps indexes written with another index.interval.bytes", async () => {
    // Ensures a config change does not force rebuilds: agreement with the log is enough.
    await fiveBatches();
    const log = await h.open({ cleanShutdown: false, config: { indexIntervalBytes: 4096 } });
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(shape(await readAll(log))).toHaveLength(5);
  });
});

describe("storage > recovery > segments", () => {
  it("keeps a zero-length trailing segment as the active one", async () => {
    // Ensures a crash right after a roll (an empty newest .log) is harmless.
    await fiveBatches();
    writeFileSync(h.path(5n, "log"), Buffer.alloc(0));
    const log = await h.open({ cleanShutdown: false });
    expect(log.segmentBaseOffsets()).toEqual([0n, 5n]);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(existsSync(h.path(5n, "index"))).toBe(true);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("drops an empty trailing segment when the segment before it is cut", async () => {
    // Ensures the log end moves back to the cut instead of leaving a hole before an empty segment.
    const path = await fiveBatches();
    const size = statSync(path).size;
    const positions = framePositions(path);
    truncateSync(path, size - 3);
    writeFileSync(h.path(5n, "log"), Buffer.alloc(0));
    const log = await h.open({ cleanShutdown: false });
    expect(log.segmentBaseOffsets()).toEqual([0n]);
    expect(existsSync(h.path(5n, "log"))).toBe(false);
    expect(log.recovery.truncatedBytes).toBe(size - 3 - positions[4]!);
    await appendAndReopen(log, [0, 1, 2, 3]);
  });

  it("scans a closed segment whose index had to be rebuilt and keeps the good segments after damage", async () => {
    // Ensures a bad index never hides a bad log, and damage in fsynced data (found on a clean open)
    // costs only the damaged batches: later segments stay, and reads go around the lost offsets.
    h.config.segmentBytes = 150;
    let log = await h.open();
    for (let i = 0; i < 8; i++) log.append([batchOf(1, `v${i}`)]);
    const bases = log.segmentBaseOffsets();
    expect(bases.length).toBeGreaterThan(2);
    await log.close();
    const first = h.path(bases[0]!, "log");
    const positions = framePositions(first);
    expect(positions.length).toBe(2);
    const bytes = readFileSync(first);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff; // the second frame's CRC fails
    writeFileSync(first, bytes);
    writeFileSync(h.path(bases[0]!, "index"), Buffer.alloc(3));
    log = await h.open();
    expect(log.recovery.truncatedBytes).toBe(bytes.length - positions[1]!);
    expect(log.recovery.rebuiltIndexes).toBe(1);
    expect(log.segmentBaseOffsets()).toEqual(bases);
    const batches = shape(await readAll(log));
    expect(offsets(batches)).toEqual([0, 2, 3, 4, 5, 6, 7]);
    expect((await log.read(1n, 1 << 20)).nextOffset).toBe(bases[2]);
    log = await h.reopen(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(shape(await readAll(log))).toEqual(batches);
    await log.close();
  });

  it("finishes interrupted deletes and removes leftovers and orphan indexes", async () => {
    // Ensures files of decided operations never come back as segments.
    await fiveBatches();
    const stray = [
      "00000000000000000100.log.deleted",
      "00000000000000000100.index.deleted",
      "00000000000000000007.index",
      "00000000000000000009.timeindex.swap",
    ];
    for (const name of stray) writeFileSync(join(h.dir, name), Buffer.alloc(16));
    writeFileSync(join(h.dir, "notes.txt"), "not ours");
    const log = await h.open();
    expect(readdirSync(h.dir).sort()).toEqual([
      "00000000000000000000.index",
      "00000000000000000000.log",
      "00000000000000000000.timeindex",
      "notes.txt",
    ]);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });
});

/** Appends `count` one-record batches, two per segment (segment.bytes 150), at distinct times. */
function appendOnes(log: Log, count: number): void {
  for (let i = 0; i < count; i++) {
    log.append([batchOf(1, `v${log.logEndOffset}`)]);
    h.clock.advance(10);
  }
}

/** Flips a byte inside the records of the last frame of a segment: its header stays well-formed. */
function damageLastFrame(base: bigint): { frameBytes: number } {
  const path = h.path(base, "log");
  const bytes = readFileSync(path);
  const positions = framePositions(path);
  expect(positions.length).toBe(2);
  bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0x40;
  writeFileSync(path, bytes);
  return { frameBytes: bytes.length - positions[1]! };
}

describe("storage > recovery > recovery point", () => {
  beforeEach(() => {
    h.config.segmentBytes = 150;
  });

  it("moves forward on a flush after a roll, never on a flush of the active segment alone, and survives reopening", async () => {
    // Ensures the recovery point is written about once per roll and read back by every open.
    const fs = new FaultyFileSystem();
    h.fs = fs;
    let log = await h.open();
    appendOnes(log, 2);
    await log.flush();
    expect(log.segmentBaseOffsets()).toEqual([0n]);
    expect(h.recoveryPoint()).toBeNull(); // no file scans everything: the same, here
    appendOnes(log, 1);
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n]);
    expect(h.recoveryPoint()).toBeNull();
    await log.flush();
    expect(h.recoveryPoint()).toBe(2n);
    const renames = fs.calls.rename;
    appendOnes(log, 1);
    await log.flush();
    expect(fs.calls.rename).toBe(renames); // appends to the active segment do not move it
    appendOnes(log, 2);
    await log.flush();
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n, 4n]);
    expect(h.recoveryPoint()).toBe(4n);
    expect(readFileSync(join(h.dir, RECOVERY_POINT_FILE), "latin1")).toBe("4\n");
    log = await h.reopen(log);
    expect(h.recoveryPoint()).toBe(4n);
    log = await h.reopenAfterCrash(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(h.recoveryPoint()).toBe(4n);
    expect(offsets(shape(await readAll(log)))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("cuts a torn tail of a rolled segment at or above the recovery point and deletes every later segment", async () => {
    // Ensures a power loss before a rolled segment was flushed cannot leave a torn frame that the
    // cheap tail walk (no CRCs) would accept: the segment is scanned, cut, and the log ends there.
    let log = await h.open();
    appendOnes(log, 4);
    await log.flush();
    expect(h.recoveryPoint()).toBe(2n);
    appendOnes(log, 6); // rolled, never flushed: 2 (its final time entry), 4, 6 and the active 8
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n, 4n, 6n, 8n]);
    let torn = 0;
    let later = 0;
    log = await h.reopenAfterCrash(log, {
      beforeOpen: () => {
        torn = damageLastFrame(4n).frameBytes; // offset 5
        later = statSync(h.path(6n, "log")).size + statSync(h.path(8n, "log")).size;
      },
    });
    expect(log.recovery.truncatedBytes).toBe(torn + later);
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n, 4n]);
    expect(existsSync(h.path(6n, "log"))).toBe(false);
    expect(existsSync(h.path(8n, "log"))).toBe(false);
    expect(log.logEndOffset).toBe(5n);
    expect(h.recoveryPoint()).toBe(2n);
    // The first flush fsyncs what recovery scanned before the point moves past it.
    await log.flush();
    expect(h.recoveryPoint()).toBe(4n);
    await appendAndReopen(log, [0, 1, 2, 3, 4]);
  });

  it("does not scan a rolled segment below the recovery point: a damaged frame there is left for reads to report", async () => {
    // Ensures the recovery point bounds the work of an unclean open (segments below it were
    // fsynced whole); damage there, which no crash causes, is still never served: reads check CRCs.
    let log = await h.open();
    appendOnes(log, 6);
    await log.flush();
    expect(h.recoveryPoint()).toBe(4n);
    appendOnes(log, 2);
    log = await h.reopenAfterCrash(log, { beforeOpen: () => damageLastFrame(0n) });
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n, 4n, 6n]);
    expect(log.logEndOffset).toBe(8n);
    expect((await log.read(0n, 1)).nextOffset).toBe(1n);
    await expect(log.read(1n, 1 << 20)).rejects.toBeInstanceOf(CorruptBatchError);
    expect(offsets(shape(await readAll(log, 2n)))).toEqual([2, 3, 4, 5, 6, 7]);
  });

  it.each([
    ["missing", () => rmSync(join(h.dir, RECOVERY_POINT_FILE))],
    ["unreadable", () => writeFileSync(join(h.dir, RECOVERY_POINT_FILE), "four\n")],
  ])("scans every segment when the recovery point is %s", async (_name, lose) => {
    // Ensures a lost or damaged recovery-point file only costs a longer scan, never a missed cut.
    let log = await h.open();
    appendOnes(log, 6);
    await log.flush();
    expect(h.recoveryPoint()).toBe(4n);
    appendOnes(log, 2);
    let damaged = 0;
    let later = 0;
    log = await h.reopenAfterCrash(log, {
      beforeOpen: () => {
        lose();
        damaged = damageLastFrame(0n).frameBytes;
        for (const base of [2n, 4n, 6n]) later += statSync(h.path(base, "log")).size;
      },
    });
    expect(log.recovery).toEqual({ truncatedBytes: damaged + later, rebuiltIndexes: 2 });
    expect(log.segmentBaseOffsets()).toEqual([0n]);
    await appendAndReopen(log, [0]);
  });

  it("does not fail a flush when writing the recovery point fails, and retries on the next flush", async () => {
    // Ensures the recovery point is best effort: the old value stays (safe, recovery scans more).
    const fs = new FaultyFileSystem();
    h.fs = fs;
    let log = await h.open();
    appendOnes(log, 3);
    fs.writevFault = { code: "ENOSPC", pathIncludes: RECOVERY_POINT_FILE, partialBytes: 1 };
    expect(await log.flush()).toBe(3n);
    expect(fs.writevFault).toBeNull(); // the write was tried
    expect(h.recoveryPoint()).toBeNull();
    expect(await log.flush()).toBe(3n);
    expect(h.recoveryPoint()).toBe(2n);
    appendOnes(log, 2);
    fs.renameFault = "EIO";
    expect(await log.flush()).toBe(5n);
    expect(fs.renameFault).toBeNull();
    expect(h.recoveryPoint()).toBe(2n);
    expect(await log.flush()).toBe(5n);
    expect(h.recoveryPoint()).toBe(4n);
    log = await h.reopenAfterCrash(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(offsets(shape(await readAll(log)))).toEqual([0, 1, 2, 3, 4]);
  });
});
