import { statSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { frameBytes } from "../../../server/src/storage/batch-frame.js";
import {
  batchOf,
  FaultyFileSystem,
  Harness,
  opaqueBatch,
  readAll,
  shape,
  timeIndexEntries,
} from "./helpers.js";

let h: Harness;
let fs: FaultyFileSystem;
beforeEach(() => {
  h = new Harness({ indexIntervalBytes: 1 });
  fs = new FaultyFileSystem();
  h.fs = fs;
});
afterEach(async () => {
  await h.cleanup();
});

function fileSizes(bases: readonly bigint[]): number[] {
  return bases.flatMap((b) =>
    (["log", "index", "timeindex"] as const).map((k) => statSync(h.path(b, k)).size),
  );
}

describe("storage > faults > append", () => {
  it.each([
    ["a torn write of the .log", { pathIncludes: ".log", partialBytes: 70 }],
    ["a failed write of the .log", { pathIncludes: ".log", partialBytes: 0 }],
    ["a torn write of the .index", { pathIncludes: ".index", partialBytes: 5 }],
    ["a torn write of the .timeindex", { pathIncludes: ".timeindex", partialBytes: 13 }],
  ])("survives ENOSPC in %s: unchanged, appendable, no torn frame on reopen", async (_name, where) => {
    // Ensures a failed append leaves memory and disk as they were, and the log works once the fault clears.
    let log = await h.open();
    log.append([batchOf(2), batchOf(1)]);
    const before = fileSizes([0n]);
    fs.writevFault = { code: "ENOSPC", ...where };
    h.clock.advance(5);
    expect(() => log.append([batchOf(3, "a"), batchOf(1, "b")])).toThrow(
      expect.objectContaining({ code: "ENOSPC" }),
    );
    expect(fs.writevFault).toBeNull();
    expect(log.logEndOffset).toBe(3n);
    expect(fileSizes([0n])).toEqual(before);
    expect(shape(await readAll(log))).toEqual([
      [0, 2],
      [2, 1],
    ]);
    const [after] = log.append([batchOf(4, "c")]);
    expect(after!.baseOffset).toBe(3n);
    log = await h.reopen(log, { cleanShutdown: false });
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(shape(await readAll(log))).toEqual([
      [0, 2],
      [2, 1],
      [3, 4],
    ]);
  });

  it("undoes an append that rolled a segment before failing", async () => {
    // Ensures all-or-nothing appends across a roll: the new segment goes, the old one is cut back.
    h.config.segmentBytes = 2 * frameBytes(50);
    let log = await h.open();
    log.append([opaqueBatch(50)]);
    const before = fileSizes([0n]);
    // The first group (one frame into segment 0) succeeds; the write into the rolled segment fails.
    fs.writevFault = { code: "EIO", pathIncludes: "00000000000000000002.log", partialBytes: 20 };
    expect(() => log.append([opaqueBatch(50), opaqueBatch(50), opaqueBatch(50)])).toThrow(/EIO/);
    expect(log.segmentBaseOffsets()).toEqual([0n]);
    expect(log.logEndOffset).toBe(1n);
    expect(fileSizes([0n])).toEqual(before);
    expect(() => statSync(h.path(2n, "log"))).toThrow();
    log.append([opaqueBatch(50), opaqueBatch(50), opaqueBatch(50)]);
    expect(log.segmentBaseOffsets()).toEqual([0n, 2n]);
    log = await h.reopen(log, { cleanShutdown: false });
    expect(shape(await readAll(log))).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
  });

  it.each([
    ["the final time entry of the rolled segment", "00000000000000000000.timeindex"],
    ["the new segment, after the final time entry", "00000000000000000002.log"],
  ])("undoes a roll's final time entry when writing %s fails", async (_name, pathIncludes) => {
    // Ensures the final entry written on roll is part of the all-or-nothing append.
    h.config = { ...h.config, segmentBytes: 2 * frameBytes(50), indexIntervalBytes: 1 << 20 };
    let log = await h.open();
    const t0 = h.clock.now();
    log.append([opaqueBatch(50)]);
    h.clock.advance(1);
    log.append([opaqueBatch(50)]);
    const before = fileSizes([0n]);
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([[t0, 0]]);
    h.clock.advance(1);
    fs.writevFault = { code: "ENOSPC", pathIncludes, partialBytes: 5 };
    expect(() => log.append([opaqueBatch(50)])).toThrow(/ENOSPC/);
    expect(log.segmentBaseOffsets()).toEqual([0n]);
    expect(fileSizes([0n])).toEqual(before);
    log.append([opaqueBatch(50)]);
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([
      [t0, 0],
      [t0 + 1, 1],
    ]);
    log = await h.reopen(log, { cleanShutdown: false });
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(await log.offsetForTimestamp(t0 + 1)).toBe(1n);
    expect(await log.offsetForTimestamp(t0 + 2)).toBe(2n);
  });

  it("keeps working when the torn bytes cannot be cut off either", async () => {
    // Ensures positional writes overwrite an uncut tail, and close cuts it, so no garbage survives.
    let log = await h.open();
    log.append([batchOf(1)]);
    const size = statSync(h.path(0n, "log")).size;
    fs.writevFault = { code: "ENOSPC", pathIncludes: ".log", partialBytes: 30 };
    fs.ftruncateFault = "EIO";
    expect(() => log.append([batchOf(5)])).toThrow(/ENOSPC/);
    expect(statSync(h.path(0n, "log")).size).toBe(size + 30);
    expect(log.logEndOffset).toBe(1n);
    expect(shape(await readAll(log))).toEqual([[0, 1]]);
    log.append([batchOf(2)]);
    log = await h.reopen(log, { cleanShutdown: false });
    expect(log.recovery.truncatedBytes).toBe(0);
    expect(shape(await readAll(log))).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });
});

describe("storage > faults > flush", () => {
  it("reports a failed fsync and retries the same segments on the next flush", async () => {
    // Ensures an fsync error is not swallowed and does not lose track of unflushed data.
    let log = await h.open();
    log.append([batchOf(1)]);
    fs.fsyncFault = "EIO";
    await expect(log.flush()).rejects.toThrow(/EIO/);
    const calls = fs.calls.fsync;
    expect(await log.flush()).toBe(1n);
    expect(fs.calls.fsync).toBe(calls + 1 + 1); // the active .log and the directory, both retried
    log = await h.reopen(log);
    expect(log.logEndOffset).toBe(1n);
  });
});
