import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { Access } from "../../../server/src/rpc/auth/access.js";
import { QuotaWaitEndedError } from "../../../server/src/rpc/auth/errors.js";
import { MAX_DELAY_MS, Quotas } from "../../../server/src/rpc/auth/quota.js";
import { statusOf } from "../../../server/src/rpc/status.js";

const KiB = 1024;

describe("unit > auth > quota buckets", () => {
  it("lets a second's worth through, then asks for waits that pay the debt back at the rate", () => {
    // Ensures the token-bucket arithmetic: burst = 1 s of rate, delay = debt / rate.
    let now = 0;
    const q = new Quotas({ produceBytesPerSecond: 100 * KiB, fetchBytesPerSecond: -1 }, new Map(), () => now);
    expect(q.charge("produce", "alice", 100 * KiB)).toBe(0); // the burst
    expect(q.charge("produce", "alice", 50 * KiB)).toBeCloseTo(500); // 50 KiB of debt at 100 KiB/s
    now += 500; // paid
    expect(q.charge("produce", "alice", 10 * KiB)).toBeCloseTo(100);
    expect(q.throttledMs.produce).toBeCloseTo(600);
    expect(q.charge("fetch", "alice", 10 * 1024 * KiB)).toBe(0); // fetch is unlimited
  });

  it("pays a large debt in sleeps of at most MAX_DELAY_MS, so the long-run rate holds", async () => {
    // Ensures a message far larger than a second's worth still costs its full time (not 1 s), in
    // bounded, abortable slices.
    let now = 0;
    const slices: number[] = [];
    const sleep = async (ms: number) => {
      slices.push(ms);
      now += ms;
    };
    const q = new Quotas(
      { produceBytesPerSecond: KiB, fetchBytesPerSecond: -1 },
      new Map(),
      () => now,
      sleep,
    );
    const delay = q.charge("produce", "p", KiB + 10 * KiB); // 10 s of debt
    expect(delay).toBe(MAX_DELAY_MS);
    await q.pay("produce", "p", delay);
    expect(slices).toHaveLength(10);
    expect(Math.max(...slices)).toBe(MAX_DELAY_MS);
    expect(now).toBeCloseTo(10_000);
    expect(q.charge("produce", "p", 0)).toBe(0);
    expect(q.throttledMs.produce).toBeCloseTo(10_000);
    // An aborted call stops paying at once.
    const aborted = new AbortController();
    aborted.abort();
    slices.length = 0;
    await q.pay("produce", "p", q.charge("produce", "p", 5 * KiB), aborted.signal);
    expect(slices).toEqual([]);
  });

  it("makes a call pay its principal's existing debt before moving bytes, and move nothing if it ends", async () => {
    // Ensures debt run up by one call is waited out by the next (payDebt, before an append or a
    // read), and that a call cancelled during that wait is told to do nothing (CANCELLED).
    let now = 0;
    const call = new AbortController();
    const slices: number[] = [];
    const sleep = async (ms: number) => {
      slices.push(ms);
      now += ms;
      if (slices.length === 3) call.abort(); // the client cancels during the wait
    };
    const q = new Quotas(
      { produceBytesPerSecond: KiB, fetchBytesPerSecond: -1 },
      new Map(),
      () => now,
      sleep,
    );
    const first = new Access("carol", undefined, q);
    expect(first.payDebt("produce")).toBeUndefined(); // no debt yet: nothing to await
    q.charge("produce", "carol", KiB + 10 * KiB); // another call's batch: 10 s of debt
    const second = new Access("carol", undefined, q, call.signal);
    const paying = second.payDebt("produce");
    expect(paying).toBeDefined();
    await expect(paying).rejects.toThrow(QuotaWaitEndedError);
    expect(slices).toEqual([MAX_DELAY_MS, MAX_DELAY_MS, MAX_DELAY_MS]);
    expect(statusOf(new QuotaWaitEndedError("x")).code).toBe(status.CANCELLED);
    // Another principal is not held by carol's debt.
    expect(new Access("dave", undefined, q).payDebt("produce")).toBeUndefined();
  });

  it("stops throttling once released (drain): a wait ends after its current sleep", async () => {
    // Ensures a graceful shutdown is not held by a principal's debt (server.ts releases on drain).
    let now = 0;
    const slices: number[] = [];
    let q: Quotas | undefined;
    const sleep = async (ms: number) => {
      slices.push(ms);
      now += ms;
      if (slices.length === 2) q!.release(); // the broker starts draining during the wait
    };
    q = new Quotas({ produceBytesPerSecond: KiB, fetchBytesPerSecond: -1 }, new Map(), () => now, sleep);
    await q.pay("produce", "p", q.charge("produce", "p", KiB + 60 * KiB)); // a minute of debt
    expect(slices).toEqual([MAX_DELAY_MS, MAX_DELAY_MS]);
    expect(q.charge("produce", "p", 100 * KiB)).toBe(0); // nothing is throttled any more
  });

  it("keeps principals apart and applies overrides over defaults", () => {
    // Ensures one principal's debt never slows another, and -1 in the ACL file lifts a default.
    const now = 0;
    const q = new Quotas(
      { produceBytesPerSecond: KiB, fetchBytesPerSecond: KiB },
      new Map([
        ["bob", { produceBytesPerSecond: -1 }],
        ["carol", { fetchBytesPerSecond: 4 * KiB }],
      ]),
      () => now,
    );
    expect(q.charge("produce", "alice", 2 * KiB)).toBeGreaterThan(0);
    expect(q.charge("produce", "bob", 100 * KiB)).toBe(0);
    expect(q.charge("produce", "carol", KiB)).toBe(0); // carol's own bucket, full
    expect(q.rateOf("fetch", "carol")).toBe(4 * KiB);
    expect(q.rateOf("fetch", "bob")).toBe(KiB);
    expect(q.active).toBe(true);
    expect(new Quotas({ produceBytesPerSecond: -1, fetchBytesPerSecond: -1 }).active).toBe(false);
  });

  it("drops buckets once they have refilled, so memory follows active principals only", () => {
    // Ensures the bucket map is bounded by recently active principals, and that dropping never
    // forgives debt (only full buckets go).
    let now = 0;
    const q = new Quotas({ produceBytesPerSecond: KiB, fetchBytesPerSecond: -1 }, new Map(), () => now);
    for (let i = 0; i < 1000; i++) q.charge("produce", `p${i}`, 10);
    q.charge("produce", "debtor", 1000 * KiB); // 999 s of debt
    expect(q.size).toBe(1001);
    now += 60_000;
    q.charge("produce", "newcomer", 1);
    expect(q.size).toBe(2); // debtor (still owes) and newcomer
    expect(q.charge("produce", "debtor", 0)).toBe(MAX_DELAY_MS);
  });
});
