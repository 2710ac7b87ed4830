/**
 * Phase 9: producer throughput over many partitions against one. The same records go, with the
 * phase-3 `Producer` settings, once to a topic of 1 partition and once to a topic of 1,000
 * partitions, record i to partition i mod P (so every partition gets its share and the producer
 * keeps P batches open at a time), 5 × N records per topic (at the default N, 1,000 per partition
 * and a few seconds per run: 200k records took 0.3–0.6 s, too short to measure). The target:
 * 1,000 partitions keep ≥ 80 % of the 1-partition records/s. Both runs happen back to back in this phase, so the ratio is measured side by side.
 * Afterwards each topic's high watermarks must add up to what was acknowledged.
 */
import { round } from "./meter.js";
import { PRODUCER_SETTINGS, runProducer } from "./phase-producer.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";

export const MANY_PARTITIONS = 1000;
/** Records per topic, as a multiple of N. */
export const VOLUME = 5;

export async function runPartitionsPhase(env: BenchEnv, many = MANY_PARTITIONS): Promise<PhaseResult[]> {
  const one = await runWith(env, 1);
  const lots = await runWith(env, many);
  if (one.recordsPerSec !== undefined && lots.recordsPerSec !== undefined && one.recordsPerSec > 0) {
    lots.partitionRatio = round(lots.recordsPerSec / one.recordsPerSec, 3);
  }
  return [one, lots];
}

async function runWith(env: BenchEnv, partitions: number): Promise<PhaseResult> {
  const name = `produce, Producer, ${partitions.toLocaleString("en-US")} partition${partitions === 1 ? "" : "s"}`;
  const topic = `${env.topicPrefix}-p9-${partitions}`;
  await withBenchClient(env, (c) => c.admin().createTopic(topic, { partitions }));
  env.createdTopics.push(topic);
  const records = VOLUME * env.records;
  const task = env.progress.start(`9. ${name}`, records);
  const { measured, acked, failure } = await runProducer(env, topic, task, (i) => i % partitions, records);
  let error = failure === undefined ? undefined : (failure as Error).message;
  const stored = await withBenchClient(env, async (c) => {
    const offsets = await c.admin().listOffsets(topic);
    return offsets.reduce((sum, o) => sum + Number(o.latest), 0);
  });
  if (error === undefined && stored !== acked) error = `${acked} acknowledged but the log holds ${stored}`;
  task.done(`${measured.recordsPerSec?.toLocaleString("en-US")} records/s`);
  return {
    id: `9-${partitions}`,
    phase: 9,
    name,
    ...measured,
    consumed: stored,
    note: `Producer lingerMs ${PRODUCER_SETTINGS.lingerMs}, batchBytes ${PRODUCER_SETTINGS.batchBytes}, maxInFlight ${PRODUCER_SETTINGS.maxInFlight}, maxStreamBytes ${PRODUCER_SETTINGS.maxStreamBytes}; ${VOLUME} × N records, record i to partition i mod ${partitions}; high watermarks summed after`,
    error,
  };
}
