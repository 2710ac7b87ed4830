/**
 * Phase 5: end-to-end latency at fixed rates. For each rate, on a fresh topic, a first record is
 * sent, then a following consumer is started **in its own process** (latency-reader.ts, the client's
 * `Consumer.readBatches`, as a consuming service would run), ready once it has read that record;
 * then a `Producer` (lingerMs 0, acks per batch: one long-lived ProduceSession) sends
 * min(records, rate × seconds) records on a 1 ms pacer tick (each tick sends the records due by
 * then). Every value carries its send time on the wall clock with sub-millisecond precision
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
import type { BenchEnv, PhaseResult } from "./types.js";
import { timedPayload, wallClockMs } from "./workload.js";

export const DEFAULT_RATES = [1_000, 10_000, 100_000];
const READ_GRACE_MS = 10_000;

export async function runLatencyPhase(
  env: BenchEnv,
  rates: number[],
  rateSeconds: number,
): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const rate of rates) results.push(await runRate(env, rate, rateSeconds));
  return results;
}

const ms = (h: RecordableHistogram, p: number) => round(h.percentile(p) / 1000, 3);

/** The reader's last JSON line, if it printed one. */
function readerReport(reader: Child): LatencyReport | undefined {
  const lines = reader.tail().split("\n").reverse();
  const line = lines.find((l) => l.startsWith("{"));
  return line === undefined ? undefined : (JSON.parse(line) as LatencyReport);
}

async function runRate(env: BenchEnv, rate: number, rateSeconds: number): Promise<PhaseResult> {
  const name = `end-to-end latency at ${rate.toLocaleString("en-US")}/s`;
  const total = Math.max(1, Math.min(env.records, Math.round(rate * rateSeconds)));
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
    const reader = await startChild([script, env.address, topic, String(total)], (line) =>
      line === "ready" ? [] : null,
    );
    try {
      const meter = new Meter(env);
      const t0 = performance.now();
      const interval = 1000 / rate;
      while (sent < total && failure === undefined && !limit.passed()) {
        const now = performance.now();
        const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
        if (due > sent) {
          const stamp = wallClockMs();
          const batch: ProducerRecord[] = new Array(due - sent);
          for (let i = 0; i < batch.length; i++) {
            const seq = sent + i + 1;
            batch[i] = { value: timedPayload(seq, stamp), partition: 0 };
            lag.record(Math.max(1, Math.round((now - (t0 + (seq - 1) * interval)) * 1000)));
          }
          sent = due;
          task.update(sent);
          producer.send(topic, batch).catch(onFailed);
        }
        if (!producer.writable) await producer.waitWritable();
        else await sleep(1);
      }
      sendSeconds = (performance.now() - t0) / 1000;
      await producer.flush();
      // The reader exits by itself after `total` records; when fewer were sent, or it falls behind,
      // it is stopped (it prints what it has on SIGTERM).
      const waitMs = sent === total ? Math.max(READ_GRACE_MS, limit.at + READ_GRACE_MS - Date.now()) : 1000;
      const exited = await Promise.race([reader.exited.then(() => true), sleep(waitMs).then(() => false)]);
      if (!exited) await reader.stop(5000);
      report = readerReport(reader);
      const m = meter.finish(report?.received ?? 0, total);
      await producer.close();
      return m;
    } finally {
      await reader.stop(5000);
    }
  });
  const received = report?.received ?? 0;
  const summary = {
    rate,
    achievedRate: sendSeconds > 0 ? Math.round(sent / sendSeconds) : 0,
    p50Ms: report?.p50Ms ?? 0,
    p99Ms: report?.p99Ms ?? 0,
    p999Ms: report?.p999Ms ?? 0,
    maxMs: report?.maxMs ?? 0,
  };
  let error = failure === undefined ? undefined : (failure as Error).message;
  if (error === undefined && report === undefined) error = "the latency reader printed no report";
  if (error === undefined && received !== sent) error = `${sent} sent but ${received} read`;
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
      `sent ${sent} at ${summary.achievedRate.toLocaleString("en-US")}/s; pacer lag p99 ${ms(lag, 99)} ms, max ${round(lag.max / 1000, 3)} ms`,
    error,
  };
}
