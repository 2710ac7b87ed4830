import { readFileSync, statSync, writeFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Log } from "../../../server/src/storage/log.js";
import { Harness, opaqueBatch, timeIndexEntries } from "./helpers.js";

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

/** Appends `count` one-record batches, the clock advancing 1 ms after each; returns their times. */
function appendTicking(log: Log, count: number, size = 100): number[] {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    times.push(log.append([opaqueBatch(size)])[0]!.appendTimeMs);
    h.clock.advance(1);
  }
  return times;
}

/** Checks offsetForTimestamp against the batch times (offset i appended at times[i]) at every `step`-th batch. */
async function checkLookups(log: Log, times: readonly number[], step: number): Promise<void> {
  for (let i = 0; i < times.length; i += step) {
    expect(await log.offsetForTimestamp(times[i]!)).toBe(BigInt(i));
  }
  expect(await log.offsetForTimestamp(0)).toBe(0n);
  expect(await log.offsetForTimestamp(times.at(-1)!)).toBe(BigInt(times.length - 1));
  expect(await log.offsetForTimestamp(times.at(-1)! + 1)).toBeNull();
}

function offsetEntryCount(base: bigint): number {
  return statSync(h.path(base, "index")).size / 8;
}

describe("storage > time-index > sparse", () => {
  it("adds time entries only with offset entries, not one per millisecond, and looks up exactly", async () => {
    // Ensures a busy partition (a new append time per batch) does not grow the time index per batch.
    let log = await h.open({ config: { indexIntervalBytes: 1 << 20, segmentBytes: 1 << 20 } });
    const times = appendTicking(log, 2000);
    expect(log.segmentCount).toBe(1);
    expect(offsetEntryCount(0n)).toBe(1);
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([[times[0]!, 0]]);
    await checkLookups(log, times, 37);
    log = await h.reopen(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    // Close added the final entry: the newest time and its batch.
    expect(timeIndexEntries(h.path(0n, "timeindex"))).toEqual([
      [times[0]!, 0],
      [times[1999]!, 1999],
    ]);
    await checkLookups(log, times, 37);
  });

  it("keeps O(offset entries) time entries across rolled segments, each ending with its newest time", async () => {
    // Ensures the bound holds per segment and a rolled segment is final before any close.
    let log = await h.open({ config: { indexIntervalBytes: 4096, segmentBytes: 64 << 10 } });
    const times = appendTicking(log, 3000);
    const bases = log.segmentBaseOffsets();
    expect(bases.length).toBeGreaterThan(4);
    let timeEntries = 0;
    bases.forEach((base, i) => {
      const entries = timeIndexEntries(h.path(base, "timeindex"));
      timeEntries += entries.length;
      expect(entries.length).toBeLessThanOrEqual(offsetEntryCount(base) + 1);
      const newest = i < bases.length - 1 ? Number(bases[i + 1]!) - 1 : times.length - 1;
      if (i < bases.length - 1) expect(entries.at(-1)).toEqual([times[newest]!, newest - Number(base)]);
    });
    expect(timeEntries).toBeLessThan(times.length / 20);
    await checkLookups(log, times, 13);
    log = await h.reopen(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    await checkLookups(log, times, 13);
  });

  it("rebuilds sparse time indexes byte for byte as appends, rolls and close wrote them", async () => {
    // Ensures rebuilds apply the same rule, final entries included.
    h.config = { ...h.config, indexIntervalBytes: 1000, segmentBytes: 16 << 10 };
    let log = await h.open();
    const times = appendTicking(log, 500);
    const bases = log.segmentBaseOffsets();
    await log.close();
    const originals = bases.map((b) => readFileSync(h.path(b, "timeindex")));
    for (const b of bases) writeFileSync(h.path(b, "timeindex"), Buffer.alloc(0));
    log = await h.open();
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: bases.length });
    for (const [i, b] of bases.entries())
      expect(readFileSync(h.path(b, "timeindex")).equals(originals[i]!)).toBe(true);
    await checkLookups(log, times, 7);
  });

  it("recovers the exact newest time of the active segment after a crash, appending its final entry", async () => {
    // Ensures an unclean stop (no roll or close wrote the final entry) needs no rebuild.
    let log = await h.open({ config: { indexIntervalBytes: 1 << 20, segmentBytes: 16 << 10 } });
    const times = appendTicking(log, 300);
    const active = log.segmentBaseOffsets().at(-1)!;
    const last = times.length - 1;
    expect(timeIndexEntries(h.path(active, "timeindex"))).toEqual([[times[Number(active)]!, 0]]);
    log = await h.reopenAfterCrash(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(timeIndexEntries(h.path(active, "timeindex")).at(-1)).toEqual([
      times[last]!,
      last - Number(active),
    ]);
    await checkLookups(log, times, 11);
    // Appends go on after the final entry, and a clean reopen trusts the result.
    h.clock.advance(5);
    const [next] = log.append([opaqueBatch(100)]);
    log = await h.reopen(log);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
    expect(await log.offsetForTimestamp(times[last]! + 1)).toBe(next!.baseOffset);
  });
});
