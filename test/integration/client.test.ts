import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConsumedRecord,
  createClient,
  partitionForKey,
  type RillClient,
  TopicExistsError,
  TopicNotFoundError,
} from "../../clients/ts/src/index.js";
import { take } from "../helpers/take.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";

let broker: TestBroker;
let client: RillClient;

beforeAll(async () => {
  broker = await startTestBroker();
  client = createClient({ brokers: broker.address });
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
});

describe("client > integration > admin", () => {
  it("creates, lists, describes and deletes a topic", async () => {
    // Ensures the admin round-trips topic lifecycle calls and maps errors to typed classes.
    const admin = client.admin();
    const topic = randomTopic("adm");
    const created = await admin.createTopic(topic, { partitions: 3, config: { retentionMs: 60_000 } });
    expect(created.partitions).toHaveLength(3);
    expect(created.config?.retentionMs).toBe(60_000n);
    await expect(admin.createTopic(topic, { partitions: 1 })).rejects.toBeInstanceOf(TopicExistsError);
    expect((await admin.listTopics()).find((t) => t.topic === topic)?.partitions).toBe(3);
    expect((await admin.describeTopic(topic)).partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    const md = await admin.metadata([topic]);
    expect(md.topics[0]?.partitions).toHaveLength(3);
    const offsets = await admin.listOffsets(topic);
    expect(offsets.map((o) => [o.partition, o.earliest, o.latest])).toEqual([
      [0, 0n, 0n],
      [1, 0n, 0n],
      [2, 0n, 0n],
    ]);
    await admin.deleteTopic(topic);
    await expect(admin.describeTopic(topic)).rejects.toBeInstanceOf(TopicNotFoundError);
  });
});

describe("client > integration > producer and consumer", () => {
  it("round-trips 100k records over 4 partitions byte-exact", async () => {
    // Ensures every produced record comes back once, unchanged, at the offset the producer reported.
    const topic = randomTopic("rt");
    await client.admin().createTopic(topic, { partitions: 4 });
    const producer = client.producer({ lingerMs: 2 });
    const n = 100_000;
    const sent: Promise<unknown>[] = [];
    const expected = new Map<string, Buffer>();
    const chunk = 5_000;
    for (let i = 0; i < n; i += chunk) {
      const records: { value: Buffer; key: string | null }[] = [];
      for (let j = i; j < i + chunk; j++) {
        // Binary values of varying length, including bytes that are not valid UTF-8.
        const value = Buffer.alloc(j % 97, j % 251);
        if (value.length >= 4) value.writeUInt32BE(j, 0);
        records.push({
          value: Buffer.concat([Buffer.from(`${j}:`), value]),
          key: j % 3 === 0 ? `k${j}` : null,
        });
      }
      const p = producer.send(topic, records).then((metas) => {
        metas.forEach((m, idx) => {
          expected.set(`${m.partition}/${m.offset}`, records[idx]!.value);
        });
      });
      sent.push(p);
      if (!producer.writable) await producer.waitWritable();
    }
    await Promise.all(sent);
    await producer.flush();
    expect(expected.size).toBe(n);

    const got = await take(client.consumer().read({ topic, from: "earliest", follow: false }), n + 1, 60_000);
    expect(got).toHaveLength(n);
    const partitions = new Set<number>();
    for (const r of got) {
      partitions.add(r.partition);
      const want = expected.get(`${r.partition}/${r.offset}`);
      expect(want, `record ${r.partition}/${r.offset}`).toBeDefined();
      if (Buffer.compare(want!, r.value) !== 0) expect(r.value.toString("hex")).toBe(want!.toString("hex"));
    }
    expect(partitions.size).toBe(4);
  }, 120_000);

  it("puts keyed records on murmur2's partition", async () => {
    // Ensures the producer's partition for a key is Kafka's toPositive(murmur2(key)) % n.
    const topic = randomTopic("key");
    await client.admin().createTopic(topic, { partitions: 7 });
    const producer = client.producer();
    const keys = Array.from({ length: 200 }, (_, i) => `customer-${i}`);
    const metas = await producer.send(
      topic,
      keys.map((k) => ({ key: k, value: `v-${k}` })),
    );
    metas.forEach((m, i) => {
      expect(m.partition).toBe(partitionForKey(Buffer.from(keys[i]!), 7));
    });
    const got = await take(client.consumer().read({ topic, follow: false }), 200);
    for (const r of got) {
      const k = r.key!.toString();
      expect(r.partition).toBe(partitionForKey(Buffer.from(k), 7));
      expect(r.value.toString()).toBe(`v-${k}`);
    }
    expect(got).toHaveLength(200);
  });

  it("delivers to a following consumer records produced after it started", async () => {
    // Ensures follow mode tails the log and sees new appends on every partition.
    const topic = randomTopic("tail");
    await client.admin().createTopic(topic, { partitions: 2 });
    const producer = client.producer();
    await producer.send(topic, [{ value: "old", partition: 0 }]);
    const consumer = client.consumer();
    const reading = take(consumer.read({ topic, from: "latest", follow: true }), 4);
    // Give the fetch streams a moment to open at the tail, then produce.
    await new Promise((r) => setTimeout(r, 300));
    await producer.send(topic, [
      { value: "n1", partition: 0 },
      { value: "n2", partition: 1 },
    ]);
    await new Promise((r) => setTimeout(r, 100));
    await producer.send(topic, [
      { value: "n3", partition: 1 },
      { value: "n4", partition: 0 },
    ]);
    const got = await reading;
    expect(got.map((r) => r.value.toString()).sort()).toEqual(["n1", "n2", "n3", "n4"]);
    await consumer.close();
  });

  it("gives two independent consumers every record", async () => {
    // Ensures readers keep their own positions: each sees the whole log.
    const topic = randomTopic("two");
    await client.admin().createTopic(topic, { partitions: 3 });
    const producer = client.producer({ compression: "gzip" });
    await producer.send(
      topic,
      Array.from({ length: 3000 }, (_, i) => ({ value: `r${i}` })),
    );
    const [a, b] = await Promise.all([
      take(client.consumer().read({ topic, follow: false }), 5000),
      take(client.consumer().read({ topic, follow: false }), 5000),
    ]);
    const values = (rs: ConsumedRecord[]) => rs.map((r) => r.value.toString()).sort();
    expect(a).toHaveLength(3000);
    expect(values(a)).toEqual(values(b));
  });

  it("starts at an offset, skipping the earlier records of a batch served whole", async () => {
    // Ensures a read from the middle of a stored batch yields exactly the records from that offset.
    const topic = randomTopic("mid");
    await client.admin().createTopic(topic, { partitions: 1 });
    await client.producer().send(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ value: `m${i}` })),
    );
    const got = await take(client.consumer().read({ topic, from: 6n, follow: false }), 100);
    expect(got.map((r) => [r.offset, r.value.toString()])).toEqual([
      [6n, "m6"],
      [7n, "m7"],
      [8n, "m8"],
      [9n, "m9"],
    ]);
  });

  it("starts at a time: the first record appended at or after it", async () => {
    // Ensures from: Date reads only what was appended since, via the broker's time index.
    const topic = randomTopic("time");
    await client.admin().createTopic(topic, { partitions: 1 });
    const producer = client.producer({ lingerMs: 0 });
    await producer.send(topic, [{ value: "old-1" }, { value: "old-2" }]);
    await new Promise((r) => setTimeout(r, 30));
    const since = new Date();
    await new Promise((r) => setTimeout(r, 30));
    await producer.send(topic, [{ value: "new-1" }, { value: "new-2" }]);
    const got = await take(client.consumer().read({ topic, from: since, follow: false }), 100);
    expect(got.map((r) => r.value.toString())).toEqual(["new-1", "new-2"]);
    const latest = await take(client.consumer().read({ topic, from: "latest", follow: false }), 100);
    expect(latest).toEqual([]);
  });

  it("rejects reads of unknown topics with TopicNotFoundError", async () => {
    // Ensures a missing topic surfaces as the typed, non-retriable error.
    const it = client.consumer().read({ topic: randomTopic("none"), follow: false });
    await expect(take(it, 1)).rejects.toBeInstanceOf(TopicNotFoundError);
  });

  it("auto-creates a topic on first produce", async () => {
    // Ensures sends to an unknown topic succeed when the broker auto-creates it, and later sends see its partitions.
    const topic = randomTopic("auto");
    const producer = client.producer();
    const first = await producer.send(topic, { value: "a" });
    expect(first[0]).toMatchObject({ topic, partition: 0, offset: 0n });
    const second = await producer.send(topic, [{ value: "b" }, { value: "c" }]);
    expect(second.map((m) => m.offset)).toEqual([1n, 2n]);
  });
});

describe("client > integration > broker restart", () => {
  it("resumes a following consumer and retries the producer across a restart", async () => {
    // Ensures UNAVAILABLE during a graceful restart is retried: nothing is lost or read twice.
    let own = await startTestBroker();
    const warnings: string[] = [];
    const c = createClient({
      brokers: own.address,
      log: (e) => warnings.push(`${e.namespace}: ${e.message}`),
      logLevel: "warn",
      retry: { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 50, maxElapsedMs: 20_000 },
    });
    try {
      const topic = randomTopic("restart");
      await c.admin().createTopic(topic, { partitions: 2 });
      const producer = c.producer({ lingerMs: 0 });
      const reading = take(c.consumer().read({ topic, from: "earliest", follow: true }), 40, 30_000);
      await producer.send(
        topic,
        Array.from({ length: 20 }, (_, i) => ({ value: `before-${i}`, partition: i % 2 })),
      );
      await new Promise((r) => setTimeout(r, 200));
      own = await own.restart({ listen: own.address });
      await producer.send(
        topic,
        Array.from({ length: 20 }, (_, i) => ({ value: `after-${i}`, partition: i % 2 })),
      );
      const got = await reading;
      const values = got.map((r) => r.value.toString());
      expect(values).toHaveLength(40);
      expect(new Set(values).size).toBe(40);
      for (const p of [0, 1]) {
        const offsets = got.filter((r) => r.partition === p).map((r) => r.offset);
        expect(offsets).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
      }
      // The streams did break and were resumed.
      expect(warnings).toContain("rill.consumer: fetch stream broke, resuming");
    } finally {
      await c.close();
      await own.stop();
    }
  }, 60_000);
});
