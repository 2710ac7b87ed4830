import { type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../server/src/clock.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { api, fetchAll, produce, produceRequest, record, stubs, values } from "./helpers/grpc.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

describe("integration > limits", () => {
  it("caps a topic's partitions at max.partitions.per.topic, on create and on add, leaving nothing behind", async () => {
    // Ensures the per-topic partition bound (each partition keeps 3 files open): RESOURCE_EXHAUSTED
    // naming the setting, no topic created, the partition count unchanged by a refused add.
    tb = await startTestBroker({ maxPartitionsPerTopic: 4 });
    const s = stubs(tb.address);
    const a = api(s);
    const topic = randomTopic();
    const refused = await a
      .createTopic({ topic, partitions: 5, config: undefined })
      .catch((e: ServiceError) => e);
    expect((refused as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((refused as ServiceError).details).toMatch(/max\.partitions\.per\.topic = 4/);
    expect((await a.listTopics()).topics.map((t) => t.topic)).not.toContain(topic);
    await a.createTopic({ topic, partitions: 4, config: undefined });
    const grow = (partitions: number) =>
      new Promise<ServiceError | null>((resolve) =>
        s.admin.addPartitions({ topic, partitions }, (err) => resolve(err)),
      );
    expect((await grow(5))?.code).toBe(status.RESOURCE_EXHAUSTED);
    const described = await a.describeTopic({ topic });
    expect(described.topic?.partitions).toHaveLength(4);
    s.close();
  });

  it("refuses a batch with more records than max.records.per.batch", async () => {
    // Ensures the record-count limit is checked before the append, with a message saying what to do.
    tb = await startTestBroker({ maxRecordsPerBatch: 10 });
    const s = stubs(tb.address);
    const topic = randomTopic();
    const ok = await produce(s.log, [
      produceRequest(
        topic,
        0,
        Array.from({ length: 10 }, () => record("x")),
      ),
    ]);
    expect(ok.error).toBeUndefined();
    const tooMany = await produce(s.log, [
      produceRequest(
        topic,
        0,
        Array.from({ length: 11 }, () => record("x")),
      ),
    ]);
    expect(tooMany.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(tooMany.error?.details).toMatch(/split it/);
    expect((await api(s).describeTopic({ topic })).topic!.partitions[0]!.highWatermark).toBe(10n);
    s.close();
  });

  it("caps the batches of one Produce stream and says how many were appended", async () => {
    // Ensures a stream's single response stays bounded: past the cap the call fails with
    // RESOURCE_EXHAUSTED and the trailer counts the batches that landed.
    tb = await startTestBroker({ maxBatchesPerProduceStream: 3 });
    const s = stubs(tb.address);
    const topic = randomTopic();
    const out = await produce(
      s.log,
      Array.from({ length: 5 }, (_, i) => produceRequest(topic, 0, [record(`v${i}`)])),
    );
    expect(out.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(out.error?.details).toMatch(/open another/);
    expect(out.trailers?.get("rill-appended-batches")).toEqual(["3"]);
    expect((await api(s).describeTopic({ topic })).topic!.partitions[0]!.highWatermark).toBe(3n);
    s.close();
  });

  it("creates no topic for a refused oversized first batch, and no topic whose batches could never arrive", async () => {
    // Ensures auto-create happens only for a batch that will be appended, and that
    // max.batch.bytes cannot be set above what max.receive.message.bytes lets through.
    tb = await startTestBroker({ topicDefaults: { maxBatchBytes: 1024 } });
    const s = stubs(tb.address);
    const topic = randomTopic();
    const out = await produce(s.log, [produceRequest(topic, 0, [record(Buffer.alloc(4096))])]);
    expect(out.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await api(s).listTopics()).topics.map((t) => t.topic)).not.toContain(topic);
    const tooBig = await api(s)
      .createTopic({ topic, partitions: 1, config: { maxBatchBytes: 64n * 1024n * 1024n } })
      .catch((e) => e);
    expect(tooBig.code).toBe(status.INVALID_ARGUMENT);
    expect(tooBig.details).toMatch(/max\.receive\.message\.bytes/);
    s.close();
  });

  it("refuses produces to unknown topics when auto-create is off", async () => {
    // Ensures auto.create.topics=false turns a first produce into NOT_FOUND with the fix in the message.
    tb = await startTestBroker({ autoCreateTopics: false });
    const s = stubs(tb.address);
    const out = await produce(s.log, [produceRequest(randomTopic(), 0, [record("x")])]);
    expect(out.error?.code).toBe(status.NOT_FOUND);
    expect(out.error?.details).toMatch(/rill topic create/);
    s.close();
  });
});

describe("integration > retention", () => {
  it("deletes expired segments in the background and advances the log start", async () => {
    // Ensures the broker's periodic retention applies retention.ms to every partition, and that a
    // reader below the new log start gets OUT_OF_RANGE.
    const clock = new ManualClock(Date.now());
    tb = await startTestBroker(
      { retentionCheckIntervalMs: 20, topicDefaults: { segmentBytes: 1024, retentionMs: 60_000 } },
      { clock },
    );
    const s = stubs(tb.address);
    const topic = randomTopic();
    for (let i = 0; i < 40; i++) {
      const out = await produce(s.log, [produceRequest(topic, 0, [record(`old-${i}-${"x".repeat(100)}`)])]);
      expect(out.error).toBeUndefined();
    }
    clock.advance(120_000);
    const fresh = await produce(s.log, [produceRequest(topic, 0, [record("fresh")])]);
    expect(fresh.error).toBeUndefined();
    let logStart = 0n;
    for (let i = 0; i < 100 && logStart === 0n; i++) {
      await new Promise((r) => setTimeout(r, 20));
      logStart = (await api(s).describeTopic({ topic })).topic!.partitions[0]!.logStartOffset;
    }
    // Whole closed segments go; the active one holds the last old records and "fresh".
    expect(logStart).toBeGreaterThan(20n);
    expect(logStart).toBeLessThanOrEqual(40n);
    const below = await fetchAll(s.log, { topic, start: { $case: "offset", value: 0n } });
    expect(below.error?.code).toBe(status.OUT_OF_RANGE);
    const rest = await fetchAll(s.log, { topic, start: { $case: "offset", value: logStart } });
    const kept = values(rest.responses);
    expect(kept.at(-1)).toBe("fresh");
    expect(kept.length).toBe(40 - Number(logStart) + 1);
    s.close();
  });
});
