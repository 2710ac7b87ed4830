/**
 * Printing the figures of a kill-loop run (seed, kills, records checked, peak RSS) so the run can
 * be quoted in RELIABILITY.md and replayed with CRASH_SEED.
 */
import type { KillLoopResult } from "./kill-loop.js";

export function printKillLoop(name: string, seed: number, r: KillLoopResult, ms: number): void {
  const { violations, ...figures } = r;
  console.log(`${name}: CRASH_SEED=${seed} ${Math.round(ms)} ms ${JSON.stringify(figures)}`);
  for (const v of violations) console.log(`${name}: VIOLATION ${v}`);
}
