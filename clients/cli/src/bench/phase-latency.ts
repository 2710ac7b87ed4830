/**
 * Phase 5: end-to-end latency at fixed rates. For each rate, on a fresh topic, a following consumer
 * (`readBatches`, follow) is opened and a first record is sent and read back, so the Fetch stream is
 * up; then a `Producer` (lingerMs 0) sends min(records, rate × seconds) records on a 1 ms pacer tick
 * (each tick sends the records due by then). Every value carries its send time (`performance.now()`
 * when the tick hands it to the producer); the consumer, in this process, records now − send time
 * in a histogram (µs) when the record's batch arrives. The pacer's lag (send time − scheduled time)
 * is kept too: a large lag means the producer could not keep the rate, and the latencies then leave
 * out the time records spent waiting to be sent.
 */
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { ProducerRecord } from "../../../ts/src/index.js";
import { deadline, Meter, round } from "./meter.js";
import { createBenchTopic, withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { sentAtOf, sequenceOf, timedPayload } from "./workload.js";

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

async function runRate(env: BenchEnv, rate: number, rateSeconds: number): Promise<PhaseResult> {
  const name = `end-to-end latency at ${rate.toLocaleString("en-US")}/s`;
  const total = Math.max(1, Math.min(env.records, Math.round(rate * rateSeconds)));
  const topic = await createBenchTopic(env, `p5-${rate}`);
  const task = env.progress.start(`5. ${name}`, total);
  const limit = deadline(env.phaseSeconds);
  const latency = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
  const lag = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
  let received = 0;
  let sent = 0;
  let failure: unknown;
  let sendSeconds = 0;
  const measured = await withBenchClient(env, async (client) => {
    const stop = new AbortController();
    // The consumer may go on reading what was sent for READ_GRACE_MS past the cap.
    const stopTimer = setTimeout(() => stop.abort(), Math.max(0, limit.at + READ_GRACE_MS - Date.now()));
    let expected = total;
    let warmedUp: () => void = () => {};
    const warm = new Promise<void>((resolve) => {
      warmedUp = resolve;
    });
    let finished: () => void = () => {};
    const allRead = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const consumer = (async () => {
      const batches = client.consumer().readBatches({ topic, from: 0n, follow: true, signal: stop.signal });
      for await (const batch of batches) {
        const now = performance.now();
        for (const r of batch.records) {
          const seq = sequenceOf(r.value);
          if (seq === 0) {
            warmedUp();
            continue;
          }
          latency.record(Math.max(1, Math.round((now - sentAtOf(r.value)) * 1000)));
          received++;
        }
        task.update(received);
        if (received >= expected) finished();
      }
    })().catch((e: unknown) => {
      failure ??= e;
    });
    const producer = client.producer({ lingerMs: 0, durability: "written", acks: "per-batch" });
    const onFailed = (e: unknown) => {
      failure ??= e;
    };
    await producer.send(topic, { value: timedPayload(0, performance.now()), partition: 0 });
    await Promise.race([warm, once(stop.signal)]);
    const meter = new Meter(env);
    const t0 = performance.now();
    const interval = 1000 / rate;
    while (sent < total && failure === undefined && !limit.passed()) {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
      if (due > sent) {
        const batch: ProducerRecord[] = new Array(due - sent);
        for (let i = 0; i < batch.length; i++) {
          const seq = sent + i + 1;
          batch[i] = { value: timedPayload(seq, now), partition: 0 };
          lag.record(Math.max(1, Math.round((now - (t0 + (seq - 1) * interval)) * 1000)));
        }
        sent = due;
        producer.send(topic, batch).catch(onFailed);
      }
      if (!producer.writable) await producer.waitWritable();
      else await sleep(1);
    }
    sendSeconds = (performance.now() - t0) / 1000;
    expected = sent;
    if (received >= expected) finished();
    await producer.flush();
    if (failure === undefined) await Promise.race([allRead, once(stop.signal)]);
    clearTimeout(stopTimer);
    stop.abort();
    await consumer;
    await producer.close();
    return meter.finish(received, total);
  });
  const achievedRate = sendSeconds > 0 ? Math.round(sent / sendSeconds) : 0;
  const summary = {
    rate,
    achievedRate,
    p50Ms: ms(latency, 50),
    p99Ms: ms(latency, 99),
    p999Ms: ms(latency, 99.9),
    maxMs: round(latency.max / 1000, 3),
  };
  let error = failure === undefined ? undefined : (failure as Error).message;
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
      `Producer lingerMs 0 on a 1 ms pacer, following Consumer.readBatches in the same process; ` +
      `sent ${sent} at ${achievedRate.toLocaleString("en-US")}/s; pacer lag p99 ${ms(lag, 99)} ms, max ${round(lag.max / 1000, 3)} ms`,
    error,
  };
}

function once(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
