/**
 * When V8 starts an old-generation collection in the `rill broker` process.
 *
 * The broker's JavaScript heap is small (~15 MB live) and its traffic lives outside it: every
 * segment read, every received HTTP/2 chunk and every framed gRPC message is an ArrayBuffer.
 * With V8's default trigger (start incremental marking once the old generation is within about
 * one young generation of its limit) a 15 MB heap with a ~39 MB limit is always "within", so
 * V8 ran a full mark-compact every 50–100 ms while a consumer read at full speed (GC was 47 % of
 * the broker's busy time, `node --trace-gc`: 45 mark-compacts in 1.3 s) and 3–8 times in 10 s at
 * 10k records/s. With the two trigger flags set, V8 instead starts marking once a share of the
 * room between the heap's size after the last full collection and its limit has been allocated
 * (ArrayBuffer memory counts): 80 % in a task, 95 % at once. V8's limits (and
 * `--max-old-space-size`) stay as they are: 0–1 mark-compacts in the same runs (BENCHMARKS.md).
 *
 * The ArrayBuffers that die young are freed by the scavenge that finds them dead, but by default
 * on a background thread, after it: the check for the trigger that follows the scavenge still
 * counts them. Once the broker's produce path allocated little JavaScript per batch (so ~700 batches
 * of received buffers, ~18 MB, went by between scavenges), that alone crossed the 80 % and V8 ran a
 * mark-compact after every scavenge, 17 per million records where there had been 2
 * (`--trace-gc-nvp`: nothing promoted, old generation flat). `--no-concurrent-array-buffer-sweeping`
 * frees them inside the scavenge (a `free` per buffer, well under a millisecond): 1 per million.
 *
 * Applied by `runBroker` (the `rill broker` process), not by `startBroker`: an application that
 * embeds a broker keeps its own V8 settings. Node's command line wins, a group of flags at a time:
 * if it names either trigger the broker sets neither (one alone would replace V8's default rule
 * half-way; both at 0 restore the default), and if it names the sweeping flag the broker leaves it.
 */
import { setFlagsFromString } from "node:v8";

/** Share (percent) of the room to the limit allocated before marking starts in a task / at once. */
export const MARKING_SOFT_TRIGGER_PERCENT = 80;
export const MARKING_HARD_TRIGGER_PERCENT = 95;

/** Flags set together or not at all, each group skipped if node's command line names one of it. */
const GROUPS: readonly (readonly (readonly [name: string, value: number | false])[])[] = [
  [
    ["incremental-marking-soft-trigger", MARKING_SOFT_TRIGGER_PERCENT],
    ["incremental-marking-hard-trigger", MARKING_HARD_TRIGGER_PERCENT],
  ],
  [["concurrent-array-buffer-sweeping", false]],
];

/** Whether node's command line names the V8 flag (`--name`, `-name`, `--no-name`, `_` for `-`). */
function given(execArgv: readonly string[], name: string): boolean {
  return execArgv.some((arg) => {
    const flag = arg.split("=")[0]!.replaceAll("_", "-").replace(/^--?/, "");
    return flag === name || flag === `no-${name}`;
  });
}

/**
 * Sets the broker's V8 flags, except the groups node was started with (`execArgv`), and returns
 * the flags it set. `set` is the seam for tests.
 */
export function tuneGarbageCollector(
  execArgv: readonly string[] = process.execArgv,
  set: (flag: string) => void = setFlagsFromString,
): string[] {
  const applied: string[] = [];
  for (const group of GROUPS) {
    if (group.some(([name]) => given(execArgv, name))) continue;
    for (const [name, value] of group) applied.push(value === false ? `--no-${name}` : `--${name}=${value}`);
  }
  for (const flag of applied) set(flag);
  return applied;
}
