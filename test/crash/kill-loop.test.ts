/**
 * SIGKILL loop, FSYNCED durability (DESIGN §4 recovery, issue 5): a real `rill broker` process
 * under concurrent FSYNCED produces over 3 partitions is SIGKILLed at 20 seeded random moments and
 * restarted on the same data dir each time. After every restart every acked record is at its
 * offset with its bytes, offsets are dense from 0, every served batch passes its CRC, and followers
 * see one gapless sequence across restarts (every check: helpers/kill-loop.ts). The seed is
 * printed; CRASH_SEED=<n> replays a run. The WRITTEN variant is kill-loop-written.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { killAll } from "../helpers/broker-process.js";
import { runKillLoopCase } from "./helpers/kill-loop-case.js";
import { Durability } from "./helpers/raw-log.js";

afterEach(killAll);

describe("crash > SIGKILL loop (FSYNCED)", () => {
  // 21 broker process starts take ~2 s each on a loaded 2-core machine: the bound is explicit.
  it("keeps every FSYNCED-acked record at its offset, dense and CRC-clean, across 20 SIGKILLs", {
    timeout: 120_000,
  }, async () => {
    const { seed, r } = await runKillLoopCase("fsynced", Durability.DURABILITY_FSYNCED);
    expect(r.finalRecords, `CRASH_SEED=${seed}: every acked record is in the log`).toBeGreaterThanOrEqual(
      r.ackedRecords,
    );
  });
});
