/**
 * A full garbage collection of the bench's own process, run before a timed producer run so that
 * the garbage of what ran before it (an earlier phase's records, the other half of phase 9) is not
 * collected on that run's clock. `gc()` exists only with V8's `--expose-gc`; the flag is set at
 * run time and the function taken from a new context, where V8 installs it.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}
