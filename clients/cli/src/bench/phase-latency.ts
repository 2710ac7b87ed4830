/**
 * Phase 5: end-to-end latency at fixed rates. For each rate, on a fresh topic, a first record is
 * sent; then a following consumer is started **in its own process** (latency-reader.ts, the
 * client's `Consumer.readBatches`, as a consuming service would run), ready once it has read that
 * record; then a producer, **also in its own process** (latency-writer.ts: a `Producer` with
 * lingerMs 0 and acks per batch, one long-lived ProduceSession), sends on a 1 ms pacer tick (each
 * tick sends the records due by then) rate × warm-up seconds records whose latencies are kept
 * apart, and straight after them the measured min(records, rate × seconds). Every value carries its
 * send time on the wall clock with sub-millisecond precision; the reader records now − send time
 * when the record's batch arrives and reports the percentiles. The pacer's lag (send time −
 * scheduled time) is kept too: a large lag means the producer could not keep the rate, and the
 * latencies then leave out the time records spent waiting to be sent.
 *
 * Why a warm-up (as the OpenMessaging Benchmark runs one before it measures): the processes are
 * fresh at each rate (writer and reader always, the broker at the first), and their first seconds
 * are slow while V8 compiles the hot paths. Sampled per second at 10k records/s (2026-11-27, this
 * 2-core machine): p99 15.4 / 10.4 / 5.5 / 3.0 ms in seconds 1-4, then 1.0-1.7 ms; the event loops
 * stalled up to 5-8 ms in seconds 2-3 and up to 2-3 ms after. Without it a 10 s run reported mostly
 * its start (p99 5.5-8.7 ms against 4.1 ms over 30 s). The warm-up's own percentiles are in the
 * result, so the cold start stays visible. Why the writer is its own process: see latency-writer.ts.
 */

import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type Child, startChild } from "./child.js";
import type { LatencyReport } from "./latency-reader.js";
import type { WriterReport } from "./latency-writer.js";
import { deadline, failedResult, Meter, round } from "./meter.js";
import { securityEnv } from "./security.js";
import { createBenchTopic, withBenchClient } from "./topics.js";
import type { BenchEnv, LatencySummary, PhaseResult } from "./types.js";
import { timedPayload, wallClockMs } from "./workload.js";

export const DEFAULT_RATES = [1_000, 10_000, 100_000];
export const DEFAULT_WARMUP_SECONDS = 5;
const READ_GRACE_MS = 10_000;
const HERE = fileURLToPath(new URL(".", import.meta.url));

export async function runLatencyPhase(
  env: BenchEnv,
  rates: number[],
  rateSeconds: number,
  warmupSeconds: number,
): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const rate of rates) {
    // A rate that fails (a child that does not start, say) is reported alone; the others still run.
    try {
      results.push(await runRate(env, rate, rateSeconds, warmupSeconds));
    } catch (e) {
      results.push(failedResult(5, `5-${rate}`, rateName(rate), e));
      env.progress.log(`phase 5 at ${rate}/s failed: ${(e as Error).message}`);
    }
  }
  return results;
}

const rateName = (rate: number) => `end-to-end latency at ${rate.toLocaleString("en-US")}/s`;

/** A child's last JSON line, if it printed one that parses. */
function lastJson<T>(child: Child): T | undefined {
  const line = child
    .tail()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  try {
    return line === undefined ? undefined : (JSON.parse(line) as T);
  } catch {
    return undefined;
  }
}

async function runRate(
  env: BenchEnv,
  rate: number,
  rateSeconds: number,
  warmupSeconds: number,
): Promise<PhaseResult> {
  const name = rateName(rate);
  const measuredCount = Math.max(1, Math.min(env.records, Math.round(rate * rateSeconds)));
  const warm = Math.round(rate * warmupSeconds);
  const total = warm + measuredCount;
  const topic = await createBenchTopic(env, `p5-${rate}`);
  const task = env.progress.start(`5. ${name}`, total);
  // --phase-seconds caps the measured part; the warm-up comes on top.
  const limit = deadline(env.phaseSeconds + warmupSeconds);
  let report: LatencyReport | undefined;
  let written: WriterReport | undefined;
  await withBenchClient(env, (client) =>
    client.producer().send(topic, { value: timedPayload(0, wallClockMs()), partition: 0 }),
  );
  const childEnv = securityEnv(env.security);
  const reader = await startChild(
    [join(HERE, "latency-reader.js"), env.address, topic, String(measuredCount), String(warm)],
    (line) => (line === "ready" ? [] : null),
    { env: childEnv },
  );
  let writer: Child | undefined;
  let meter: Meter | undefined;
  let lastSent = 0;
  try {
    // The meter (time, the profile's window) starts with the writer's first measured record.
    writer = await startChild(
      [
        join(HERE, "latency-writer.js"),
        ...[env.address, topic, String(rate), String(warm), String(measuredCount)],
        String(Math.max(1, limit.at - Date.now())),
      ],
      (line) => (line === "ready" ? [] : null),
      {
        env: childEnv,
        onLine: (line) => {
          if (line === "measuring") meter ??= new Meter(env);
          else if (line.startsWith("sent ")) {
            lastSent = Number(line.slice(5));
            task.update(lastSent);
          }
        },
      },
    );
    // The writer stops by itself at the phase's time cap; the grace covers its flush.
    const writerDone = await Promise.race([
      writer.exited.then(() => true),
      sleep(Math.max(0, limit.at - Date.now()) + READ_GRACE_MS).then(() => false),
    ]);
    if (!writerDone) await writer.stop(5000);
    written = lastJson<WriterReport>(writer);
    meter ??= new Meter(env);
    // The reader exits by itself after the measured records; when fewer were sent, or it falls
    // behind, it is stopped (it prints what it has on SIGTERM).
    const all = written?.sent === total && written.error === undefined;
    const waitMs = all ? Math.max(READ_GRACE_MS, limit.at + READ_GRACE_MS - Date.now()) : 1000;
    const exited = await Promise.race([reader.exited.then(() => true), sleep(waitMs).then(() => false)]);
    if (!exited) await reader.stop(5000);
    report = lastJson<LatencyReport>(reader);
  } finally {
    await writer?.stop(5000);
    await reader.stop(5000);
  }
  const sent = written?.sent ?? lastSent;
  const received = report?.received ?? 0;
  const warmReceived = report?.warmup.received ?? 0;
  const sentMeasured = Math.max(0, sent - warm);
  const measured = meter!.finish(received, measuredCount);
  const warmup = {
    seconds: warmupSeconds,
    records: warmReceived,
    p50Ms: report?.warmup.p50Ms ?? 0,
    p99Ms: report?.warmup.p99Ms ?? 0,
    maxMs: report?.warmup.maxMs ?? 0,
  };
  const sendSeconds = written?.sendSeconds ?? 0;
  const summary: LatencySummary = {
    rate,
    achievedRate: sendSeconds > 0 ? Math.round(sentMeasured / sendSeconds) : 0,
    p50Ms: report?.p50Ms ?? 0,
    p99Ms: report?.p99Ms ?? 0,
    p999Ms: report?.p999Ms ?? 0,
    maxMs: report?.maxMs ?? 0,
    warmup,
  };
  let error =
    written === undefined ? `the latency writer printed no report (it had sent ${lastSent})` : written.error;
  if (error === undefined && sent <= warm)
    error = `the time cap passed during the warm-up (${sent} of ${warm} sent)`;
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
    // The client is the writer process: its CPU from the first measured record on.
    clientCpuSeconds: written === undefined ? measured.clientCpuSeconds : round(written.cpuSeconds, 2),
    consumed: received,
    latency: summary,
    note:
      `Producer lingerMs 0, acks per-batch (ProduceSession), on a 1 ms pacer, in its own process (latency-writer.js); following Consumer.readBatches in its own process (latency-reader.js); ` +
      `sent ${sentMeasured} at ${summary.achievedRate.toLocaleString("en-US")}/s after ${Math.min(sent, warm)} in a ${warmupSeconds} s warm-up ` +
      `(its p50 ${warmup.p50Ms} / p99 ${warmup.p99Ms} ms, max ${warmup.maxMs} ms); pacer lag p99 ${round(written?.lagP99Ms ?? 0, 3)} ms, max ${round(written?.lagMaxMs ?? 0, 3)} ms`,
    error,
  };
}
