/**
 * The kill-loop run both kill-loop test files make (kill-loop.test.ts for FSYNCED,
 * kill-loop-written.test.ts for WRITTEN; separate files so each stays within its time bound): the
 * same load (KILLS seeded SIGKILLs, 4 producers over 3 partitions, 16 KiB segments), its figures
 * printed, and the checks both durabilities share asserted. Each test adds its own on the result.
 *
 * Invariants: the seed is printed and named in every assertion message (CRASH_SEED replays a run);
 * the number of kills is fixed.
 */
import { expect } from "vitest";
import { type KillLoopResult, runKillLoop } from "./kill-loop.js";
import { printKillLoop } from "./kill-loop-report.js";
import type { Durability } from "./raw-log.js";
import { crashSeed } from "./seed.js";

export const KILLS = 20;

/** Runs the loop at `durability`, prints it as `kill-loop <label>`, checks what both variants must hold. */
export async function runKillLoopCase(
  label: "fsynced" | "written",
  durability: Durability,
): Promise<{ seed: number; r: KillLoopResult }> {
  const seed = crashSeed(`kill-loop ${label}`);
  const started = performance.now();
  const r = await runKillLoop({
    label,
    seed,
    durability,
    kills: KILLS,
    partitions: 3,
    producers: 4,
    minLoadMs: 30,
    maxLoadMs: 300,
    segmentBytes: 16 * 1024,
  });
  printKillLoop(`kill-loop ${label}`, seed, r, performance.now() - started);
  expect(r.violations, `CRASH_SEED=${seed}`).toEqual([]);
  expect(r.kills, `CRASH_SEED=${seed}: kills`).toBe(KILLS);
  expect(r.ackedRecords, `CRASH_SEED=${seed}: acked records`).toBeGreaterThan(KILLS);
  expect(r.segmentFiles, `CRASH_SEED=${seed}: segments rolled during the run`).toBeGreaterThan(3);
  return { seed, r };
}
