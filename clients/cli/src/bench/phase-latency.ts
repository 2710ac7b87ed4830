/**
 * Phase 5: end-to-end latency at fixed rates. For each rate, on a fresh topic, a first record is
 * sent, then a following consumer is started **in its own process** (latency-reader.ts, the client's
 * `Consumer.readBatches`, as a consuming service would run), ready once it has read that record;
 * then a `Producer` (lingerMs 0, acks per batch: one long-lived ProduceSession) sends, on a 1 ms
 * pacer tick (each tick sends the records due by then), rate × warm-up seconds records whose
 * latencies are kept apart, and straight after them the measured min(records, rate × seconds).
 *
 * Why a warm-up (as the OpenMessaging Benchmark runs one before it measures): the three processes
 * are fresh at each rate (the reader always, the broker and the bench at the first), and their
 * first seconds are slow while V8 compiles the hot paths. Sampled per second at 10k records/s
 * (2026-11-27, this 2-core machine): p99 15.4 / 10.4 / 5.5 / 3.0 ms in seconds 1-4, then 1.0-1.7 ms;
 * the three event loops stalled up to 5-8 ms in seconds 2-3 and up to 2-3 ms after. Without it a
 * 10 s run reports mostly its start (p99 5.5-8.7 ms against 4.1 ms over 30 s). The warm-up's own
 * percentiles are in the result, so the cold start stays visible. Every value carries its send time on the wall clock with sub-millisecond precision
 * (`wallClockMs()` when the tick hands it to the producer); the reader records now − send time when
 * the record's batch arrives and reports the percentiles. The pacer's lag (send time − scheduled
 * time) is kept too: a large lag means the producer could not keep the rate, and the latencies then
 * leave out the time records spent waiting to be sent.
 */

import { join } from "node:path";
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { ProducerRecord } from "../../../ts/src/index.js";
import { type Child, startChild } from "./child.js";
import type { LatencyReport } from "./latency-reader.js";
import { deadline, Meter, round } from "./meter.js";
import { createBenchTopic, withBenchClient } from "./topics.js";
import type { BenchEnv, LatencySummary, PhaseResult } from "./types.js";
import { timedPayload, wallClockMs } from "./workload.js";

export const DEFAULT_RATES = [1_000, 10_000, 100_000];
const READ_GRACE_MS = 10_000;

export const DEFAULT_WARMUP_SECONDS = 5;

export async function runLatencyPhase(
  env: BenchEnv,
  rates: number[],
  rateSeconds: number,
  warmupSeconds: number,
): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const rate of rates) results.push(await runRate(env, rate, rateSeconds, warmupSeconds));
  return results;
}

const ms = (h: RecordableHistogram, p: number) => round(h.percentile(p) / 1000, 3);

/** The reader's last JSON line, if it printed one. */
function readerReport(reader: Child): LatencyReport | undefined {
  const lines = reader.tail().split("\n").reverse();
  const line = lines.find((l) => l.startsWith("{"));
  return line === undefined ? undefined : (JSON.parse(line) as LatencyReport);
}

async function runRate(
  env: BenchEnv,
  rate: number,
  rateSeconds: number,
  warmupSeconds: number,
): Promise<PhaseResult> {
  const name = `end-to-end latency at ${rate.toLocaleString("en-US")}/s`;
  const measuredCount = Math.max(1, Math.min(env.records, Math.round(rate * rateSeconds)));
  const warm = Math.round(rate * warmupSeconds);
  const total = warm + measuredCount;
  const topic = await createBenchTopic(env, `p5-${rate}`);
  const task = env.progress.start(`5. ${name}`, total);
  const limit = deadline(env.phaseSeconds);
  const lag = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
  let sent = 0;
  let failure: unknown;
  let sendSeconds = 0;
  let report: LatencyReport | undefined;
  const measured = await withBenchClient(env, async (client) => {
    const producer = client.producer({ lingerMs: 0, durability: "written", acks: "per-batch" });
    const onFailed = (e: unknown) => {
      failure ??= e;
    };
    await producer.send(topic, { value: timedPayload(0, wallClockMs()), partition: 0 });
    const script = join(fileURLToPath(new URL(".", import.meta.url)), "latency-reader.js");
    const reader = await startChild(
      [script, env.address, topic, String(measuredCount), String(warm)],
      (line) => (line === "ready" ? [] : null),
    );
    try {
      // The meter (time, CPU, the profile's window) starts with the first measured record.
      let meter: Meter | undefined;
      let measuredFrom = 0;
      const t0 = performance.now();
      const interval = 1000 / rate;
      while (sent < total && failure === undefined && !limit.passed()) {
        const now = performance.now();
        const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
        if (due > sent) {
          if (meter === undefined && due > warm) {
            meter = new Meter(env);
            measuredFrom = now;
          }
          const stamp = wallClockMs();
          const batch: ProducerRecord[] = new Array(due - sent);
          for (let i = 0; i < batch.length; i++) {
            const seq = sent + i + 1;
            batch[i] = { value: timedPayload(seq, stamp), partition: 0 };
            if (seq > warm) lag.record(Math.max(1, Math.round((now - (t0 + (seq - 1) * interval)) * 1000)));
          }
          sent = due;
          task.update(sent);
          producer.send(topic, batch).catch(onFailed);
        }
        if (!producer.writable) await producer.waitWritable();
        else await sleep(1);
      }
      meter ??= new Meter(env);
      sendSeconds = measuredFrom > 0 ? (performance.now() - measuredFrom) / 1000 : 0;
      await producer.flush();
      // The reader exits by itself after the measured records; when fewer were sent, or it falls
      // behind, it is stopped (it prints what it has on SIGTERM).
      const waitMs = sent === total ? Math.max(READ_GRACE_MS, limit.at + READ_GRACE_MS - Date.now()) : 1000;
      const exited = await Promise.race([reader.exited.then(() => true), sleep(waitMs).then(() => false)]);
      if (!exited) await reader.stop(5000);
      report = readerReport(reader);
      const m = meter.finish(report?.received ?? 0, measuredCount);
      await producer.close();
      return m;
    } finally {
      await reader.stop(5000);
    }
  });
  const received = report?.received ?? 0;
  const warmReceived = report?.warmup.received ?? 0;
  const sentMeasured = Math.max(0, sent - warm);
  const warmup = {
    seconds: warmupSeconds,
    records: warmReceived,
    p50Ms: report?.warmup.p50Ms ?? 0,
    p99Ms: report?.warmup.p99Ms ?? 0,
    maxMs: report?.warmup.maxMs ?? 0,
  };
  const summary: LatencySummary = {
    rate,
    achievedRate: sendSeconds > 0 ? Math.round(sentMeasured / sendSeconds) : 0,
    p50Ms: report?.p50Ms ?? 0,
    p99Ms: report?.p99Ms ?? 0,
    p999Ms: report?.p999Ms ?? 0,
    maxMs: report?.maxMs ?? 0,
    warmup,
  };
  let error = failure === undefined ? undefined : (failure as Error).message;
  if (error === undefined && report === undefined) error = "the latency reader printed no report";
  if (error === undefined && warmReceived !== Math.min(sent, warm)) {
    error = `${Math.min(sent, warm)} warm-up records sent but ${warmReceived} read`;
  }
  if (error === undefined && received !== sentMeasured) error = `${sentMeasured} sent but ${received} read`;
  task.done(`p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms, p99.9 ${summary.p999Ms} ms`);
  return {
    id: `5-${rate}`,
    phase: 5,
    name,
    ...measured,
    consumed: received,
    latency: summary,
    note:
      `Producer lingerMs 0, acks per-batch (ProduceSession), on a 1 ms pacer; following Consumer.readBatches in its own process (latency-reader.js); ` +
      `sent ${sentMeasured} at ${summary.achievedRate.toLocaleString("en-US")}/s after ${Math.min(sent, warm)} in a ${warmupSeconds} s warm-up ` +
      `(its p50 ${warmup.p50Ms} / p99 ${warmup.p99Ms} ms, max ${warmup.maxMs}); pacer lag p99 ${ms(lag, 99)} ms, max ${round(lag.max / 1000, 3)} ms`,
    error,
  };
}
