/**
 * Topics of a bench run: each timed phase gets a fresh one-partition topic, and `--verify` reads a
 * topic back (untimed) to count what it holds.
 */
import { createClient, type RillClient } from "../../../ts/src/index.js";
import type { BenchEnv } from "./types.js";
import { sequenceOf } from "./workload.js";

/** Runs `fn` with a client of its own, closed afterwards. */
export async function withBenchClient<T>(env: BenchEnv, fn: (client: RillClient) => Promise<T>): Promise<T> {
  const client = createClient({
    brokers: env.address,
    ...env.security,
    retry: { maxAttempts: 3, maxElapsedMs: 10_000 },
    requestTimeoutMs: Math.max(30_000, env.phaseSeconds * 1000 + 10_000),
  });
  try {
    return await fn(client);
  } finally {
    await client.close().catch(() => {});
  }
}

/** Creates a new topic of one partition named `<prefix>-<suffix>` and returns its name. */
export async function createBenchTopic(env: BenchEnv, suffix: string): Promise<string> {
  const topic = `${env.topicPrefix}-${suffix}`;
  await withBenchClient(env, (c) => c.admin().createTopic(topic, { partitions: 1 }));
  env.createdTopics.push(topic);
  return topic;
}

/** The high watermark of partition 0. */
export async function highWatermark(env: BenchEnv, topic: string): Promise<number> {
  const offsets = await withBenchClient(env, (c) => c.admin().listOffsets(topic, { partitions: [0] }));
  return Number(offsets[0]?.latest ?? 0n);
}

/**
 * Reads the topic from offset 0 to its high watermark and counts the records, checking that each
 * carries its offset as sequence number, or one `period` records earlier, or two... when the records
 * were sent from a ring (phase-producer.ts); throws on the first that does not. Bounded by `seconds`.
 */
export async function readBack(
  env: BenchEnv,
  topic: string,
  seconds: number,
  period = Number.POSITIVE_INFINITY,
): Promise<number> {
  const signal = AbortSignal.timeout(seconds * 1000);
  return withBenchClient(env, async (client) => {
    let count = 0;
    for await (const batch of client
      .consumer()
      .readBatches({ topic, from: "earliest", follow: false, signal })) {
      for (const r of batch.records) {
        const behind = Number(r.offset) - sequenceOf(r.value);
        if (behind < 0 || (behind !== 0 && behind % period !== 0)) {
          throw new Error(`${topic}: record at offset ${r.offset} carries sequence ${sequenceOf(r.value)}`);
        }
        count++;
      }
    }
    return count;
  });
}
