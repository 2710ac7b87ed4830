/**
 * SIGKILL loop, FSYNCED durability (DESIGN §4 recovery, issue 5): a real `rill broker` process
 * under concurrent FSYNCED produces over 3 partitions is SIGKILLed at 20 seeded random moments and
 * restarted on the same data dir each time. After every restart every acked record is at its
 * offset with its bytes, offsets are dense from 0, every served batch passes its CRC, and followers
 * see one gapless sequence across restarts (every check: helpers/kill-loop.ts). The seed is
 * printed; CRASH_SEED=<n> replays a run. The WRITTEN variant is kill-loop-written.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { killAll } from "./helpers/broker-process.js";
import { runKillLoop } from "./helpers/kill-loop.js";
import { printKillLoop } from "./helpers/kill-loop-report.js";
import { Durability } from "./helpers/raw-log.js";
import { crashSeed } from "./helpers/seed.js";

const KILLS = 20;

afterEach(killAll);

describe("crash > SIGKILL loop (FSYNCED)", () => {
  // 21 broker process starts take ~2 s each on a loaded 2-core machine: the bound is explicit.
  it("keeps every FSYNCED-acked record at its offset, dense and CRC-clean, across 20 SIGKILLs", {
    timeout: 120_000,
  }, async () => {
    const seed = crashSeed("kill-loop fsynced");
    const started = performance.now();
    const r = await runKillLoop({
      label: "fsynced",
      seed,
      durability: Durability.DURABILITY_FSYNCED,
      kills: KILLS,
      partitions: 3,
      producers: 4,
      minLoadMs: 30,
      maxLoadMs: 300,
      segmentBytes: 16 * 1024,
    });
    printKillLoop("kill-loop fsynced", seed, r, performance.now() - started);
    expect(r.violations, `CRASH_SEED=${seed}`).toEqual([]);
    expect(r.kills, `CRASH_SEED=${seed}: kills`).toBe(KILLS);
    expect(r.ackedRecords, `CRASH_SEED=${seed}: acked records`).toBeGreaterThan(KILLS);
    expect(r.finalRecords, `CRASH_SEED=${seed}: every acked record is in the log`).toBeGreaterThanOrEqual(
      r.ackedRecords,
    );
    expect(r.segmentFiles, `CRASH_SEED=${seed}: segments rolled during the run`).toBeGreaterThan(3);
  });
});
