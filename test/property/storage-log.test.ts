import { appendFileSync, readFileSync, statSync, truncateSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isFrameProblem, parseFrameHeader } from "../../server/src/storage/batch-frame.js";
import type { Log } from "../../server/src/storage/log.js";
import { framePositions, Harness, opaqueBatch, readAll, timeIndexEntries } from "../unit/storage/helpers.js";

/** Runs per property; RILL_PROPERTY_RUNS=1000 for a deeper search than the quick default. */
const RUNS = Number(process.env.RILL_PROPERTY_RUNS ?? 60);

interface ModelBatch {
  base: number;
  count: number;
  time: number;
}

const batchArb = fc.record({
  count: fc.integer({ min: 1, max: 6 }),
  size: fc.integer({ min: 0, max: 200 }),
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })),
});

const scenarioArb = fc.record({
  segmentBytes: fc.integer({ min: 60, max: 1500 }),
  indexIntervalBytes: fc.integer({ min: 0, max: 600 }),
  appends: fc.array(fc.array(batchArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 25 }),
  maxBytes: fc.integer({ min: 1, max: 1200 }),
  timeProbes: fc.array(fc.integer({ min: -5, max: 1500 }), { maxLength: 8 }),
  /** clean: close, reopen clean; flag: close, reopen as if unclean; crash: files as before the close. */
  shutdown: fc.constantFrom("clean", "flag", "crash"),
});

/** Reads at `offset` and checks the answer against the model: whole frames, right batches, bounded. */
async function checkRead(
  log: Log,
  model: readonly ModelBatch[],
  offset: number,
  maxBytes: number,
): Promise<void> {
  const read = await log.read(BigInt(offset), maxBytes);
  let i = model.findIndex((b) => b.base <= offset && offset < b.base + b.count);
  let at = 0;
  while (at < read.data.length) {
    const header = parseFrameHeader(read.data, at, read.data.length);
    if (isFrameProblem(header)) throw new Error(header.problem);
    const expected = model[i++]!;
    expect([Number(header.baseOffset), header.recordCount, header.appendTimeMs]).toEqual([
      expected.base,
      expected.count,
      expected.time,
    ]);
    at += header.frameBytes;
  }
  expect(at).toBe(read.data.length);
  expect(read.batchCount).toBeGreaterThanOrEqual(1);
  if (read.batchCount > 1) expect(read.data.length).toBeLessThanOrEqual(maxBytes);
  const last = model[i - 1]!;
  expect(read.nextOffset).toBe(BigInt(last.base + last.count));
}

async function checkLog(
  log: Log,
  model: readonly ModelBatch[],
  maxBytes: number,
  probes: number[],
): Promise<void> {
  const end = model.length === 0 ? 0 : model[model.length - 1]!.base + model[model.length - 1]!.count;
  expect(log.logEndOffset).toBe(BigInt(end));
  for (const b of model) {
    await checkRead(log, model, b.base, maxBytes);
    if (b.count > 1) await checkRead(log, model, b.base + b.count - 1, maxBytes);
  }
  for (const t of probes) {
    const expected = model.find((b) => b.time >= t);
    expect(await log.offsetForTimestamp(t)).toBe(expected === undefined ? null : BigInt(expected.base));
  }
}

/**
 * Checks the sparse time index files (index-rule.ts): at most one entry per offset-index entry plus
 * a final one, each naming a batch and its time, and ending with the segment's newest time for
 * every segment but an unsealed active one.
 */
function checkTimeIndexes(h: Harness, log: Log, model: readonly ModelBatch[], activeSealed: boolean): void {
  const bases = log.segmentBaseOffsets().map(Number);
  bases.forEach((base, i) => {
    const inSegment = model.filter(
      (b) => b.base >= base && (i === bases.length - 1 || b.base < bases[i + 1]!),
    );
    const entries = timeIndexEntries(h.path(BigInt(base), "timeindex"));
    const offsetEntries = statSync(h.path(BigInt(base), "index")).size / 8;
    expect(entries.length).toBeLessThanOrEqual(offsetEntries + 1);
    for (const [time, relative] of entries) {
      expect(inSegment.find((b) => b.base === base + relative)?.time).toBe(time);
    }
    if (inSegment.length > 0 && (activeSealed || i < bases.length - 1))
      expect(entries.at(-1)![0]).toBe(inSegment.at(-1)!.time);
  });
}

describe("storage > log > property", () => {
  it("answers reads and timestamp lookups like a sorted-array model, before and after reopening", async () => {
    // Ensures offset-index and time-index lookups (plus frame walks) agree with a simple model for
    // random batch sizes, counts, times, segment sizes and index intervals, with sparse time indexes,
    // also after a crash (the active segment's final time entry is then appended by recovery).
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const h = new Harness({ segmentBytes: s.segmentBytes, indexIntervalBytes: s.indexIntervalBytes });
        try {
          const t0 = h.clock.now();
          let log = await h.open();
          const model: ModelBatch[] = [];
          let next = 0;
          for (const group of s.appends) {
            h.clock.advance(group[0]!.advanceMs);
            const results = log.append(group.map((b) => opaqueBatch(b.size, b.count)));
            for (const r of results) {
              expect(r.baseOffset).toBe(BigInt(next));
              model.push({ base: next, count: r.recordCount, time: r.appendTimeMs });
              next += r.recordCount;
            }
          }
          const probes = [
            ...s.timeProbes.map((p) => t0 + p),
            ...model.flatMap((b) => [b.time - 1, b.time, b.time + 1]),
          ];
          await checkLog(log, model, s.maxBytes, probes);
          checkTimeIndexes(h, log, model, false);
          log =
            s.shutdown === "crash"
              ? await h.reopenAfterCrash(log)
              : await h.reopen(log, { cleanShutdown: s.shutdown === "clean" });
          expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
          checkTimeIndexes(h, log, model, true);
          await checkLog(log, model, s.maxBytes, probes);
          log = await h.reopen(log);
          expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
          await checkLog(log, model, s.maxBytes, probes);
        } finally {
          await h.cleanup();
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe("storage > recovery > property", () => {
  it("keeps exactly the whole frames before a random cut of the active segment, plus random garbage", async () => {
    // Ensures a crash at any byte of a write loses only the torn batch and what follows it.
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ count: fc.integer({ min: 1, max: 4 }), size: fc.integer({ min: 0, max: 120 }) }),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        fc.integer({ min: 100, max: 1000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.uint8Array({ maxLength: 80 }),
        async (batches, segmentBytes, cutAt, garbage) => {
          const h = new Harness({ segmentBytes, indexIntervalBytes: 64 });
          try {
            let log = await h.open();
            const bases: bigint[] = [];
            for (const b of batches) {
              bases.push(log.append([opaqueBatch(b.size, b.count)])[0]!.baseOffset);
              h.clock.advance(1);
            }
            const active = log.segmentBaseOffsets().at(-1)!;
            const inEarlierSegments = bases.filter((base) => base < active).length;
            await log.close();
            const path = h.path(active, "log");
            const size = statSync(path).size;
            const cut = Math.floor(cutAt * size);
            const ends = framePositions(path).map((_, i, all) => all[i + 1] ?? size);
            const keptFrames = ends.filter((end) => end <= cut);
            const kept = keptFrames.at(-1) ?? 0;
            // Garbage must not re-create the bytes it replaces (a 1-byte garbage equal to the cut
            // byte restores the original file): make its first byte differ from the original.
            if (garbage.length > 0 && cut < size) garbage[0] = readFileSync(path)[cut]! ^ 0xff;
            truncateSync(path, cut);
            appendFileSync(path, garbage);
            log = await h.open({ cleanShutdown: false });
            // Garbage that continues the log validly would need a whole frame with a matching CRC.
            expect(log.recovery.truncatedBytes).toBe(cut + garbage.length - kept);
            expect(statSync(path).size).toBe(kept);
            const survivors = await readAll(log);
            const total = survivors.reduce((n, b) => n + b.recordCount, 0);
            expect(log.logEndOffset).toBe(BigInt(total));
            expect(survivors).toHaveLength(inEarlierSegments + keptFrames.length);
            expect(survivors.map((b) => b.recordCount)).toEqual(
              batches.map((b) => b.count).slice(0, survivors.length),
            );
            log.append([opaqueBatch(1)]);
            log = await h.reopen(log);
            expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltIndexes: 0 });
            expect((await readAll(log)).length).toBe(survivors.length + 1);
          } finally {
            await h.cleanup();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
