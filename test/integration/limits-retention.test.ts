import { status } from "@grpc/grpc-js";
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
