/**
 * SIGKILL loop, WRITTEN durability (issue 5): like kill-loop.test.ts, but produces are acked once
 * in the page cache. After every SIGKILL and restart the log must be a clean prefix of what was
 * appended: no torn or garbage batch is ever served, every served batch passes its CRC, offsets
 * are dense from 0, every record is one that was sent, once, and what was served before stays.
 * Acked records are checked too: DURABILITY_WRITTEN is documented to survive a broker crash (not a
 * machine crash), and a SIGKILL leaves the page cache intact. CRASH_SEED=<n> replays a run.
 */
import { afterEach, describe, it } from "vitest";
import { killAll } from "../helpers/broker-process.js";
import { runKillLoopCase } from "./helpers/kill-loop-case.js";
import { Durability } from "./helpers/raw-log.js";

afterEach(killAll);

describe("crash > SIGKILL loop (WRITTEN)", () => {
  // 21 broker process starts take ~2 s each on a loaded 2-core machine: the bound is explicit.
  it("serves only a clean, dense prefix of what was appended across 20 SIGKILLs", {
    timeout: 120_000,
  }, async () => {
    // Every check of this variant is one both variants share (asserted in helpers/kill-loop-case.ts).
    await runKillLoopCase("written", Durability.DURABILITY_WRITTEN);
  });
});
