import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BrokerUnavailableError,
  ClientClosedError,
  createClient,
  InvalidArgumentError,
  type RillClient,
} from "../../../../clients/ts/src/index.js";
import { type FakeBroker, startFakeBroker, status } from "../helpers/fake-broker.js";

let fake: FakeBroker;
let client: RillClient;

beforeEach(async () => {
  fake = await startFakeBroker(3);
  client = createClient({
    brokers: fake.address,
    retry: { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 4, maxElapsedMs: 5_000 },
  });
});

afterEach(async () => {
  await client.close().catch(() => {});
  await fake.stop();
});

const values = (p: number) => fake.logs.get(p)!.map((r) => r.value.toString());

describe("client > producer > batching", () => {
  it("batches several partitions into one stream and resolves offsets in record order", async () => {
    // Ensures one send fans out per partition and its result lists each record's own offset.
    const producer = client.producer({ lingerMs: 50 });
    await producer.send("t", { value: "warm", partition: 1 });
    const metas = await producer.send("t", [
      { value: "a", partition: 0 },
      { value: "b", partition: 1 },
      { value: "c", partition: 0 },
      { value: "d", partition: 2 },
    ]);
    expect(metas).toEqual([
      { topic: "t", partition: 0, offset: 0n },
      { topic: "t", partition: 1, offset: 1n },
      { topic: "t", partition: 0, offset: 1n },
      { topic: "t", partition: 2, offset: 0n },
    ]);
    expect(fake.produceCalls.at(-1)!.map((r) => r.partition)).toEqual([0, 1, 2]);
    expect(values(0)).toEqual(["a", "c"]);
  });

  it("seals a batch at batchBytes and keeps keyless records on one sticky partition per batch", async () => {
    // Ensures full batches are sent without waiting for linger and sticky placement groups records.
    const producer = client.producer({ lingerMs: 60_000, batchBytes: 200 });
    const started = Date.now();
    const sent = producer.send(
      "t",
      Array.from({ length: 40 }, (_, i) => ({ value: `value-${i}`.padEnd(40, ".") })),
    );
    // Full batches leave at once; only the last, partly filled one waits for flush.
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.produceCalls.flat().length).toBeGreaterThan(5);
    await producer.flush();
    const metas = await sent;
    expect(Date.now() - started).toBeLessThan(5_000);
    const requests = fake.produceCalls.flat();
    expect(requests.length).toBeGreaterThan(5);
    for (const r of requests) expect(r.records!.records.length).toBeLessThanOrEqual(4);
    // Consecutive records share a partition within a batch.
    expect(metas[0]!.partition).toBe(metas[1]!.partition);
  });

  it("flush sends lingering records at once", async () => {
    // Ensures flush does not wait out lingerMs.
    const producer = client.producer({ lingerMs: 60_000 });
    const p = producer.send("t", { value: "x" });
    const started = Date.now();
    await producer.flush();
    await expect(p).resolves.toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("buffers a send before it returns once the topic's metadata is cached", async () => {
    // Ensures `writable` reflects a send at once, so callers can await only when the buffer is full.
    const producer = client.producer({ lingerMs: 60_000, bufferBytes: 1_000 });
    const first = producer.send("t", { value: "x", partition: 0 });
    await producer.flush();
    await first;
    expect(producer.bufferedBytes).toBe(0);
    const second = producer.send("t", { value: Buffer.alloc(2_000), partition: 0 });
    expect(producer.bufferedBytes).toBeGreaterThan(2_000);
    expect(producer.writable).toBe(false);
    await producer.flush();
    await second;
    expect(producer.writable).toBe(true);
  });

  it("refuses a partition the topic does not have", async () => {
    // Ensures an explicit out-of-range partition rejects the send before anything is sent.
    const producer = client.producer();
    await expect(producer.send("t", { value: "x", partition: 3 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(fake.produceCalls).toHaveLength(0);
  });

  it("makes send wait while the buffer is full", async () => {
    // Ensures bufferBytes bounds what is buffered: a send beyond it waits for acknowledgements.
    fake.produceDelayMs = 150;
    const producer = client.producer({ lingerMs: 0, bufferBytes: 1_000 });
    const first = producer.send("t", { value: Buffer.alloc(900), partition: 0 });
    await Promise.resolve();
    const second = producer.send("t", { value: Buffer.alloc(900), partition: 0 });
    await new Promise((r) => setTimeout(r, 50));
    expect(producer.writable).toBe(false);
    expect(producer.bufferedBytes).toBeLessThanOrEqual(1_000);
    await producer.waitWritable();
    expect((await first)[0]!.offset).toBe(0n);
    expect((await second)[0]!.offset).toBe(1n);
  });

  it("rejects sends after close", async () => {
    // Ensures a closed producer refuses new records and close flushes what was buffered.
    const producer = client.producer({ lingerMs: 60_000 });
    const pending = producer.send("t", { value: "before" });
    await producer.close();
    await expect(pending).resolves.toHaveLength(1);
    await expect(producer.send("t", { value: "after" })).rejects.toBeInstanceOf(ClientClosedError);
  });
});

describe("client > producer > retries", () => {
  /** Sends one record to each of partitions 0, 1, 2 as separate sends in one stream. */
  async function threeSends() {
    const producer = client.producer({ lingerMs: 60_000 });
    const warmUp = producer.send("t", { value: "warm-up", partition: 0 });
    await producer.flush();
    await warmUp;
    fake.produceCalls.length = 0;
    for (const p of [0, 1, 2]) fake.logs.get(p)!.length = 0;
    const sends = [0, 1, 2].map((p) => producer.send("t", { value: `r${p}`, partition: p }));
    sends.forEach((s) => {
      s.catch(() => {});
    });
    await producer.flush();
    return { producer, sends };
  }

  it("resends only the batches after rill-appended-batches on a retriable failure", async () => {
    // Ensures the trailer prevents duplicates: appended batches are acknowledged, the rest resent.
    fake.produceScripts.push(() => ({ ok: true }));
    fake.produceScripts.push(() => ({
      ok: false,
      code: status.UNAVAILABLE,
      message: "draining",
      appended: 1,
    }));
    const { sends } = await threeSends();
    expect(fake.produceCalls.map((c) => c.map((r) => r.partition))).toEqual([
      [0, 1, 2],
      [1, 2],
    ]);
    // Appended before the failure: offset unknown.
    expect(await sends[0]).toEqual([{ topic: "t", partition: 0, offset: -1n }]);
    expect(await sends[1]).toEqual([{ topic: "t", partition: 1, offset: 0n }]);
    expect(await sends[2]).toEqual([{ topic: "t", partition: 2, offset: 0n }]);
    expect([values(0), values(1), values(2)]).toEqual([["r0"], ["r1"], ["r2"]]);
  });

  it("rejects only the refused batch's sends and resends the batches after it", async () => {
    // Ensures a non-retriable refusal fails its own sends while later batches are still appended.
    fake.produceScripts.push(() => ({ ok: true }));
    fake.produceScripts.push(() => ({
      ok: false,
      code: status.INVALID_ARGUMENT,
      message: "bad",
      appended: 1,
    }));
    const { sends } = await threeSends();
    await expect(sends[0]).resolves.toHaveLength(1);
    await expect(sends[1]).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(sends[2]).resolves.toEqual([{ topic: "t", partition: 2, offset: 0n }]);
    expect(fake.produceCalls.map((c) => c.map((r) => r.partition))).toEqual([[0, 1, 2], [2]]);
    expect(values(1)).toEqual([]);
  });

  it("resends every batch when no trailer says what was appended", async () => {
    // Ensures a lost connection (no trailer) leads to a full resend: at-least-once.
    fake.produceScripts.push(() => ({ ok: true }));
    fake.produceScripts.push(() => ({ ok: false, code: status.UNAVAILABLE, message: "gone" }));
    const { sends } = await threeSends();
    expect(fake.produceCalls.map((c) => c.map((r) => r.partition))).toEqual([
      [0, 1, 2],
      [0, 1, 2],
    ]);
    for (const s of sends) await expect(s).resolves.toHaveLength(1);
  });

  it("gives up after the bounded number of attempts", async () => {
    // Ensures retries are bounded and the send rejects with the last retriable error.
    for (let i = 0; i < 10; i++) {
      fake.produceScripts.push(() => ({ ok: false, code: status.UNAVAILABLE, message: "down" }));
    }
    const producer = client.producer({ lingerMs: 0, retry: { maxAttempts: 3 } });
    await expect(producer.send("t", { value: "x", partition: 0 })).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    expect(fake.produceCalls).toHaveLength(3);
  });

  it("keeps each partition's order across a retry", async () => {
    // Ensures a partition's later batches never overtake an earlier batch being retried.
    fake.produceScripts.push(() => ({ ok: false, code: status.UNAVAILABLE, message: "blip", appended: 0 }));
    const producer = client.producer({ lingerMs: 0, batchBytes: 64, maxInFlight: 4 });
    const sends = [];
    for (let i = 0; i < 30; i++)
      sends.push(producer.send("t", { value: `v${i}`.padEnd(40, "-"), partition: 0 }));
    await Promise.all(sends);
    expect(values(0).map((v) => v.replace(/-+$/, ""))).toEqual(Array.from({ length: 30 }, (_, i) => `v${i}`));
  });
});
