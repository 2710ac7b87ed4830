/**
 * The data set phases 4 and 6 read: `records` records in batches of 50 on a fresh one-partition
 * topic, written once (untimed) through pipelined client-streaming Produce calls of up to 1000
 * batches each, durability written. Made on first use and shared.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { Durability, ProduceRequest } from "../../../ts/src/gen/rill/v1/log.js";
import { Connection } from "../../../ts/src/index.js";
import { deadline } from "./meter.js";
import { createBenchTopic, highWatermark } from "./topics.js";
import type { BenchEnv } from "./types.js";
import { batchRequest } from "./workload.js";

export const DATASET_BATCH = 50;
const BATCHES_PER_STREAM = 1000;

/** The encoded ProduceRequest of batch `first..first+count-1` (the bytes Produce carries). */
export function encodedBatch(topic: string, first: number, count: number): Buffer {
  const req = batchRequest(topic, first, count, Durability.DURABILITY_WRITTEN);
  return Buffer.from(ProduceRequest.encode(req).finish());
}

export async function dataset(env: BenchEnv): Promise<{ topic: string; records: number }> {
  if (env.dataset) return env.dataset;
  const topic = await createBenchTopic(env, "data");
  const connection = new Connection(env.address, env.security);
  const limit = deadline(env.phaseSeconds);
  const task = env.progress.start("   writing the batch-50 data set", env.records);
  let written = 0;
  try {
    while (written < env.records && !limit.passed()) {
      written = await produceStream(connection, topic, written, env.records, limit.date(10_000));
      task.update(written);
    }
  } finally {
    connection.close();
  }
  const stored = await highWatermark(env, topic);
  if (stored !== env.records) throw new Error(`the data set holds ${stored} records, not ${env.records}`);
  task.done(`${stored} records`);
  env.dataset = { topic, records: stored };
  return env.dataset;
}

/** One Produce stream of up to BATCHES_PER_STREAM batches from `from`; resolves with the next record. */
function produceStream(
  connection: Connection,
  topic: string,
  from: number,
  total: number,
  end: Date,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let next = from;
    const call = connection.rawProduce.produce(
      connection.metadata(),
      { deadline: end },
      (err: ServiceError | null) => {
        if (err) reject(err);
        else resolve(next);
      },
    );
    const writeRest = (left: number): void => {
      for (let b = 0; b < left && next < total; b++) {
        const count = Math.min(DATASET_BATCH, total - next);
        const more = call.write(encodedBatch(topic, next, count));
        next += count;
        if (!more && b + 1 < left && next < total) {
          call.once("drain", () => writeRest(left - b - 1));
          return;
        }
      }
      call.end();
    };
    writeRest(BATCHES_PER_STREAM);
  });
}
