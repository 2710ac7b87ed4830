/**
 * The consumer of phase 5, run as its own process (as a consuming service would be), so that its
 * work and GC pauses do not share an event loop with the producer and its pacer:
 *
 *   node latency-reader.js ADDRESS TOPIC EXPECTED [WARMUP]
 *
 * Follows partition 0 of TOPIC from offset 0 with the client's `Consumer.readBatches`. Prints
 * "ready" once it has read the first record (sequence 0). For every later record it records
 * now − send time, both on the wall clock with sub-millisecond precision (`performance.timeOrigin +
 * performance.now()`; the producer stamps values the same way; both processes read the same system
 * clock): sequences 1..WARMUP (default 0) in the warm-up's histogram, the next EXPECTED in the
 * measured one. After EXPECTED measured records, or on SIGTERM, it prints one JSON line with the
 * counts and the percentiles in ms, and exits 0.
 */
import type { RecordableHistogram } from "node:perf_hooks";
import { createClient } from "../../../ts/src/index.js";
import { dropIpServernameWarning } from "../context.js";
import { securityFromEnv } from "./security.js";
import { latencyHistogram, sentAtOf, sequenceOf, wallClockMs } from "./workload.js";

/** Percentiles of one histogram, in ms. */
export interface LatencyFigures {
  received: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** What the reader prints last: the measured records, and the warm-up's apart. */
export interface LatencyReport extends LatencyFigures {
  warmup: LatencyFigures;
}

function figures(h: RecordableHistogram): LatencyFigures {
  const received = h.count;
  const ms = (p: number) => (received > 0 ? Math.round(h.percentile(p)) / 1000 : 0);
  return {
    received,
    p50Ms: ms(50),
    p99Ms: ms(99),
    p999Ms: ms(99.9),
    maxMs: received > 0 ? Math.round(h.max) / 1000 : 0,
  };
}

async function main(): Promise<void> {
  const [address, topic, expectedArg, warmupArg = "0"] = process.argv.slice(2);
  const expected = Number(expectedArg);
  const warmup = Number(warmupArg);
  if (!address || !topic || !(expected > 0) || !(Number.isSafeInteger(warmup) && warmup >= 0)) {
    process.stderr.write("usage: latency-reader ADDRESS TOPIC EXPECTED [WARMUP]\n");
    process.exit(2);
  }
  const warm = latencyHistogram();
  const latency = latencyHistogram();
  const stop = new AbortController();
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    const out: LatencyReport = { ...figures(latency), warmup: figures(warm) };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
  process.once("SIGTERM", () => {
    report();
    stop.abort();
    process.exit(0);
  });
  const security = securityFromEnv();
  if (security.tls) dropIpServernameWarning(); // as the bench itself does (context.ts)
  const client = createClient({ brokers: address, ...security });
  try {
    const batches = client.consumer().readBatches({ topic, from: 0n, follow: true, signal: stop.signal });
    for await (const batch of batches) {
      const now = wallClockMs();
      for (const r of batch.records) {
        const seq = sequenceOf(r.value);
        if (seq === 0) {
          process.stdout.write("ready\n");
          continue;
        }
        (seq > warmup ? latency : warm).record(Math.max(1, Math.round((now - sentAtOf(r.value)) * 1000)));
      }
      if (latency.count >= expected) break;
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
