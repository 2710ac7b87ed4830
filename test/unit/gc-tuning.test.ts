/**
 * gc-tuning.ts: which V8 flags `rill broker` sets; that a trigger on node's command line means the
 * broker sets neither trigger, and the sweeping flag there means it leaves sweeping alone; and that
 * this node knows the flags both on its command line and at run time (where
 * `v8.setFlagsFromString` reports an unknown flag only on stderr). That `rill broker` applies
 * them is checked against the real process in test/integration/process.test.ts.
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

const TRIGGERS = [
  `--incremental-marking-soft-trigger=${MARKING_SOFT_TRIGGER_PERCENT}`,
  `--incremental-marking-hard-trigger=${MARKING_HARD_TRIGGER_PERCENT}`,
];
const SWEEPING = "--no-concurrent-array-buffer-sweeping";
const ALL = [...TRIGGERS, SWEEPING];

function node(args: string[]) {
  return spawnSync(process.execPath, args, { encoding: "utf8", timeout: 30_000 });
}

describe("tuneGarbageCollector", () => {
  it("sets both marking triggers and synchronous ArrayBuffer sweeping when node was started without them", () => {
    const { applied, set } = tune(["--enable-source-maps", "--max-old-space-size=512"]);
    expect(set).toEqual(ALL);
    expect(applied).toEqual(set);
  });

  it("sets no trigger when node was started with one, in any spelling", () => {
    for (const argv of [
      ["--incremental-marking-soft-trigger=50"],
      ["--incremental_marking_hard_trigger=99"],
      ["-incremental-marking-soft-trigger=5"],
      ["--no-incremental-marking-hard-trigger"],
      ["--incremental-marking-soft-trigger=0", "--incremental-marking-hard-trigger=0"],
    ]) {
      expect(tune(argv).set, argv.join(" ")).toEqual([SWEEPING]);
    }
  });

  it("leaves ArrayBuffer sweeping to node's command line when it names it", () => {
    for (const argv of [["--concurrent-array-buffer-sweeping"], ["--no-concurrent_array_buffer_sweeping"]]) {
      expect(tune(argv).set, argv.join(" ")).toEqual(TRIGGERS);
    }
    expect(tune(["--incremental-marking-hard-trigger=90", "--concurrent-array-buffer-sweeping"]).set).toEqual(
      [],
    );
  });

  it("does not mistake a longer flag for a trigger", () => {
    expect(tune(["--incremental-marking-soft-trigger-x=1", "--incremental-marking"]).set).toEqual(ALL);
  });

  it("names flags this node accepts on its command line and at run time", () => {
    const cli = node([...ALL, "-e", "0"]);
    expect(cli.stderr).toBe("");
    expect(cli.status).toBe(0);
    const runtime = node([
      "-e",
      `for (const f of ${JSON.stringify(ALL)}) require("node:v8").setFlagsFromString(f)`,
    ]);
    expect(runtime.stderr).toBe("");
    expect(runtime.status).toBe(0);
    // Both checks can fail: node refuses an unknown flag, setFlagsFromString complains on stderr.
    expect(node(["--incremental-marking-soft-triggr=80", "-e", "0"]).status).not.toBe(0);
    const typo = node([
      "-e",
      'require("node:v8").setFlagsFromString("--incremental-marking-soft-triggr=80")',
    ]);
    expect(typo.stderr).toMatch(/unrecognized flag/i);
  });
});
