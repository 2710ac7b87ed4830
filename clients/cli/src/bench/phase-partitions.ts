/**
 * Phase 9: producer throughput over many partitions against one. The same records go, with the
 * phase-3 `Producer` settings, once to a topic of 1 partition and once to a topic of 1,000
 * partitions, record i to partition i mod P (so every partition gets its share and the producer
 * keeps P batches open at a time). The target: 1,000 partitions keep ≥ 80 % of the 1-partition
 * records/s. Both runs happen back to back in this phase, so the ratio is measured side by side.
 * Afterwards each topic's high watermarks must add up to what was acknowledged.
 */
import type { ProducerRecord, RecordMetadata } from "../../../ts/src/index.js";
import { deadline, Meter, round } from "./meter.js";
import { PRODUCER_SETTINGS } from "./phase-producer.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { values } from "./workload.js";

const CHUNK = 1000;
export const MANY_PARTITIONS = 1000;

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
  const task = env.progress.start(`9. ${name}`, env.records);
  const limit = deadline(env.phaseSeconds);
  let acked = 0;
  let failure: unknown;
  const measured = await withBenchClient(env, async (client) => {
    const producer = client.producer({ ...PRODUCER_SETTINGS });
    const onAcked = (m: RecordMetadata[]) => {
      acked += m.length;
      task.update(acked);
    };
    const onFailed = (e: unknown) => {
      failure ??= e;
    };
    const chunks: ProducerRecord[][] = [];
    for (let first = 0; first < env.records; first += CHUNK) {
      const vs = values(first, Math.min(CHUNK, env.records - first));
      chunks.push(vs.map((value, i) => ({ value, partition: (first + i) % partitions })));
    }
    const meter = new Meter(env);
    const pending: Promise<void>[] = [];
    for (const chunk of chunks) {
      if (failure !== undefined || limit.passed()) break;
      pending.push(producer.send(topic, chunk).then(onAcked, onFailed));
      if (!producer.writable) await producer.waitWritable();
    }
    await producer.flush();
    await Promise.all(pending);
    const m = meter.finish(acked, env.records);
    await producer.close();
    return m;
  });
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
    note: `Producer lingerMs ${PRODUCER_SETTINGS.lingerMs}, batchBytes ${PRODUCER_SETTINGS.batchBytes}, maxInFlight ${PRODUCER_SETTINGS.maxInFlight}; record i to partition i mod ${partitions}; high watermarks summed after`,
    error,
  };
}
