/**
 * Phase 9: producer throughput over many partitions against one. The same records go, with the
 * phase-3 `Producer` settings, to a topic of 1 partition and to a topic of 1,000 partitions, record
 * i to partition i mod P (so every partition gets its share and the producer keeps P batches open
 * at a time), 5 × N records per topic (at the default N, 1,000 per partition and a few seconds per
 * topic: 200k records took 0.3–0.6 s, too short to measure). The target: 1,000 partitions keep
 * ≥ 80 % of the 1-partition records/s.
 *
 * Side by side, in ABBA order: half of each topic's records to 1 partition, then half to 1,000,
 * the other half to 1,000, the other half to 1 (each run timed from a collected heap, see
 * runProducer), after an untimed warm-up run on a scratch topic, so that the first timed run does
 * not also pay for warming the process up. A machine whose speed drifts during the phase (these
 * are shared, noisy machines) then weighs on both sides alike; one 1-then-1,000 pair gave 1.00,
 * 0.65, 0.70 and 0.96 in four runs of one build. Each row sums its two runs (records, seconds,
 * CPU; the note gives each run's rate) and both share one phase-time cap. Afterwards each topic's
 * high watermarks must add up to what was acknowledged.
 */
import { deadline, round, sumMeasured } from "./meter.js";
import { PRODUCER_SETTINGS, type ProducerRun, runProducer } from "./phase-producer.js";
import type { Task } from "./progress.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";

export const MANY_PARTITIONS = 1000;
/** Records per topic, as a multiple of N. */
export const VOLUME = 5;

/** Records of the untimed warm-up run, as a fraction of N. */
const WARM_UP = 0.2;

export async function runPartitionsPhase(env: BenchEnv, many = MANY_PARTITIONS): Promise<PhaseResult[]> {
  await warmUp(env);
  const one = await openSide(env, 1);
  const lots = await openSide(env, many);
  for (const side of [one, lots, lots, one]) await runHalf(env, side);
  const oneResult = await finishSide(env, one);
  const lotsResult = await finishSide(env, lots);
  if (
    oneResult.recordsPerSec !== undefined &&
    lotsResult.recordsPerSec !== undefined &&
    oneResult.recordsPerSec > 0
  ) {
    lotsResult.partitionRatio = round(lotsResult.recordsPerSec / oneResult.recordsPerSec, 3);
  }
  return [oneResult, lotsResult];
}

/** Runs the Producer, untimed, on a scratch topic of one partition (deleted with the others). */
async function warmUp(env: BenchEnv): Promise<void> {
  const topic = `${env.topicPrefix}-p9-warm-up`;
  await withBenchClient(env, (c) => c.admin().createTopic(topic, { partitions: 1 }));
  env.createdTopics.push(topic);
  const quiet: Task = { update: () => {}, done: () => {} };
  const run = await runProducer(env, topic, quiet, 1, Math.max(1, Math.round(WARM_UP * env.records)));
  env.windows.pop(); // not a measured window
  if (run.failure !== undefined) throw run.failure;
}

/** One partition count's topic, its progress and its runs so far. */
interface Side {
  partitions: number;
  name: string;
  topic: string;
  /** Records per topic (two runs of half each). */
  records: number;
  task: Task;
  /** The phase-time cap of both its runs. */
  limit: ReturnType<typeof deadline>;
  runs: ProducerRun[];
  acked: number;
}

async function openSide(env: BenchEnv, partitions: number): Promise<Side> {
  const name = `produce, Producer, ${partitions.toLocaleString("en-US")} partition${partitions === 1 ? "" : "s"}`;
  const topic = `${env.topicPrefix}-p9-${partitions}`;
  await withBenchClient(env, (c) => c.admin().createTopic(topic, { partitions }));
  env.createdTopics.push(topic);
  const records = VOLUME * env.records;
  return {
    partitions,
    name,
    topic,
    records,
    task: env.progress.start(`9. ${name}`, records),
    limit: deadline(env.phaseSeconds),
    runs: [],
    acked: 0,
  };
}

/** The side's next half of its records (the first half, then the rest). */
async function runHalf(env: BenchEnv, side: Side): Promise<void> {
  const half = Math.ceil(side.records / 2);
  const first = side.runs.length === 0 ? 0 : half;
  const count = side.runs.length === 0 ? half : side.records - half;
  const before = side.acked;
  const task: Task = { update: (n) => side.task.update(before + n), done: () => {} };
  const run = await runProducer(env, side.topic, task, side.partitions, count, first, side.limit);
  side.runs.push(run);
  side.acked += run.acked;
}

async function finishSide(env: BenchEnv, side: Side): Promise<PhaseResult> {
  const measured = sumMeasured(side.runs.map((r) => r.measured));
  const failure = side.runs.find((r) => r.failure !== undefined)?.failure;
  let error = failure === undefined ? undefined : (failure as Error).message;
  const stored = await withBenchClient(env, async (c) => {
    const offsets = await c.admin().listOffsets(side.topic);
    return offsets.reduce((sum, o) => sum + Number(o.latest), 0);
  });
  if (error === undefined && stored !== side.acked)
    error = `${side.acked} acknowledged but the log holds ${stored}`;
  side.task.done(`${measured.recordsPerSec?.toLocaleString("en-US")} records/s`);
  return {
    id: `9-${side.partitions}`,
    phase: 9,
    name: side.name,
    ...measured,
    consumed: stored,
    note: `Producer lingerMs ${PRODUCER_SETTINGS.lingerMs}, batchBytes ${PRODUCER_SETTINGS.batchBytes}, maxInFlight ${PRODUCER_SETTINGS.maxInFlight}, maxStreamBytes ${PRODUCER_SETTINGS.maxStreamBytes}; ${VOLUME} × N records in two runs of half each (${side.runs.map((r) => `${r.measured.recordsPerSec?.toLocaleString("en-US")} rec/s`).join(" then ")}), interleaved with the other topic's as 1, many, many, 1 partition(s) after an untimed warm-up; record i to partition i mod ${side.partitions}; high watermarks summed after`,
    error,
  };
}
