/**
 * Phases 1 and 2: one producer sends `records` records in batches of 1 (phase 1) or 50 (phase 2)
 * over one ProduceSession stream, each batch acknowledged before the next is sent (no pipelining),
 * with durability written or fsynced. Timed from the first send to the last acknowledgement.
 */
import { Connection } from "../../../ts/src/index.js";
import { openAckedSender } from "./acked-sender.js";
import { deadline, Meter } from "./meter.js";
import { createBenchTopic, highWatermark, readBack } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";
import { batchRequest, durabilityCode, values } from "./workload.js";

export async function runAckedPhase(
  env: BenchEnv,
  phase: 1 | 2,
  batch: number,
  durability: "written" | "fsynced",
): Promise<PhaseResult> {
  const name = `produce, batch ${batch}, ${durability}`;
  const topic = await createBenchTopic(env, `p${phase}-${durability}`);
  const connection = new Connection(env.address, env.security);
  const limit = deadline(env.phaseSeconds);
  const sender = openAckedSender(connection, limit.date(10_000));
  const code = durabilityCode(durability);
  const task = env.progress.start(`${phase}. ${name}`, env.records);
  const all = values(0, env.records);
  let acked = 0;
  let error: string | undefined;
  const meter = new Meter(env);
  try {
    while (acked < env.records && !limit.passed()) {
      const count = Math.min(batch, env.records - acked);
      const request = batchRequest(topic, acked, count, code, all.slice(acked, acked + count));
      const result = await sender.send(request);
      if (Number(result.baseOffset) !== acked || result.recordCount !== count) {
        throw new Error(`batch at ${acked} landed at ${result.baseOffset} (${result.recordCount} records)`);
      }
      acked += count;
      task.update(acked);
    }
  } catch (e) {
    error = (e as Error).message;
  }
  const measured = meter.finish(acked, env.records);
  await sender.close().catch(() => {});
  connection.close();
  const stored = await highWatermark(env, topic);
  if (error === undefined && stored !== acked) error = `${acked} acknowledged but the log holds ${stored}`;
  const consumed = env.verify ? await readBack(env, topic, env.phaseSeconds) : undefined;
  task.done(
    `${measured.recordsPerSec?.toLocaleString("en-US")} records/s${measured.capped ? " (capped)" : ""}`,
  );
  return {
    id: `${phase}-${durability}`,
    phase,
    name,
    ...measured,
    consumed,
    note: `${sender.method}; ${batch} record(s) per batch, each acknowledged before the next`,
    error,
  };
}
