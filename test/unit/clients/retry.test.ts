import { describe, expect, it, vi } from "vitest";
import { BrokerUnavailableError, InvalidArgumentError } from "../../../clients/ts/src/errors.js";
import {
  backoffDelay,
  defaultRetryOptions,
  type RetryOptions,
  resolveRetryOptions,
  retry,
  sleep,
} from "../../../clients/ts/src/retry.js";

const FAST: RetryOptions = {
  initialDelayMs: 1,
  maxDelayMs: 8,
  multiplier: 2,
  jitter: 0,
  maxAttempts: 5,
  maxElapsedMs: 10_000,
};

describe("client > retry > backoff", () => {
  it("grows exponentially and is capped", () => {
    // Ensures delays double from the initial delay and never exceed maxDelayMs.
    const o = { ...FAST, initialDelayMs: 100, maxDelayMs: 1000 };
    const delays = [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, o, () => 0.5));
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("applies jitter within its bounds and keeps the cap", () => {
    // Ensures jitter scales a delay by [1 - j, 1 + j] and the result still respects maxDelayMs.
    const o = { ...FAST, initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect(backoffDelay(1, o, () => 0)).toBe(80);
    expect(backoffDelay(1, o, () => 0.999999)).toBe(120);
    expect(backoffDelay(10, o, () => 0.999999)).toBe(1000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, o);
      expect(d).toBeGreaterThanOrEqual(320);
      expect(d).toBeLessThanOrEqual(480);
    }
  });

  it("uses fast defaults under the test runner and validates options", () => {
    // Ensures test-mode defaults are quick and out-of-range options are refused.
    expect(defaultRetryOptions().maxDelayMs).toBeLessThanOrEqual(1000);
    expect(() => resolveRetryOptions({ maxAttempts: 0 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ jitter: 2 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ initialDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
    expect(resolveRetryOptions({ maxAttempts: undefined }).maxAttempts).toBeGreaterThan(0);
  });
});

describe("client > retry > retry", () => {
  it("retries retriable errors until success", async () => {
    // Ensures a retriable failure is retried and the eventual result is returned.
    let calls = 0;
    const result = await retry(async (attempt) => {
      calls++;
      if (attempt < 3) throw new BrokerUnavailableError("down");
      return "ok";
    }, FAST);
    expect(result).toBe("ok");
    expect(calls).toBe(3);
  });

  it("does not retry non-retriable errors", async () => {
    // Ensures an error with retriable=false is rethrown after the first attempt.
    const fn = vi.fn(async () => {
      throw new InvalidArgumentError("bad");
    });
    await expect(retry(fn, FAST)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("is bounded by maxAttempts and rethrows the last error", async () => {
    // Ensures retries stop after maxAttempts and the caller sees the last error unchanged.
    let calls = 0;
    const err = retry(
      async () => {
        calls++;
        throw new BrokerUnavailableError(`down ${calls}`);
      },
      { ...FAST, maxAttempts: 4 },
    );
    await expect(err).rejects.toThrow("down 4");
    expect(calls).toBe(4);
  });

  it("is bounded by maxElapsedMs", async () => {
    // Ensures no retry starts once the total time would pass maxElapsedMs.
    let t = 0;
    let calls = 0;
    const err = retry(
      async () => {
        calls++;
        t += 40; // each attempt "takes" 40 ms of the fake clock
        throw new BrokerUnavailableError("down");
      },
      { ...FAST, maxAttempts: 100, maxElapsedMs: 100 },
      { now: () => t },
    );
    await expect(err).rejects.toBeInstanceOf(BrokerUnavailableError);
    expect(calls).toBe(3);
  });

  it("waits longer before each retry", async () => {
    // Ensures the delays handed to onRetry grow between attempts.
    const delays: number[] = [];
    await expect(
      retry(
        async () => {
          throw new BrokerUnavailableError("down");
        },
        { ...FAST, maxAttempts: 5, maxDelayMs: 100 },
        { onRetry: (_e, _attempt, delay) => delays.push(delay) },
      ),
    ).rejects.toThrow();
    expect(delays).toEqual([1, 2, 4, 8]);
  });

  it("stops waiting and rejects as soon as the signal aborts", async () => {
    // Ensures an abort during a backoff wait ends the retry at once with the abort reason.
    const controller = new AbortController();
    const started = Date.now();
    const p = retry(
      async () => {
        throw new BrokerUnavailableError("down");
      },
      { ...FAST, initialDelayMs: 10_000, maxDelayMs: 10_000, maxAttempts: 10, maxElapsedMs: 60_000 },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error("stop")), 20);
    await expect(p).rejects.toThrow("stop");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("does not start when the signal is already aborted", async () => {
    // Ensures an aborted signal prevents even the first attempt.
    const fn = vi.fn(async () => 1);
    await expect(retry(fn, FAST, { signal: AbortSignal.abort(new Error("gone")) })).rejects.toThrow("gone");
    expect(fn).not.toHaveBeenCalled();
  });

  it("sleep resolves after the delay and rejects on abort", async () => {
    // Ensures the abortable sleep behind the backoff both waits and cancels.
    await expect(sleep(1)).resolves.toBeUndefined();
    const c = new AbortController();
    const p = sleep(10_000, c.signal);
    c.abort(new Error("cancelled"));
    await expect(p).rejects.toThrow("cancelled");
  });
});
