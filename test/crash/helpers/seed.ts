/**
 * The seed of a crash test run: CRASH_SEED from the environment, or a fresh random one, always
 * printed, so a failing run can be replayed exactly (every assertion message names it too).
 * Random choices derive from it through fast-check, never Math.random.
 */
import fc from "fast-check";

/** The run's seed (printed with console.log). */
export function crashSeed(test: string): number {
  const raw = process.env.CRASH_SEED;
  const seed = raw !== undefined && raw !== "" ? Number(raw) : Math.floor(Math.random() * 2 ** 31);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`CRASH_SEED must be a non-negative integer, not ${JSON.stringify(raw)}`);
  console.log(`${test}: CRASH_SEED=${seed} (set CRASH_SEED=${seed} to replay this run)`);
  return seed;
}

/** `count` integers in [min, max], a pure function of `seed`. */
export function seededIntegers(seed: number, count: number, min: number, max: number): number[] {
  return fc.sample(fc.integer({ min, max }), { seed, numRuns: count });
}
