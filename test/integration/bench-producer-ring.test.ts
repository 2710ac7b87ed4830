/**
 * The bench's Producer runs (phases 3 and 9) send a ring of 64 chunks of 1000 records again and
 * again. Past the ring (the smoke test's N never gets there) every record must still be sent,
 * acknowledged and stored once, in the partition `i % partitions` it stands for, and the short
 * last chunk too; `--verify` must accept what the ring sent; a partition count the ring cannot keep
 * is refused up front.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RING_RECORDS, runProducer } from "../../clients/cli/src/bench/phase-producer.js";
import { Progress } from "../../clients/cli/src/bench/progress.js";
import { readBack } from "../../clients/cli/src/bench/topics.js";
import type { BenchEnv } from "../../clients/cli/src/bench/types.js";
import { sequenceOf } from "../../clients/cli/src/bench/workload.js";
import { createClient } from "../../clients/ts/src/index.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker();
});

afterAll(async () => {
  await broker.stop();
});

function benchEnv(): BenchEnv {
  return {
    address: broker.address,
    security: {},
    dataDir: undefined,
    brokerPid: undefined,
    records: 0,
    phaseSeconds: 60,
    topicPrefix: "ring",
    verify: false,
    progress: new Progress(false),
    createdTopics: [],
    windows: [],
  };
}

const quiet = { update: () => {}, done: () => {} };

describe("integration > bench > Producer runs past the ring of chunks", () => {
  it("stores every record once, in the partition it stands for, in the order sent", async () => {
    const partitions = 16; // not a divisor of 1000: chunks start on different partitions
    const records = 2 * 64_000 + 500; // twice round the ring, then a short last chunk
    const first = 250; // as phase 9's second half starts past 0
    const client = createClient({ brokers: broker.address });
    try {
      const topic = "ring-wraps";
      await client.admin().createTopic(topic, { partitions });
      const run = await runProducer(benchEnv(), topic, quiet, partitions, records, first);
      expect(run.failure).toBeUndefined();
      expect(run.acked).toBe(records);
      const offsets = await client.admin().listOffsets(topic);
      // Partition p holds as many records as there are i in [first, first + records) with i % 16 = p.
      for (const o of offsets) {
        let count = 0;
        for (let i = first; i < first + records; i++) if (i % partitions === o.partition) count++;
        expect(Number(o.latest), `partition ${o.partition}`).toBe(count);
      }
      // What was sent: chunk k carries the values made for ring slot k % 64 (of records from
      // `first`), the short last chunk its own; partition 7 gets those whose sequence is 7 mod 16.
      const expected: number[] = [];
      for (let k = 0; k * 1000 < records; k++) {
        const start = (k + 1) * 1000 > records ? first + k * 1000 : first + (k % 64) * 1000;
        for (let i = 0; i < Math.min(1000, records - k * 1000); i++) {
          if ((start + i) % partitions === 7) expected.push(start + i);
        }
      }
      const stored: number[] = [];
      for await (const batch of client
        .consumer()
        .readBatches({ topic, partitions: [7], from: 0n, follow: false })) {
        for (const r of batch.records) stored.push(sequenceOf(r.value));
      }
      expect(stored).toEqual(expected);
      expect(Number(offsets.find((o) => o.partition === 7)!.latest)).toBe(expected.length);
    } finally {
      await client.close();
    }
  });

  it("reads a ring-sent topic back with --verify's check, which still catches a wrong record", async () => {
    const topic = "ring-verify";
    const client = createClient({ brokers: broker.address });
    try {
      await client.admin().createTopic(topic, { partitions: 1 });
      const records = RING_RECORDS + 1500;
      const run = await runProducer(benchEnv(), topic, quiet, 1, records);
      expect(run.acked).toBe(records);
      expect(await readBack(benchEnv(), topic, 60, RING_RECORDS)).toBe(records);
      // Without the ring's period the record at offset RING_RECORDS (sequence 0) is refused.
      await expect(readBack(benchEnv(), topic, 60)).rejects.toThrow(
        `offset ${RING_RECORDS} carries sequence 0`,
      );
      // And a period that is not the ring's refuses it too.
      await expect(readBack(benchEnv(), topic, 60, RING_RECORDS - 1)).rejects.toThrow(/carries sequence/);
    } finally {
      await client.close();
    }
  });

  it("refuses a partition count that does not divide the ring", async () => {
    await expect(runProducer(benchEnv(), "ring-never", quiet, 7, 10)).rejects.toThrow(
      /7 partitions do not divide/,
    );
  });
});
