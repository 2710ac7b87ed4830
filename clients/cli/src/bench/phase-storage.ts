/**
 * Phase 6: bytes on disk per record, for the batch-50 data set (200-byte values, no key, no headers,
 * no timestamp). With the broker's data directory at hand (a broker the bench started), the sizes
 * are those of the partition's files: `.log` bytes / records − 200, and the same with the `.index`
 * and `.timeindex` files; allocated blocks are reported beside. Against another broker only the
 * segment size of DescribeTopic is known.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { dataset } from "./dataset.js";
import { Meter, RECORD_BYTES, round } from "./meter.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult, StorageSummary } from "./types.js";

export async function runStoragePhase(env: BenchEnv): Promise<PhaseResult> {
  const name = "storage overhead, batch 50";
  const { topic, records } = await dataset(env);
  const task = env.progress.start(`6. ${name}`, 1, "topics");
  const meter = new Meter(env);
  const storage =
    env.dataDir !== undefined
      ? await fromFiles(join(env.dataDir, "topics", topic), records)
      : await fromDescribe(env, topic, records);
  task.update(1);
  const withIndexes =
    storage.overheadWithIndexes === undefined ? "" : `, ${storage.overheadWithIndexes} with indexes`;
  task.done(`${storage.overheadPerRecord} bytes/record${withIndexes}`);
  return {
    id: "6",
    phase: 6,
    name,
    ...meter.finish(records, records),
    recordsPerSec: undefined,
    mbPerSec: undefined,
    storage,
    note: `sizes from ${storage.source === "files" ? "the partition's segment files" : "DescribeTopic (no index sizes)"}`,
  };
}

/** Sums the segment files of every partition directory of a topic directory. */
export async function fromFiles(topicDir: string, records: number): Promise<StorageSummary> {
  let logBytes = 0;
  let indexBytes = 0;
  let allocated = 0;
  for (const partition of await readdir(topicDir, { withFileTypes: true })) {
    if (!partition.isDirectory()) continue;
    const dir = join(topicDir, partition.name);
    for (const file of await readdir(dir)) {
      const isLog = file.endsWith(".log");
      const isIndex = file.endsWith(".index") || file.endsWith(".timeindex");
      if (!isLog && !isIndex) continue;
      const s = await stat(join(dir, file));
      if (isLog) logBytes += s.size;
      else indexBytes += s.size;
      allocated += s.blocks * 512;
    }
  }
  return summary(records, logBytes, indexBytes, allocated, "files");
}

async function fromDescribe(env: BenchEnv, topic: string, records: number): Promise<StorageSummary> {
  const d = await withBenchClient(env, (c) => c.admin().describeTopic(topic));
  const logBytes = d.partitions.reduce((sum, p) => sum + Number(p.sizeBytes), 0);
  return summary(records, logBytes, undefined, undefined, "DescribeTopic");
}

function summary(
  records: number,
  logBytes: number,
  indexBytes: number | undefined,
  allocatedBytes: number | undefined,
  source: StorageSummary["source"],
): StorageSummary {
  const per = (bytes: number) => round(bytes / Math.max(1, records) - RECORD_BYTES, 2);
  return {
    records,
    payloadBytes: records * RECORD_BYTES,
    logBytes,
    indexBytes: indexBytes ?? 0,
    allocatedBytes,
    overheadPerRecord: per(logBytes),
    overheadWithIndexes: indexBytes === undefined ? undefined : per(logBytes + indexBytes),
    source,
  };
}
