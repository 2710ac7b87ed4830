/**
 * Phase 8: a stalled consumer next to a full-speed producer. A following consumer reads one batch
 * and then stops asking for more with its stream still open (its bounded queue fills, grpc-js stops
 * reading, the HTTP/2 window closes, the broker's Fetch stream waits for `drain`). Meanwhile the
 * client's `Producer` writes as fast as it can (5 × N records, capped by the phase time). The
 * broker's resident memory (VmRSS of /proc/PID/status, sampled every 100 ms) must stay bounded: the
 * target is ≤ 256 MB. Then the consumer reads on and must get every record, in order: the stall lost
 * nothing. Needs the bench's own broker (its PID); against --broker the phase reports that it cannot
 * measure.
 */
import { readFileSync } from "node:fs";
import type { ProducerRecord } from "../../../ts/src/index.js";
import { deadline, Meter, round } from "./meter.js";
import { PRODUCER_SETTINGS } from "./phase-producer.js";
import { createBenchTopic, withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { sequenceOf, values } from "./workload.js";

const CHUNK = 1000;
const SAMPLE_MS = 100;
/** Records produced: this many times -n. */
const VOLUME = 5;

/** Resident memory of process `pid` in bytes (Linux), or undefined. */
export function residentBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function runStalledPhase(env: BenchEnv): Promise<PhaseResult> {
  const name = "stalled consumer beside a full-speed Producer";
  const pid = env.brokerPid;
  if (pid === undefined || residentBytes(pid) === undefined) {
    throw new Error("needs the bench's own broker process on Linux (run without --broker)");
  }
  const topic = await createBenchTopic(env, "p8");
  const target = env.records * VOLUME;
  const task = env.progress.start(`8. ${name}`, target);
  const limit = deadline(env.phaseSeconds);
  let failure: unknown;
  let acked = 0;
  let peak = 0;
  let baseline = 0;
  let read = 0;
  let outOfOrder = 0;
  const measured = await withBenchClient(env, async (client) => {
    const stop = new AbortController();
    const batches = client
      .consumer({ maxQueuedBatches: 16 })
      .readBatches({ topic, from: 0n, follow: true, signal: stop.signal })
      [Symbol.asyncIterator]();
    const producer = client.producer({ ...PRODUCER_SETTINGS });
    // One record first, read by the consumer: its stream is open and following before the load.
    await producer.send(topic, { value: values(0, 1)[0]!, partition: 0 });
    const first = await batches.next();
    if (first.done) throw new Error("the consumer ended before its first batch");
    read = first.value.records.length;
    baseline = residentBytes(pid) ?? 0;
    peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, residentBytes(pid) ?? 0);
    }, SAMPLE_MS);
    const onFailed = (e: unknown) => {
      failure ??= e;
    };
    const meter = new Meter(env);
    const pending: Promise<void>[] = [];
    try {
      for (let next = 1; next < target + 1 && failure === undefined && !limit.passed(); next += CHUNK) {
        const count = Math.min(CHUNK, target + 1 - next);
        const chunk: ProducerRecord[] = values(next, count).map((value) => ({ value, partition: 0 }));
        pending.push(
          producer.send(topic, chunk).then(() => {
            acked += count;
            task.update(acked);
          }, onFailed),
        );
        if (!producer.writable) await producer.waitWritable();
      }
      await producer.flush();
      await Promise.all(pending);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, residentBytes(pid) ?? 0);
    const m = meter.finish(acked, target);
    await producer.close();
    // The consumer reads on: every record, in order, within the phase's time (plus a grace).
    const readLimit = setTimeout(() => stop.abort(), Math.max(10_000, limit.at - Date.now() + 30_000));
    try {
      while (read < acked + 1) {
        const r = await batches.next();
        if (r.done) break;
        for (const rec of r.value.records) {
          if (sequenceOf(rec.value) !== Number(rec.offset)) outOfOrder++;
          read++;
        }
      }
    } finally {
      clearTimeout(readLimit);
      stop.abort();
      await batches.return?.();
    }
    return m;
  });
  let error = failure === undefined ? undefined : (failure as Error).message;
  if (error === undefined && read !== acked + 1) {
    error = `the stalled consumer read ${read} of ${acked + 1} records after it resumed`;
  }
  if (error === undefined && outOfOrder > 0) error = `${outOfOrder} records out of order`;
  const mb = (b: number) => round(b / 1e6, 1);
  const memory = {
    baselineMb: mb(baseline),
    peakMb: mb(peak),
    producedMb: mb(acked * 200),
    readAfterStall: read,
  };
  task.done(
    `broker RSS ${memory.baselineMb} → peak ${memory.peakMb} MB while ${memory.producedMb} MB were produced`,
  );
  return {
    id: "8",
    phase: 8,
    name,
    ...measured,
    consumed: read,
    memory,
    note:
      `Producer (phase 3 settings) writes ${VOLUME} × N records while a following Consumer (maxQueuedBatches 16, ` +
      `the client's 4 MiB HTTP/2 window) holds its stream open without reading; broker VmRSS sampled every ${SAMPLE_MS} ms; ` +
      `then the consumer reads everything (checked: count and order)`,
    error,
  };
}
