/**
 * `rill bench`'s options: phase 5's rates and warm-up as the command line gives them.
 */
import { describe, expect, it } from "vitest";
import { benchOptions } from "../../../../clients/cli/src/commands/bench.js";

const flags = (over: Partial<Parameters<typeof benchOptions>[0]> = {}) => ({
  records: "1000",
  phases: "5",
  durability: "both",
  rates: "1000,10000",
  rateSeconds: "10",
  rateWarmup: "5",
  phaseSeconds: "60",
  out: "bench/results",
  ...over,
});

describe("bench > options of the latency phase", () => {
  it("reads the rates, their seconds and the warm-up", () => {
    const o = benchOptions(flags({ rateWarmup: "0" }), undefined, "rill bench");
    expect([o.rates, o.rateSeconds, o.rateWarmupSeconds]).toEqual([[1000, 10000], 10, 0]);
    expect(benchOptions(flags(), undefined, "rill bench").rateWarmupSeconds).toBe(5);
  });

  it("refuses a rate listed twice, which would run on one topic name", () => {
    expect(() => benchOptions(flags({ rates: "10000,1000,10000" }), undefined, "rill bench")).toThrow(
      "--rates lists 10000 twice; each rate runs once",
    );
  });

  it("refuses a warm-up that is not a whole number of seconds", () => {
    expect(() => benchOptions(flags({ rateWarmup: "-1" }), undefined, "rill bench")).toThrow(
      '--rate-warmup must be an integer >= 0, got "-1"',
    );
  });
});
