/**
 * Bench helpers behind phase 9's ABBA runs: adding up the measurements of several timed runs, and
 * collecting the bench's heap before a run's clock starts.
 */
import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { collectGarbage } from "../../../../clients/cli/src/bench/collect-garbage.js";
import { type Measured, sumMeasured } from "../../../../clients/cli/src/bench/meter.js";

const run = (over: Partial<Measured>): Measured => ({
  records: 100,
  target: 100,
  seconds: 1,
  recordsPerSec: 100,
  mbPerSec: 0.02,
  capped: false,
  brokerCpuSeconds: 0.5,
  clientCpuSeconds: 0.25,
  ...over,
});

describe("bench > measurements of several runs", () => {
  it("adds counts, seconds and CPU, and recomputes the rate from the totals", () => {
    const sum = sumMeasured([
      run({ records: 300_000, target: 300_000, seconds: 1 }),
      run({ records: 100_000, target: 100_000, seconds: 1.5, brokerCpuSeconds: 0.75, clientCpuSeconds: 1 }),
    ]);
    expect(sum).toEqual({
      records: 400_000,
      target: 400_000,
      seconds: 2.5,
      recordsPerSec: 160_000, // not the mean of 300,000 and 66,667
      mbPerSec: 32,
      capped: false,
      brokerCpuSeconds: 1.25,
      clientCpuSeconds: 1.25,
    });
  });

  it("is capped if any run was, and knows no broker CPU if a run did not", () => {
    const sum = sumMeasured([run({}), run({ capped: true, records: 50, brokerCpuSeconds: undefined })]);
    expect(sum.capped).toBe(true);
    expect(sum.records).toBe(150);
    expect(sum.target).toBe(200);
    expect(sum.brokerCpuSeconds).toBeUndefined();
    expect(sumMeasured([run({ seconds: 0, records: 0 })]).recordsPerSec).toBeUndefined();
  });
});

describe("bench > collectGarbage", () => {
  it("runs a full collection: an unreachable object is gone afterwards", async () => {
    let target: object | undefined = { big: new Array(1000).fill(1) };
    const ref = new WeakRef(target);
    target = undefined;
    await tick(); // WeakRef targets are kept alive until the current job ends
    collectGarbage();
    expect(ref.deref()).toBeUndefined();
    collectGarbage(); // the second call reuses the gc function
  });
});
