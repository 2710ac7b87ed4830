/**
 * gc-tuning.ts: which V8 flags `rill broker` sets, that node's own command line wins, and that
 * this node really knows the flags (node refuses an unknown V8 flag on its command line).
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  MARKING_HARD_TRIGGER_PERCENT,
  MARKING_SOFT_TRIGGER_PERCENT,
  tuneGarbageCollector,
} from "../../server/src/gc-tuning.js";

function tune(execArgv: string[]): { applied: string[]; set: string[] } {
  const set: string[] = [];
  const applied = tuneGarbageCollector(execArgv, (flag) => set.push(flag));
  return { applied, set };
}

describe("tuneGarbageCollector", () => {
  it("sets both marking triggers when node was started without them", () => {
    const { applied, set } = tune(["--enable-source-maps"]);
    expect(set).toEqual([
      `--incremental-marking-soft-trigger=${MARKING_SOFT_TRIGGER_PERCENT}`,
      `--incremental-marking-hard-trigger=${MARKING_HARD_TRIGGER_PERCENT}`,
    ]);
    expect(applied).toEqual(set);
    expect(MARKING_SOFT_TRIGGER_PERCENT).toBeLessThan(MARKING_HARD_TRIGGER_PERCENT);
    expect(MARKING_HARD_TRIGGER_PERCENT).toBeLessThan(100);
  });

  it("leaves a trigger given on node's command line alone, in either spelling", () => {
    expect(tune(["--incremental-marking-soft-trigger=50"]).set).toEqual([
      `--incremental-marking-hard-trigger=${MARKING_HARD_TRIGGER_PERCENT}`,
    ]);
    expect(tune(["--incremental_marking_hard_trigger=99"]).set).toEqual([
      `--incremental-marking-soft-trigger=${MARKING_SOFT_TRIGGER_PERCENT}`,
    ]);
    expect(
      tune(["--incremental-marking-soft-trigger=0", "--incremental-marking-hard-trigger=0"]).set,
    ).toEqual([]);
  });

  it("does not mistake a longer flag for a trigger", () => {
    expect(tune(["--incremental-marking-soft-trigger-x=1"]).set).toHaveLength(2);
  });

  it("names flags this node accepts", () => {
    const flags = tune([]).set;
    const ok = spawnSync(process.execPath, [...flags, "-e", "0"], { encoding: "utf8", timeout: 30_000 });
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    // The check can fail: node refuses a flag it does not know.
    const bad = spawnSync(process.execPath, ["--incremental-marking-soft-triggr=80", "-e", "0"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(bad.status).not.toBe(0);
  });
});
