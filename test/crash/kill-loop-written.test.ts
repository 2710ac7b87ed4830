/**
 * SIGKILL loop, WRITTEN durability (issue 5): like kill-loop.test.ts, but produces are acked once
 * in the page cache. After every SIGKILL and restart the log must be a clean prefix of what was
 * appended: no torn or garbage batch is ever served, every served batch passes its CRC, offsets
 * are dense from 0, every record is one that was sent, once, and what was served before stays.
 * Acked records are checked too: DURABILITY_WRITTEN is documented to survive a broker crash (not a
 * machine crash), and a SIGKILL leaves the page cache intact. CRASH_SEED=<n> replays a run.
 */
import { afterEach, describe, expect, it } from "vitest";
import { killAll } from "./helpers/broker-process.js";
import { runKillLoop } from "./helpers/kill-loop.js";
import { printKillLoop } from "./helpers/kill-loop-report.js";
import { Durability } from "./helpers/raw-log.js";
import { crashSeed } from "./helpers/seed.js";

const KILLS = 20;

afterEach(killAll);

describe("crash > SIGKILL loop (WRITTEN)", () => {
  // 21 broker process starts take ~2 s each on a loaded 2-core machine: the bound is explicit.
  it("serves only a clean, dense prefix of what was appended across 20 SIGKILLs", {
    timeout: 120_000,
  }, async () => {
    const seed = crashSeed("kill-loop written");
    const started = performance.now();
    const r = await runKillLoop({
      label: "written",
      seed,
      durability: Durability.DURABILITY_WRITTEN,
      kills: KILLS,
      partitions: 3,
      producers: 4,
      minLoadMs: 30,
      maxLoadMs: 300,
      segmentBytes: 16 * 1024,
    });
    printKillLoop("kill-loop written", seed, r, performance.now() - started);
    expect(r.violations, `CRASH_SEED=${seed}`).toEqual([]);
    expect(r.kills, `CRASH_SEED=${seed}: kills`).toBe(KILLS);
    expect(r.ackedRecords, `CRASH_SEED=${seed}: acked records`).toBeGreaterThan(KILLS);
    expect(r.segmentFiles, `CRASH_SEED=${seed}: segments rolled during the run`).toBeGreaterThan(3);
  });
});
