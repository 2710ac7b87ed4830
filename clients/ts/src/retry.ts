/**
 * The one retry helper of the client: capped exponential backoff with jitter, a bounded number of
 * attempts and a bounded total time, abortable through an AbortSignal (STYLE habit 7; KafkaJS
 * `src/retry`). Only errors whose `retriable` flag is true are retried; anything else is rethrown at
 * once. Delay before retry n (n = 1 for the first retry) is
 * `min(maxDelayMs, initialDelayMs * multiplier^(n-1))`, scaled by a random factor in
 * `[1 - jitter, 1 + jitter]` and capped at `maxDelayMs` again.
 *
 * Under a test runner (NODE_ENV=test or VITEST set) the defaults are faster, so suites that exercise
 * failure paths do not wait seconds.
 */
import { ClientClosedError, fromGrpcError } from "./errors.js";

/** How to retry. Every field has a default; see {@link defaultRetryOptions}. */
export interface RetryOptions {
  /** Delay before the first retry (ms). */
  initialDelayMs: number;
  /** Upper bound of any single delay (ms). */
  maxDelayMs: number;
  /** Growth factor of the delay between retries. */
  multiplier: number;
  /** Relative jitter: 0.2 means each delay is scaled by a random factor in [0.8, 1.2]. */
  jitter: number;
  /** Total attempts, the first one included; `Infinity` retries forever. */
  maxAttempts: number;
  /** Give up once this long has passed since the first attempt (ms); `Infinity` for no limit. */
  maxElapsedMs: number;
}

/** Extra knobs of {@link retry}. */
export interface RetryControl {
  /** Aborting stops waiting at once and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Decides whether an error is retried (default: its normalized `retriable` flag). */
  isRetriable?: ((error: unknown) => boolean) | undefined;
  /** Called before each wait, e.g. to log. */
  onRetry?: ((error: unknown, attempt: number, delayMs: number) => void) | undefined;
  /** Source of randomness in [0, 1) (default Math.random); tests pin it. */
  random?: (() => number) | undefined;
  /** Clock in ms (default Date.now); tests replace it. */
  now?: (() => number) | undefined;
}

const PRODUCTION_DEFAULTS: RetryOptions = {
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  multiplier: 2,
  jitter: 0.2,
  maxAttempts: 8,
  maxElapsedMs: 30_000,
};

const TEST_DEFAULTS: RetryOptions = {
  initialDelayMs: 10,
  maxDelayMs: 200,
  multiplier: 2,
  jitter: 0.2,
  maxAttempts: 8,
  maxElapsedMs: 5_000,
};

/** The defaults: production values, or faster ones under a test runner. */
export function defaultRetryOptions(): RetryOptions {
  const testing = process.env.NODE_ENV === "test" || process.env.VITEST !== undefined;
  return { ...(testing ? TEST_DEFAULTS : PRODUCTION_DEFAULTS) };
}

/** Fills in defaults and checks bounds. */
export function resolveRetryOptions(partial: Partial<RetryOptions> = {}): RetryOptions {
  const o: RetryOptions = { ...defaultRetryOptions(), ...stripUndefined(partial) };
  if (!(o.initialDelayMs >= 0)) throw new RangeError("retry.initialDelayMs must be >= 0");
  if (!(o.maxDelayMs >= o.initialDelayMs)) throw new RangeError("retry.maxDelayMs must be >= initialDelayMs");
  if (!(o.multiplier >= 1)) throw new RangeError("retry.multiplier must be >= 1");
  if (!(o.jitter >= 0 && o.jitter <= 1)) throw new RangeError("retry.jitter must be in [0, 1]");
  if (!(o.maxAttempts >= 1)) throw new RangeError("retry.maxAttempts must be >= 1");
  if (!(o.maxElapsedMs >= 0)) throw new RangeError("retry.maxElapsedMs must be >= 0");
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The delay before retry number `retryNumber` (1-based), jitter applied with `random()`. */
export function backoffDelay(
  retryNumber: number,
  options: RetryOptions,
  random: () => number = Math.random,
): number {
  const exp = options.initialDelayMs * options.multiplier ** Math.max(0, retryNumber - 1);
  const base = Math.min(options.maxDelayMs, exp);
  const factor = 1 - options.jitter + 2 * options.jitter * random();
  return Math.max(0, Math.min(options.maxDelayMs, Math.round(base * factor)));
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new ClientClosedError("aborted");
}

/**
 * Runs `fn` until it resolves, a non-retriable error is thrown, the attempts or the time are used up,
 * or `signal` aborts. `fn` gets the 1-based attempt number. On giving up, the last error is rethrown
 * as it was thrown (so `instanceof` checks keep working).
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: Partial<RetryOptions> = {},
  control: RetryControl = {},
): Promise<T> {
  const o = resolveRetryOptions(options);
  const now = control.now ?? Date.now;
  const random = control.random ?? Math.random;
  const isRetriable = control.isRetriable ?? ((e: unknown) => fromGrpcError(e).retriable);
  const started = now();
  for (let attempt = 1; ; attempt++) {
    if (control.signal?.aborted) throw abortReason(control.signal);
    try {
      return await fn(attempt);
    } catch (error) {
      if (control.signal?.aborted) throw abortReason(control.signal);
      if (!isRetriable(error) || attempt >= o.maxAttempts) throw error;
      const delay = backoffDelay(attempt, o, random);
      if (now() - started + delay > o.maxElapsedMs) throw error;
      control.onRetry?.(error, attempt, delay);
      await sleep(delay, control.signal);
    }
  }
}
