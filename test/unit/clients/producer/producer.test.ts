import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BrokerUnavailableError,
  ClientClosedError,
  createClient,
  InvalidArgumentError,
  type RillClient,
} from "../../../../clients/ts/src/index.js";
import { SendState } from "../../../../clients/ts/src/producer/accumulator.js";
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

  it("keeps filling a batch whose linger ran out while the sender had no room", async () => {
    // Ensures batches grow with the backlog (Kafka's accumulator): with the one allowed stream busy,
    // records arriving after a batch's linger join it instead of piling up as one-record batches.
    // No fixed sleeps decide the order (a loaded machine delays timers): "a" is sent alone, its
    // stream has reached the broker before "b" is sent, and the answer is held long enough for
    // b, c and d to arrive, each after its linger, while the one stream allowed is busy.
    fake.produceDelayMs = 2_000;
    const producer = client.producer({ lingerMs: 5, maxInFlight: 1 });
    const first = producer.send("t", { value: "a", partition: 0 });
    for (let waited = 0; fake.produceCalls.length === 0; waited += 5) {
      if (waited > 5_000) throw new Error("the first batch never reached the fake broker");
      await new Promise((r) => setTimeout(r, 5));
    }
    const later: Promise<unknown>[] = [];
    for (const value of ["b", "c", "d"]) {
      later.push(producer.send("t", { value, partition: 1 }));
      await new Promise((r) => setTimeout(r, 15)); // each waits past its linger
    }
    expect(fake.produceCalls).toHaveLength(1); // still answering the first stream
    await first;
    await Promise.all(later);
    expect(fake.produceCalls).toHaveLength(2);
    const second = fake.produceCalls[1]!;
    expect(second).toHaveLength(1);
    expect(second[0]!.records!.records.map((r) => r.value.toString())).toEqual(["b", "c", "d"]);
    await producer.close();
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

describe("client > producer > partitioner", () => {
  it("a throwing partitioner leaks no buffer bytes and appends none of the rejected send's records", async () => {
    // Ensures a send is all-or-nothing: every partition is chosen before any record is batched.
    const partitioner = {
      partition: ({ key }: { key: Uint8Array | null }) => {
        if (key !== null && Buffer.from(key).toString() === "bad") throw new Error("no partition for 'bad'");
        return 0;
      },
    };
    const producer = client.producer({ partitioner, bufferBytes: 10_000 });
    await producer.send("t", { key: "warm", value: "x" }); // metadata cached
    await expect(
      producer.send("t", [
        { key: "ok1", value: "a" },
        { key: "bad", value: "b" },
        { key: "ok2", value: "c" },
      ]),
    ).rejects.toThrow(/no partition/);
    await producer.flush();
    expect(producer.bufferedBytes).toBe(0);
    expect(values(0)).toEqual(["x"]);
    // The buffer bound still holds its full size: a send of nearly bufferBytes goes through.
    await producer.send("t", { key: "big", value: Buffer.alloc(9_970) });
    expect(producer.bufferedBytes).toBe(0);
  });

  it("a partitioner's out-of-range answer is refused before it corrupts the request", async () => {
    // Ensures -1 (or numPartitions) fails the send naming the answer instead of encoding a bad varint.
    for (const answer of [-1, 3]) {
      const producer = client.producer({ partitioner: { partition: () => answer } });
      const err = await producer.send("t", { key: "k", value: "v" }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(String(err)).toContain(`the partitioner returned ${answer} for a record of topic "t"`);
      expect(String(err)).not.toMatch(/malformed|wire type|parse/i);
      expect(producer.bufferedBytes).toBe(0);
    }
    expect(fake.produceCalls).toHaveLength(0);
  });

  it("a partitioner's fractional answer is not reported as the record's partition", async () => {
    // Ensures 1.5 is refused rather than resolving { partition: 1.5 } for a record sent to 1.
    const producer = client.producer({ partitioner: { partition: () => 1.5 } });
    const res = await producer.send("t", { key: "k", value: "v" }).catch((e: Error) => e);
    expect(res).toBeInstanceOf(InvalidArgumentError);
    expect(String(res)).toContain("the partitioner returned 1.5");
  });

  it("refuses NaN and non-number answers, naming them", async () => {
    // Ensures answers that would slip past the per-partition ordering guard fail the send.
    for (const [answer, shown] of [
      [Number.NaN, "NaN"],
      ["1", "'1'"],
      [undefined, "undefined"],
    ] as const) {
      const producer = client.producer({ partitioner: { partition: () => answer as unknown as number } });
      const err = await producer.send("t", { key: "k", value: "v" }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(String(err)).toContain(`the partitioner returned ${shown} for`);
    }
    expect(fake.produceCalls).toHaveLength(0);
  });

  it("refuses an explicit partition that is not an int32 even for an unknown topic", async () => {
    // Ensures a named partition is checked like the partitioner's answer before it is encoded.
    const producer = client.producer();
    for (const partition of [2 ** 31, 1.5, -1]) {
      await expect(producer.send("t", { value: "x", partition })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    expect(producer.bufferedBytes).toBe(0);
  });

  it("a failed send's state never becomes an unhandled rejection", async () => {
    // Ensures a SendState failed with nobody awaiting it cannot crash the process (Node >= 15).
    const state = new SendState(1);
    state.fail(new Error("nobody listens"));
    await new Promise((r) => setTimeout(r, 10));
    await expect(state.promise).rejects.toThrow("nobody listens");
  });
});

describe("client > producer > buffer bound", () => {
  it("counts sends waiting for the partition-count lookup toward bufferBytes", async () => {
    // Ensures `writable` goes false while metadata is pending, so a reader stops reading input.
    const answers: (() => void)[] = [];
    fake.metadataHandler = (req, cb) =>
      answers.push(() =>
        cb(null, {
          clusterId: "fake",
          brokers: [],
          topics: req.topics.map((topic) => ({
            topic,
            partitions: [0, 1, 2].map((p) => ({ partition: p, leaderId: 1 })),
          })),
        }),
      );
    const producer = client.producer({ bufferBytes: 1_000 });
    const sends: Promise<unknown>[] = [];
    while (producer.writable && sends.length < 20) {
      const p = producer.send("t", { value: Buffer.alloc(100) });
      p.catch(() => {}); // awaited below; never unhandled if an assertion fails first
      sends.push(p);
    }
    // 116 bytes a send: the 9th would pass 1000, so it waits for room and writable turns false.
    expect(sends).toHaveLength(9);
    expect(producer.writable).toBe(false);
    expect(producer.bufferedBytes).toBe(8 * 116);
    let drained = false;
    void producer.waitWritable().then(() => {
      drained = true;
    });
    // The lookup has not been answered: nothing frees up however long we wait.
    while (answers.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(producer.writable).toBe(false);
    expect(drained).toBe(false);
    for (const answer of answers.splice(0)) answer();
    await producer.flush();
    await Promise.all(sends);
    expect(producer.bufferedBytes).toBe(0);
    expect(producer.writable).toBe(true);
    expect(drained).toBe(true);
  });

  it("gives back the bytes of a send whose lookup fails", async () => {
    // Ensures a failed partition-count lookup releases the send's reservation.
    fake.metadataHandler = (_req, cb) => cb({ code: status.PERMISSION_DENIED, details: "no" });
    const producer = client.producer({ bufferBytes: 1_000 });
    const p = producer.send("t", { value: Buffer.alloc(500) });
    expect(producer.bufferedBytes).toBeGreaterThan(500);
    await expect(p).rejects.toThrow(/no/);
    expect(producer.bufferedBytes).toBe(0);
    expect(producer.writable).toBe(true);
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
