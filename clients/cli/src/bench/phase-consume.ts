/**
 * Phase 4: one consumer reads the batch-50 data set from offset 0 to its end (`consumer.readBatches`,
 * follow false), checking that each record carries its offset. Timed from the read call (which
 * includes ListOffsets and opening the Fetch stream) to the last record.
 */
import { dataset } from "./dataset.js";
import { deadline, Meter } from "./meter.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { sequenceOf } from "./workload.js";

export async function runConsumePhase(env: BenchEnv): Promise<PhaseResult> {
  const name = "consume from offset 0";
  const { topic, records: total } = await dataset(env);
  const task = env.progress.start(`4. ${name}`, total);
  const limit = deadline(env.phaseSeconds);
  let read = 0;
  let error: string | undefined;
  const measured = await withBenchClient(env, async (client) => {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), Math.max(0, limit.at - Date.now()));
    const meter = new Meter(env);
    try {
      const batches = client.consumer().readBatches({ topic, from: 0n, follow: false, signal: stop.signal });
      for await (const batch of batches) {
        for (const r of batch.records) {
          if (r.value.length !== 200 || sequenceOf(r.value) !== read) {
            throw new Error(
              `record ${read} came back as offset ${r.offset}, sequence ${sequenceOf(r.value)}`,
            );
          }
          read++;
        }
        task.update(read);
      }
    } catch (e) {
      error = (e as Error).message;
    } finally {
      clearTimeout(timer);
    }
    return meter.finish(read, total);
  });
  task.done(`${measured.recordsPerSec?.toLocaleString("en-US")} records/s, ${measured.mbPerSec} MB/s`);
  return {
    id: "4",
    phase: 4,
    name,
    ...measured,
    consumed: read,
    note: "Consumer.readBatches, follow false, broker's default fetch max bytes (1 MiB); data written in batches of 50",
    error,
  };
}
