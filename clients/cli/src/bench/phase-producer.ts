/**
 * Phase 3: the client's `Producer` with its own batching (linger and batch size), sending as fast as
 * its buffer lets it. Records go to the producer in chunks of 1000, one per turn of the event loop
 * (CHUNK_PER_TURN); the bench waits longer only when the producer is not writable. Timed from the first send to the last acknowledgement (after flush).
 */
import type { ProducerRecord, RecordMetadata } from "../../../ts/src/index.js";
import { collectGarbage } from "./collect-garbage.js";
import { deadline, type Measured, Meter } from "./meter.js";
import type { Task } from "./progress.js";
import { createBenchTopic, highWatermark, readBack, withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { values } from "./workload.js";

const CHUNK = 1000;
/**
 * CHUNK_PER_TURN: the bench hands the producer one chunk per turn of the event loop. It used to
 * send chunk after chunk in one synchronous loop for as long as the producer stayed writable, i.e.
 * until the producer's buffer was full (32 MiB, ~160,000 records): meanwhile no I/O ran, so the
 * stream in flight got no data past its HTTP/2 window and its acknowledgement was not read, and
 * client and broker took turns (each ~50 % busy in phase 3). The ceiling (phase 7) writes until
 * grpc-js says its buffer is full and then waits for 'drain', so it never starved its I/O.
 * Alternating runs of phase 3 against one broker (1M records, 2026-11-27 04:25): 627k / 654k /
 * 679k / 959k / 1,010k rec/s in one loop against 816k / 891k / 1,046k / 1,008k / 1,105k with a
 * turn per chunk.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** The producer's settings (its defaults, spelled out so the report says what was measured). */
export const PRODUCER_SETTINGS = {
  lingerMs: 5,
  batchBytes: 256 * 1024,
  maxInFlight: 1,
  durability: "written",
  maxStreamBytes: 16 * 1024 * 1024,
} as const;

/** What a timed run of the Producer did. */
export interface ProducerRun {
  measured: Measured;
  acked: number;
  /** The first send that failed, if one did. */
  failure: unknown;
}

/**
 * Chunks made before the clock starts and sent again in turn: 64,000 records. Not one object per
 * record sent: with a million records made up front (~150 MB of the bench's heap) every old-generation
 * collection during the timed run marked them, which a real producer does not pay for records it
 * has already handed over (--trace-gc: ~90 ms of marking per collection, three per phase 3).
 * Values are never written after they are made, so sending one again is safe (the Producer copies
 * each value into its batch when the record enters it).
 */
const RING_CHUNKS = 64;
/** Records of the ring: record i carries the value made for record i - k × RING_RECORDS. */
export const RING_RECORDS = RING_CHUNKS * CHUNK;

/**
 * Sends records first..first+records-1 (N records from 0 unless given; record i to partition
 * `i % partitions`) with a `Producer` of PRODUCER_SETTINGS, in chunks of 1000, one per turn of the
 * event loop, waiting longer only when the producer is not writable; timed from the first send to the last acknowledgement (after flush),
 * capped by the phase time (or by `limit`, which runs may share). The chunks are made, and the
 * heap collected (collect-garbage.ts), before the clock starts: neither the harness's records nor
 * an earlier run's garbage is timed. Past RING_CHUNKS chunks the same chunks go again, so record i
 * carries the value (and sequence number) of an earlier record, in the same partition. `task` is
 * told the records acknowledged by this run. Shared by phases 3 and 9.
 */
export async function runProducer(
  env: BenchEnv,
  topic: string,
  task: Task,
  partitions: number,
  records = env.records,
  first = 0,
  limit = deadline(env.phaseSeconds),
): Promise<ProducerRun> {
  if (RING_RECORDS % partitions !== 0) {
    throw new Error(`${partitions} partitions do not divide the ${RING_RECORDS} records sent in turn`);
  }
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
    const chunkOf = (at: number, count: number): ProducerRecord[] =>
      values(at, count).map((value, i) => ({ value, partition: (at + i) % partitions }));
    const ring: ProducerRecord[][] = [];
    for (let k = 0; k < RING_CHUNKS && (k + 1) * CHUNK <= records; k++) {
      ring.push(chunkOf(first + k * CHUNK, CHUNK));
    }
    // A last chunk shorter than CHUNK, made now too (it starts where a ring chunk would).
    const tail = records % CHUNK;
    const last = tail === 0 ? undefined : chunkOf(first + records - tail, tail);
    collectGarbage();
    const meter = new Meter(env);
    const pending: Promise<void>[] = [];
    for (let k = 0; k * CHUNK < records; k++) {
      if (failure !== undefined || limit.passed()) break;
      const chunk = (k + 1) * CHUNK > records ? last! : ring[k % RING_CHUNKS]!;
      pending.push(producer.send(topic, chunk).then(onAcked, onFailed));
      // One chunk per turn of the event loop, as an application that gets its records from I/O
      // hands them over; see CHUNK_PER_TURN.
      if (!producer.writable) await producer.waitWritable();
      else await nextTurn();
    }
    await producer.flush();
    await Promise.all(pending);
    const m = meter.finish(acked, records);
    await producer.close();
    return m;
  });
  return { measured, acked, failure };
}

export async function runProducerPhase(env: BenchEnv): Promise<PhaseResult> {
  const name = "produce, Producer (client batching)";
  const topic = await createBenchTopic(env, "p3");
  const task = env.progress.start(`3. ${name}`, env.records);
  const { measured, acked, failure } = await runProducer(env, topic, task, 1);
  let error = failure === undefined ? undefined : (failure as Error).message;
  const stored = await highWatermark(env, topic);
  if (error === undefined && stored !== acked) error = `${acked} acknowledged but the log holds ${stored}`;
  const consumed = env.verify ? await readBack(env, topic, env.phaseSeconds, RING_RECORDS) : undefined;
  task.done(`${measured.recordsPerSec?.toLocaleString("en-US")} records/s, ${measured.mbPerSec} MB/s`);
  return {
    id: "3",
    phase: 3,
    name,
    ...measured,
    consumed,
    note: `Producer lingerMs ${PRODUCER_SETTINGS.lingerMs}, batchBytes ${PRODUCER_SETTINGS.batchBytes}, maxInFlight ${PRODUCER_SETTINGS.maxInFlight}, maxStreamBytes ${PRODUCER_SETTINGS.maxStreamBytes}, durability written; send() in chunks of ${CHUNK}, one per turn of the event loop`,
    error,
  };
}
