/**
 * The consumer of phase 5, run as its own process (as a consuming service would be), so that its
 * work and GC pauses do not share an event loop with the producer and its pacer:
 *
 *   node latency-reader.js ADDRESS TOPIC EXPECTED
 *
 * Follows partition 0 of TOPIC from offset 0 with the client's `Consumer.readBatches`. Prints
 * "ready" once it has read the warm-up record (sequence 0). For every later record it records
 * now − send time, both on the wall clock with sub-millisecond precision (`performance.timeOrigin +
 * performance.now()`; the producer stamps values the same way; both processes read the same system
 * clock). After EXPECTED timed records, or on SIGTERM, it prints one JSON line with the count and
 * the percentiles in ms, and exits 0.
 */
import { createHistogram } from "node:perf_hooks";
import { createClient } from "../../../ts/src/index.js";
import { sentAtOf, sequenceOf, wallClockMs } from "./workload.js";

/** What the reader prints last. */
export interface LatencyReport {
  received: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

async function main(): Promise<void> {
  const [address, topic, expectedArg] = process.argv.slice(2);
  const expected = Number(expectedArg);
  if (!address || !topic || !(expected > 0)) {
    process.stderr.write("usage: latency-reader ADDRESS TOPIC EXPECTED\n");
    process.exit(2);
  }
  const latency = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
  let received = 0;
  const stop = new AbortController();
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    const ms = (p: number) => Math.round(latency.percentile(p)) / 1000;
    const out: LatencyReport = {
      received,
      p50Ms: received > 0 ? ms(50) : 0,
      p99Ms: received > 0 ? ms(99) : 0,
      p999Ms: received > 0 ? ms(99.9) : 0,
      maxMs: received > 0 ? Math.round(latency.max) / 1000 : 0,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
  process.once("SIGTERM", () => {
    report();
    stop.abort();
    process.exit(0);
  });
  const client = createClient({ brokers: address });
  try {
    const batches = client.consumer().readBatches({ topic, from: 0n, follow: true, signal: stop.signal });
    for await (const batch of batches) {
      const now = wallClockMs();
      for (const r of batch.records) {
        if (sequenceOf(r.value) === 0) {
          process.stdout.write("ready\n");
          continue;
        }
        latency.record(Math.max(1, Math.round((now - sentAtOf(r.value)) * 1000)));
        received++;
      }
      if (received >= expected) break;
    }
  } finally {
    report();
    await client.close().catch(() => {});
  }
}

void main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`latency-reader: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
