/**
 * When V8 starts an old-generation collection in the `rill broker` process.
 *
 * The broker's JavaScript heap is small (~15 MB live) and its traffic lives outside it: every
 * segment read, every received HTTP/2 chunk and every framed gRPC message is an ArrayBuffer.
 * With V8's default trigger (start incremental marking once the old generation is within about
 * one young generation of its limit) a 15 MB heap with a ~39 MB limit is always "within", so
 * V8 ran a full mark-compact every 50–100 ms while a consumer read at full speed (GC was 47 % of
 * the broker's busy time, `node --trace-gc`: 45 mark-compacts in 1.3 s) and 3–8 times in 10 s at
 * 10k records/s. Starting marking at a share of
 * the limit instead keeps V8's own limits (and `--max-old-space-size`) but collects when the old
 * generation has actually grown: 0–1 mark-compacts in the same runs (BENCHMARKS.md).
 *
 * Applied by `runBroker` (the `rill broker` process), not by `startBroker`: an application that
 * embeds a broker keeps its own V8 settings. Flags given on node's command line win.
 */
import { setFlagsFromString } from "node:v8";

/** Old-generation fill (percent of V8's limit) at which marking starts in a task / at once. */
export const MARKING_SOFT_TRIGGER_PERCENT = 80;
export const MARKING_HARD_TRIGGER_PERCENT = 95;

const FLAGS = [
  ["incremental-marking-soft-trigger", MARKING_SOFT_TRIGGER_PERCENT],
  ["incremental-marking-hard-trigger", MARKING_HARD_TRIGGER_PERCENT],
] as const;

/**
 * Sets the broker's marking triggers, except those node was started with (`execArgv`), and
 * returns the flags it set. `set` is the seam for tests.
 */
export function tuneGarbageCollector(
  execArgv: readonly string[] = process.execArgv,
  set: (flag: string) => void = setFlagsFromString,
): string[] {
  const given = (name: string) =>
    execArgv.some((arg) => {
      const flag = arg.split("=")[0]!.replaceAll("_", "-");
      return flag === `--${name}` || flag === `--no-${name}`;
    });
  const applied: string[] = [];
  for (const [name, value] of FLAGS) {
    if (given(name)) continue;
    const flag = `--${name}=${value}`;
    set(flag);
    applied.push(flag);
  }
  return applied;
}
