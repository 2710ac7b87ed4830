import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DescribeTopicResponse } from "../../clients/ts/src/gen/rill/v1/admin.js";
import {
  Durability,
  type FetchResponse,
  type ListOffsetsResponse,
  OffsetPosition,
} from "../../clients/ts/src/gen/rill/v1/log.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import {
  api,
  fetchAll,
  follow,
  produce,
  produceRequest,
  record,
  type Stubs,
  stubs,
  values,
} from "./helpers/grpc.js";

let tb: TestBroker;
let s: Stubs;

beforeAll(async () => {
  tb = await startTestBroker({ fetchHeartbeatMs: 200, topicDefaults: { maxBatchBytes: 64 * 1024 } });
  s = stubs(tb.address);
});

afterAll(async () => {
  s?.close();
  await tb?.stop();
});

async function createTopic(topic: string, partitions = 1): Promise<void> {
  await api(s).createTopic({ topic, partitions, config: undefined });
}

async function describeTopic(topic: string): Promise<DescribeTopicResponse> {
  return api(s).describeTopic({ topic });
}

describe("integration > log service > produce and fetch", () => {
  it("assigns dense offsets across batches and partitions and reads them back", async () => {
    // Ensures every batch of one Produce stream gets its base offset, in order, per partition.
    const topic = randomTopic();
    await createTopic(topic, 2);
    const out = await produce(s.log, [
      produceRequest(topic, 0, [record("a"), record("b"), record("c")]),
      produceRequest(topic, 1, [record("x")]),
      produceRequest(topic, 0, [record("d"), record("e")]),
    ]);
    expect(out.error).toBeUndefined();
    expect(out.response!.results.map((r) => [r.partition, r.baseOffset, r.recordCount])).toEqual([
      [0, 0n, 3],
      [1, 0n, 1],
      [0, 3n, 2],
    ]);
    const p0 = await fetchAll(s.log, { topic, partition: 0 });
    expect(values(p0.responses)).toEqual(["a", "b", "c", "d", "e"]);
    // A fetch from the middle of a batch gets the whole batch; the client skips to the offset.
    const mid = await fetchAll(s.log, { topic, partition: 0, start: { $case: "offset", value: 1n } });
    expect(values(mid.responses, 1n)).toEqual(["b", "c", "d", "e"]);
    expect(mid.responses.at(-1)!.highWatermark).toBe(5n);
  });

  it("auto-creates a topic on its first produce", async () => {
    // Ensures auto.create.topics (on by default) creates the topic with the default partitions.
    const topic = randomTopic("auto");
    const out = await produce(s.log, [produceRequest(topic, 0, [record("hello")])]);
    expect(out.error).toBeUndefined();
    const d = await describeTopic(topic);
    expect(d.topic!.partitions).toHaveLength(1);
    expect(d.topic!.partitions[0]!.highWatermark).toBe(1n);
  });

  it("acknowledges FSYNCED produces", async () => {
    // Ensures a produce asking for fsync durability is acknowledged (after the group fsync).
    const topic = randomTopic();
    const requests = Array.from({ length: 20 }, (_, i) =>
      produceRequest(topic, 0, [record(`v${i}`)], { durability: Durability.DURABILITY_FSYNCED }),
    );
    const out = await produce(s.log, requests);
    expect(out.error).toBeUndefined();
    expect(out.response!.results.at(-1)!.baseOffset).toBe(19n);
  });

  it("starts from EARLIEST, LATEST and a timestamp", async () => {
    // Ensures every start point resolves to the right offset.
    const topic = randomTopic();
    await produce(s.log, [produceRequest(topic, 0, [record("1"), record("2")])]);
    const before = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    await produce(s.log, [produceRequest(topic, 0, [record("3")])]);
    const earliest = await fetchAll(s.log, {
      topic,
      start: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
    });
    expect(values(earliest.responses)).toEqual(["1", "2", "3"]);
    const latest = await fetchAll(s.log, {
      topic,
      start: { $case: "position", value: OffsetPosition.OFFSET_POSITION_LATEST },
    });
    expect(values(latest.responses)).toEqual([]);
    const byTime = await fetchAll(s.log, { topic, start: { $case: "timestampMs", value: BigInt(before) } });
    expect(values(byTime.responses)).toEqual(["3"]);
    const offsets: ListOffsetsResponse = await api(s).listOffsets({
      topic,
      partitions: [],
      timestampMs: BigInt(before),
    });
    expect(offsets.partitions).toEqual([{ partition: 0, earliest: 0n, latest: 3n, timestampOffset: 2n }]);
  });

  it("streams records produced after a following fetch started, with heartbeats while idle", async () => {
    // Ensures follow=true waits at the tail without polling and sends empty heartbeats.
    const topic = randomTopic();
    await createTopic(topic);
    const call = follow(s.log, topic);
    const seen: string[] = [];
    let heartbeats = 0;
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (r: FetchResponse) => {
        if (r.batches.length === 0) heartbeats++;
        seen.push(...values([r]));
        if (seen.length >= 3) resolve();
      });
      call.on("error", (e: ServiceError) => (e.code === status.CANCELLED ? undefined : reject(e)));
    });
    await new Promise((r) => setTimeout(r, 500)); // idle: heartbeats every 200 ms
    await produce(s.log, [produceRequest(topic, 0, [record("late-1")])]);
    await produce(s.log, [produceRequest(topic, 0, [record("late-2"), record("late-3")])]);
    await done;
    call.cancel();
    expect(seen).toEqual(["late-1", "late-2", "late-3"]);
    expect(heartbeats).toBeGreaterThanOrEqual(1);
  });

  it("ends a following fetch with NOT_FOUND when its topic is deleted", async () => {
    // Ensures deleting a topic ends the streams reading it instead of leaving them hanging.
    const topic = randomTopic();
    await createTopic(topic);
    const call = follow(s.log, topic);
    const ended = new Promise<ServiceError>((resolve) => call.on("error", resolve));
    call.on("data", () => {});
    await new Promise((r) => setTimeout(r, 100));
    await api(s).deleteTopic({ topic });
    expect((await ended).code).toBe(status.NOT_FOUND);
  });
});

describe("integration > log service > errors", () => {
  it("answers NOT_FOUND for unknown topics and partitions", async () => {
    // Ensures reads of missing topics/partitions name what is missing.
    const missing = await fetchAll(s.log, { topic: randomTopic("missing") });
    expect(missing.error?.code).toBe(status.NOT_FOUND);
    expect(missing.error?.details).toMatch(/does not exist/);
    const topic = randomTopic();
    await createTopic(topic, 2);
    const badPartition = await fetchAll(s.log, { topic, partition: 2 });
    expect(badPartition.error?.code).toBe(status.NOT_FOUND);
    const out = await produce(s.log, [produceRequest(topic, 7, [record("x")])]);
    expect(out.error?.code).toBe(status.NOT_FOUND);
  });

  it("answers OUT_OF_RANGE for offsets past the high watermark", async () => {
    // Ensures a fetch beyond the log end is refused with the valid range in the message.
    const topic = randomTopic();
    await produce(s.log, [produceRequest(topic, 0, [record("x")])]);
    const r = await fetchAll(s.log, { topic, start: { $case: "offset", value: 2n ** 62n } });
    expect(r.error?.code).toBe(status.OUT_OF_RANGE);
    expect(r.error?.details).toMatch(/\[0, 1\]/);
  });

  it("answers INVALID_ARGUMENT for bad names, negative partitions and empty batches, creating nothing", async () => {
    // Ensures input is validated before it touches state: no directory appears for a bad name.
    for (const topic of ["../x", "a/b", "..", ".", "", "x".repeat(250), "na\u0000me", "%2e%2e"]) {
      const out = await produce(s.log, [produceRequest(topic, 0, [record("x")])]);
      expect(out.error?.code, topic).toBe(status.INVALID_ARGUMENT);
    }
    const created = await api(s)
      .createTopic({ topic: "../x", partitions: 1, config: undefined })
      .catch((e) => e);
    expect(created.code).toBe(status.INVALID_ARGUMENT);
    const topic = randomTopic();
    const neg = await produce(s.log, [produceRequest(topic, -1, [record("x")])]);
    expect(neg.error?.code).toBe(status.INVALID_ARGUMENT);
    const empty = await produce(s.log, [produceRequest(topic, 0, [])]);
    expect(empty.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(empty.error?.details).toMatch(/empty/);
    const list = await api(s).listTopics();
    expect(list.topics.map((t) => t.topic)).not.toContain(topic);
    const noStart = await fetchAll(s.log, { topic: "whatever", start: undefined });
    expect(noStart.error?.code).toBe(status.INVALID_ARGUMENT);
  });

  it("refuses an oversized batch with RESOURCE_EXHAUSTED and leaves the log unchanged", async () => {
    // Ensures max.batch.bytes is enforced, the earlier batches of the stream stay, and the trailer
    // tells the producer how many were appended.
    const topic = randomTopic();
    await createTopic(topic);
    const before = await describeTopic(topic);
    const out = await produce(s.log, [
      produceRequest(topic, 0, [record("ok")]),
      produceRequest(topic, 0, [record(Buffer.alloc(100 * 1024, 1))]),
      produceRequest(topic, 0, [record("never")]),
    ]);
    expect(out.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(out.error?.details).toMatch(/max\.batch\.bytes/);
    expect(out.trailers?.get("rill-appended-batches")).toEqual(["1"]);
    const after = await describeTopic(topic);
    expect(after.topic!.partitions[0]!.highWatermark).toBe(before.topic!.partitions[0]!.highWatermark + 1n);
    expect(values((await fetchAll(s.log, { topic })).responses)).toEqual(["ok"]);
  });

  it("refuses a batch whose records lie about their lengths", async () => {
    // Ensures structurally broken record bytes never reach the log.
    const topic = randomTopic();
    await createTopic(topic);
    // A raw ProduceRequest: topic, then field 3 holding a record that claims 50 bytes but has 2.
    const { LogServiceService } = await import("../../clients/ts/src/gen/rill/v1/log.js");
    const { makeGenericClientConstructor, credentials } = await import("@grpc/grpc-js");
    const Raw = makeGenericClientConstructor(
      { produce: { ...LogServiceService.produce, requestSerialize: (b: Buffer) => b } },
      "raw",
    );
    const raw = new Raw(tb.address, credentials.createInsecure()) as unknown as {
      produce(cb: (e: ServiceError | null) => void): { write(b: Buffer): void; end(): void };
      close(): void;
    };
    const name = Buffer.from(topic);
    const body = Buffer.concat([
      Buffer.from([0x0a, name.length]),
      name,
      Buffer.from([0x1a, 0x04, 0x0a, 0x32, 0x12, 0x00]),
    ]);
    const err = await new Promise<ServiceError | null>((resolve) => {
      const call = raw.produce((e) => resolve(e));
      call.write(body);
      call.end();
    });
    raw.close();
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect((await describeTopic(topic)).topic!.partitions[0]!.highWatermark).toBe(0n);
  });
});

describe("integration > admin and cluster", () => {
  it("creates, lists, describes and deletes topics with config", async () => {
    // Ensures CreateTopic applies overrides, refuses duplicates and bad config, and DeleteTopic removes it.
    const topic = randomTopic();
    const created = await api(s).createTopic({
      topic,
      partitions: 3,
      config: { retentionMs: 60_000n, segmentBytes: 4096n, durability: Durability.DURABILITY_FSYNCED },
    });
    expect(created.topic!.partitions).toHaveLength(3);
    expect(created.topic!.config!.retentionMs).toBe(60_000n);
    expect(created.topic!.config!.segmentBytes).toBe(4096n);
    expect(created.topic!.config!.durability).toBe(Durability.DURABILITY_FSYNCED);
    const dup = await api(s)
      .createTopic({ topic, partitions: 1, config: undefined })
      .catch((e) => e);
    expect(dup.code).toBe(status.ALREADY_EXISTS);
    const badConfig = await api(s)
      .createTopic({
        topic: randomTopic(),
        partitions: 1,
        config: { segmentBytes: 1n },
      })
      .catch((e) => e);
    expect(badConfig.code).toBe(status.INVALID_ARGUMENT);
    expect(badConfig.details).toMatch(/segment\.bytes/);
    const list = await api(s).listTopics();
    expect(list.topics).toContainEqual({ topic, partitions: 3 });
    const meta = await api(s).getMetadata({ topics: [topic] });
    expect(meta.brokers).toHaveLength(1);
    expect(meta.topics[0]!.partitions.map((p) => p.leaderId)).toEqual([0, 0, 0]);
    await api(s).deleteTopic({ topic });
    const gone = await describeTopic(topic).catch((e) => e);
    expect(gone.code).toBe(status.NOT_FOUND);
  });
});

describe("integration > log service > receive limit", () => {
  it("refuses a message over max.receive.message.bytes with RESOURCE_EXHAUSTED and appends nothing", async () => {
    // Ensures the transport limit is enforced before any state changes.
    const small = await startTestBroker({
      maxReceiveMessageBytes: 64 * 1024,
      topicDefaults: { maxBatchBytes: 32 * 1024 },
    });
    const c = stubs(small.address);
    try {
      const topic = randomTopic();
      await api(c).createTopic({ topic, partitions: 1, config: undefined });
      const out = await produce(c.log, [produceRequest(topic, 0, [record(Buffer.alloc(100 * 1024))])]);
      expect(out.error?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(out.error?.details).toMatch(/larger than max/); // grpc-js's limit, not max.batch.bytes
      const d = await api(c).describeTopic({ topic });
      expect(d.topic!.partitions[0]!.highWatermark).toBe(0n);
    } finally {
      c.close();
      await small.stop();
    }
  });
});
