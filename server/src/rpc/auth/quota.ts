/**
 * Per-principal byte-rate quotas for Produce and Fetch: throttle, never fail.
 *
 * One token bucket per (kind, principal): it refills at `rate` bytes per second up to a burst of
 * one second's worth and may go negative (debt) — a batch is never refused or split for being
 * larger than the bucket. After a call moves `n` bytes it takes them from its bucket and, if the
 * bucket is in debt, the caller waits until the debt is paid before its next step (Produce: before
 * reading the next message of the stream; Fetch: before the next read and write). Every call also
 * waits out an existing debt BEFORE it moves bytes (access.ts `payDebt`: before an append, before a
 * read), so opening a new call per batch, or many in parallel, does not skip it. Invariants:
 * - the wait is made of sleeps of at most MAX_DELAY_MS each, re-checking the bucket after each and
 *   ending as soon as the call does (abort signal); so the long-run rate holds even for messages
 *   larger than a second's worth, and a step waits at most (its bytes - burst) / rate in total;
 * - buckets are shared by all calls of one principal (many streams do not multiply the rate);
 * - memory is bounded: a bucket that has refilled completely carries no state a fresh bucket would
 *   not, so buckets idle long enough to be full are dropped by a sweep every SWEEP_MS (no debt is
 *   ever forgiven);
 * - rate -1 (unlimited) creates no bucket and costs one map lookup per batch;
 * - once `release()` is called (the broker drains, server.ts) nothing is throttled any more and
 *   every wait ends after its current sleep (at most MAX_DELAY_MS), so a throttled principal cannot
 *   hold a graceful shutdown until its deadline.
 * The principal is ANONYMOUS on a broker without authentication (one shared bucket for everyone).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { QuotaOverride } from "./acl.js";

export type QuotaKind = "produce" | "fetch";

/** Longest single sleep; a larger debt is paid in several. */
export const MAX_DELAY_MS = 1000;
const SWEEP_MS = 30_000;

interface Bucket {
  rate: number;
  tokens: number;
  last: number;
}

export interface QuotaDefaults {
  produceBytesPerSecond: number;
  fetchBytesPerSecond: number;
}

export class Quotas {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep: number;
  private released = false;
  /** Total milliseconds calls were asked to wait, per kind (metrics and tests). */
  readonly throttledMs: Record<QuotaKind, number> = { produce: 0, fetch: 0 };

  constructor(
    private readonly defaults: QuotaDefaults,
    private readonly overrides: ReadonlyMap<string, QuotaOverride> = new Map(),
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = waitFor,
  ) {
    this.lastSweep = now();
  }

  /** Whether any principal can be throttled at all (else callers skip quotas entirely). */
  get active(): boolean {
    if (this.defaults.produceBytesPerSecond !== -1 || this.defaults.fetchBytesPerSecond !== -1) return true;
    for (const q of this.overrides.values()) {
      if ((q.produceBytesPerSecond ?? -1) !== -1 || (q.fetchBytesPerSecond ?? -1) !== -1) return true;
    }
    return false;
  }

  /** Bytes per second `principal` may move for `kind`; -1 = unlimited. */
  rateOf(kind: QuotaKind, principal: string): number {
    const o = this.overrides.get(principal);
    const override = kind === "produce" ? o?.produceBytesPerSecond : o?.fetchBytesPerSecond;
    if (override !== undefined) return override;
    return kind === "produce" ? this.defaults.produceBytesPerSecond : this.defaults.fetchBytesPerSecond;
  }

  /** Charges `bytes`; returns how long to sleep next (ms, at most MAX_DELAY_MS), 0 when in credit. */
  charge(kind: QuotaKind, principal: string, bytes: number): number {
    const rate = this.rateOf(kind, principal);
    if (rate === -1 || this.released) return 0;
    const t = this.now();
    if (t - this.lastSweep >= SWEEP_MS) this.sweep(t);
    const key = `${kind}\0${principal}`;
    let b = this.buckets.get(key);
    if (!b || b.rate !== rate) {
      b = { rate, tokens: rate, last: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((t - b.last) * rate) / 1000);
    b.last = t;
    b.tokens -= bytes;
    if (b.tokens >= 0) return 0;
    const delay = Math.min(MAX_DELAY_MS, (-b.tokens * 1000) / rate);
    this.throttledMs[kind] += delay;
    return delay;
  }

  /**
   * Waits until the debt that made `charge` return `delay` is paid: sleeps of at most MAX_DELAY_MS,
   * re-charging nothing between them, until the bucket is out of debt or `signal` aborts.
   */
  async pay(kind: QuotaKind, principal: string, delay: number, signal?: AbortSignal): Promise<void> {
    let next = delay;
    while (next > 0 && !signal?.aborted && !this.released) {
      await this.sleep(next, signal);
      next = this.charge(kind, principal, 0);
    }
  }

  /** Stops all throttling for good (the broker drains): waits end after their current sleep. */
  release(): void {
    this.released = true;
  }

  /** Buckets currently held (tests: memory stays bounded). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    this.lastSweep = t;
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((t - b.last) * b.rate) / 1000 >= b.rate) this.buckets.delete(key);
    }
  }
}

/** Waits `ms` (resolves early, without error, when `signal` aborts). */
export async function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch {
    // aborted: the call is ending
  }
}
