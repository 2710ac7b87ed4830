/**
 * The producer of phase 5, run as its own process (as a producing service would be), so that the
 * heap the bench built up in earlier phases does not pause it:
 *
 *   node latency-writer.js ADDRESS TOPIC RATE WARMUP MEASURED MAX_MS
 *
 * Why its own process: run after phases 1-4, the bench's event loop ran a full mark-compact every
 * ~0.65 s during phase 5 (`--trace-gc`: 21 → 12 MB each time, incremental marking steps of up to
 * 8 ms on the main thread: V8's default marking trigger on a small heap after a large one), and
 * the p99 at 10k/s was 5.3-7.6 ms in three such runs against 1.2-1.5 ms with phase 5 alone.
 *
 * A `Producer` (lingerMs 0, acks per batch: one long-lived ProduceSession) sends records 1..WARMUP
 * and then WARMUP+1..WARMUP+MEASURED on a 1 ms pacer tick (each tick sends the records due by
 * then), each value carrying its send time (`wallClockMs()` when the tick hands it to the
 * producer). Prints "ready" once connected, "measuring" when it hands over the first measured
 * record, "sent N" about every 100 ms, and at the end (or on SIGTERM, or when MAX_MS have passed)
 * one JSON line, {@link WriterReport}. Exits 0 when every record it sent was acknowledged. Every
 * wait is bounded: for buffer room until MAX_MS, for the last acknowledgements FLUSH_GRACE_MS (less
 * than the bench's grace after MAX_MS), and SIGTERM ends either at once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type ProducerRecord } from "../../../ts/src/index.js";
import { dropIpServernameWarning } from "../context.js";
import { securityFromEnv } from "./security.js";
import { latencyHistogram, timedPayload, wallClockMs } from "./workload.js";

/** What the writer prints last. */
export interface WriterReport {
  /** Records handed to the producer (warm-up and measured). */
  sent: number;
  /** Seconds from the first measured record to the last record handed over. */
  sendSeconds: number;
  /** How late the pacer handed measured records over (send time − scheduled time), ms. */
  lagP99Ms: number;
  lagMaxMs: number;
  /** CPU seconds of this process from the first measured record to the end. */
  cpuSeconds: number;
  /** The first failure of a send or of the flush, if any. */
  error?: string | undefined;
}

const PROGRESS_EVERY_MS = 100;
const FLUSH_GRACE_MS = 5_000;

/** `p`, or a rejection once `ms` have passed or `signal` is aborted (SIGTERM). */
async function within<T>(p: Promise<T>, ms: number, what: string, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not end within ${Math.round(ms)} ms`)), ms);
        onAbort = () => reject(new Error(`stopped (SIGTERM) while ${what}`));
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

async function main(): Promise<number> {
  const [address, topic, ...numbers] = process.argv.slice(2);
  const [rate, warm, measured, maxMs] = numbers.map(Number) as [number, number, number, number];
  if (!address || !topic || !(rate > 0) || !(warm >= 0) || !(measured > 0) || !(maxMs > 0)) {
    process.stderr.write("usage: latency-writer ADDRESS TOPIC RATE WARMUP MEASURED MAX_MS\n");
    return 2;
  }
  const total = warm + measured;
  const until = performance.now() + maxMs;
  const lag = latencyHistogram();
  let sent = 0;
  let failure: unknown;
  let measuredFrom = 0;
  let cpuFrom: NodeJS.CpuUsage | undefined;
  let sendSeconds = 0;
  const stop = new AbortController();
  process.once("SIGTERM", () => stop.abort());
  // Bounded like the bench's own clients (topics.ts), with requests shorter than its grace.
  const security = securityFromEnv();
  if (security.tls) dropIpServernameWarning(); // as the bench itself does (context.ts)
  const client = createClient({
    brokers: address,
    ...security,
    retry: { maxAttempts: 3, maxElapsedMs: FLUSH_GRACE_MS },
    requestTimeoutMs: FLUSH_GRACE_MS,
  });
  try {
    const producer = client.producer({ lingerMs: 0, durability: "written", acks: "per-batch" });
    await client.admin().describeTopic(topic); // connected, and the topic is there
    process.stdout.write("ready\n");
    const onFailed = (e: unknown) => {
      failure ??= e;
    };
    const t0 = performance.now();
    let shown = t0;
    const interval = 1000 / rate;
    while (sent < total && failure === undefined && !stop.signal.aborted && performance.now() < until) {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
      if (due > sent) {
        if (cpuFrom === undefined && due > warm) {
          measuredFrom = now;
          cpuFrom = process.cpuUsage();
          process.stdout.write("measuring\n");
        }
        const stamp = wallClockMs();
        const batch: ProducerRecord[] = new Array(due - sent);
        for (let i = 0; i < batch.length; i++) {
          const seq = sent + i + 1;
          batch[i] = { value: timedPayload(seq, stamp), partition: 0 };
          if (seq > warm) lag.record(Math.max(1, Math.round((now - (t0 + (seq - 1) * interval)) * 1000)));
        }
        sent = due;
        producer.send(topic, batch).catch(onFailed);
      }
      if (now - shown >= PROGRESS_EVERY_MS) {
        shown = now;
        process.stdout.write(`sent ${sent}\n`);
      }
      if (!producer.writable) {
        const left = until - performance.now();
        if (left <= 0) break;
        await within(producer.waitWritable(), left, "waiting for room in the producer's buffer", stop.signal);
      } else await sleep(1);
    }
    if (measuredFrom > 0) sendSeconds = (performance.now() - measuredFrom) / 1000;
    await within(producer.flush(), FLUSH_GRACE_MS, "waiting for the last acknowledgements", stop.signal);
    await within(producer.close(), FLUSH_GRACE_MS, "closing the producer", stop.signal);
  } catch (e) {
    failure ??= e;
  } finally {
    const cpu = cpuFrom === undefined ? undefined : process.cpuUsage(cpuFrom);
    const report: WriterReport = {
      sent,
      sendSeconds,
      lagP99Ms: lag.count > 0 ? lag.percentile(99) / 1000 : 0,
      lagMaxMs: lag.count > 0 ? lag.max / 1000 : 0,
      cpuSeconds: cpu === undefined ? 0 : (cpu.user + cpu.system) / 1e6,
      error: failure === undefined ? undefined : String((failure as Error).message ?? failure),
    };
    process.stdout.write(`sent ${sent}\n${JSON.stringify(report)}\n`);
    await within(client.close(), FLUSH_GRACE_MS, "closing the client", stop.signal).catch(() => {});
  }
  return failure === undefined ? 0 : 1;
}

void main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`latency-writer: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
