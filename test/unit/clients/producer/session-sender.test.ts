/**
 * The producer's per-batch mode (`acks: "per-batch"`, session-sender.ts) against a scripted broker:
 * acknowledgements per batch, refusals, resends after a broken session or a retriable refusal, the
 * answer timeout, the in-flight bound, and the request framing.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProduceRequest, ProduceSessionRequest } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import {
  BrokerUnavailableError,
  createClient,
  type RillClient,
  TopicNotFoundError,
} from "../../../../clients/ts/src/index.js";
import { encodeSessionRequest } from "../../../../clients/ts/src/producer/session-sender.js";
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
const sequences = (i: number) => fake.sessions[i]!.map((r) => Number(r.sequence));
const until = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** From now on the fake broker answers each ProduceSession request only when its function is called. */
function holdAnswers(): (() => void)[] {
  const held: (() => void)[] = [];
  fake.sessionHandler = (call, _requests, r) =>
    held.push(() =>
      call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } }),
    );
  return held;
}

/** The values of each request of the first session after its first (a warm-up batch). */
const recordsAfterWarmUp = () =>
  fake.sessions[0]!.slice(1).map((r) => r.produce!.records!.records.map((x) => x.value.toString()));

describe("client > producer > per-batch acks", () => {
  it("resolves each send from its own answer, on one session, without waiting for the others", async () => {
    // Ensures one long-lived session carries every batch, with increasing sequence numbers, and a
    // send resolves as soon as its batch is answered, while a later batch is still unanswered.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    const first = await producer.send("t", { value: "a", partition: 0 });
    expect(first).toEqual([{ topic: "t", partition: 0, offset: 0n }]);
    const held: (() => void)[] = [];
    fake.sessionHandler = (call, _requests, r) =>
      held.push(() =>
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } }),
      );
    const b = producer.send("t", { value: "b", partition: 1 });
    const c = producer.send("t", { value: "c", partition: 2 });
    await until(() => held.length === 2);
    held[0]!();
    await expect(b).resolves.toEqual([{ topic: "t", partition: 1, offset: 0n }]);
    let cDone = false;
    void c.then(() => {
      cDone = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(cDone).toBe(false);
    held[1]!();
    await expect(c).resolves.toEqual([{ topic: "t", partition: 2, offset: 0n }]);
    await producer.close();
    expect(fake.sessions).toHaveLength(1);
    expect(sequences(0)).toEqual([1, 2, 3]);
  });

  it("treats an answer out of order as a broken broker and fails the unanswered batches", async () => {
    // Ensures answers are matched by sequence against the oldest unanswered batch: a mismatch is
    // never taken as some other batch's acknowledgement.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    const held: { r: { sequence: bigint } }[] = [];
    fake.sessionHandler = (call, requests, r) => {
      held.push({ r });
      if (requests.length === 2)
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } });
    };
    const a = producer.send("t", { value: "a", partition: 0 });
    const b = producer.send("t", { value: "b", partition: 1 });
    a.catch(() => {});
    b.catch(() => {});
    await expect(a).rejects.toThrow(/answered sequence 2, expected 1/);
    await expect(b).rejects.toThrow(/answered sequence 2, expected 1/);
    await producer.close();
  });

  it("pipelines many batches of a partition and keeps their order", async () => {
    // Ensures batches of one partition are in flight together (not one at a time) and land in order.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0, batchBytes: 64 });
    let maxUnanswered = 0;
    const pending: (() => void)[] = [];
    fake.sessionHandler = (call, _requests, r) => {
      pending.push(() =>
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } }),
      );
      maxUnanswered = Math.max(maxUnanswered, pending.length);
      if (pending.length >= 10) for (const answer of pending.splice(0)) answer();
    };
    const sends = Array.from({ length: 40 }, (_, i) =>
      producer.send("t", { value: `v${i}`.padEnd(50, "-"), partition: 0 }),
    );
    await Promise.all(sends);
    await producer.close();
    expect(maxUnanswered).toBe(10);
    expect(values(0).map((v) => v.replace(/-+$/, ""))).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`));
  });

  it("rejects only the sends of a refused batch and goes on", async () => {
    // Ensures a non-retriable per-batch error fails that batch's sends, as its error class, and the
    // batches after it on the same session are still appended.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    fake.sessionHandler = (call, _requests, r) => {
      if (r.produce!.records!.records[0]!.value.toString() === "bad") {
        call.write({
          sequence: r.sequence,
          outcome: { $case: "error", value: { code: status.NOT_FOUND, message: "no such partition" } },
        });
        return;
      }
      call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } });
    };
    const a = producer.send("t", { value: "a", partition: 0 });
    const bad = producer.send("t", { value: "bad", partition: 1 });
    bad.catch(() => {});
    await producer.flush();
    const c = producer.send("t", { value: "c", partition: 1 });
    await expect(a).resolves.toHaveLength(1);
    await expect(bad).rejects.toBeInstanceOf(TopicNotFoundError);
    await expect(bad).rejects.toThrow(/no such partition/);
    await expect(c).resolves.toEqual([{ topic: "t", partition: 1, offset: 0n }]);
    await producer.close();
    expect(fake.sessions).toHaveLength(1);
  });

  it("resends a batch refused with a retriable status, holding back its partition", async () => {
    // Ensures a per-batch UNAVAILABLE is retried after a backoff and the partition's later batches
    // (not yet sent) wait behind it, so the partition's order holds.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    let refused = false;
    fake.sessionHandler = (call, _requests, r) => {
      if (!refused) {
        refused = true;
        call.write({
          sequence: r.sequence,
          outcome: { $case: "error", value: { code: status.UNAVAILABLE, message: "partition closing" } },
        });
        return;
      }
      call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } });
    };
    const first = producer.send("t", { value: "1", partition: 0 });
    await until(() => refused);
    const second = producer.send("t", { value: "2", partition: 0 });
    await expect(first).resolves.toHaveLength(1);
    await expect(second).resolves.toHaveLength(1);
    await producer.close();
    expect(values(0)).toEqual(["1", "2"]);
    expect(fake.sessions[0]!.map((r) => r.produce!.records!.records[0]!.value.toString())).toEqual([
      "1",
      "1",
      "2",
    ]);
  });

  it("resends the unanswered batches on a new session when the session breaks", async () => {
    // Ensures a broken session (UNAVAILABLE: a drain) loses nothing: the batches it had not
    // answered go out again, in order, on the next session (here the broker had not appended them).
    const producer = client.producer({ acks: "per-batch", lingerMs: 0, batchBytes: 64 });
    fake.sessionHandler = (call, requests, r) => {
      if (requests.length <= 3) {
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } });
      } else if (requests.length === 6) {
        call.emit("error", { code: status.UNAVAILABLE, details: "the broker is shutting down" });
      }
    };
    const sends = Array.from({ length: 6 }, (_, i) =>
      producer.send("t", { value: `v${i}`.padEnd(50, "-"), partition: 0 }),
    );
    await until(() => fake.sessions.length === 2);
    fake.sessionHandler = undefined;
    const results = await Promise.all(sends);
    await producer.close();
    expect(results.map((r) => r[0]!.offset)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(values(0).map((v) => v.replace(/-+$/, ""))).toEqual(["v0", "v1", "v2", "v3", "v4", "v5"]);
    expect(
      fake.sessions[1]!.map((r) => r.produce!.records!.records[0]!.value.toString().replace(/-+$/, "")),
    ).toEqual(["v3", "v4", "v5"]);
  });

  it("gives up a session whose oldest batch gets no answer within requestTimeoutMs", async () => {
    // Ensures a broker that stops answering does not hang the producer: the session is cancelled
    // and the batch resent on a new one.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0, requestTimeoutMs: 100 });
    fake.sessionHandler = () => {}; // never answers
    const send = producer.send("t", { value: "x", partition: 0 });
    await until(() => fake.sessions.length === 1 && fake.sessions[0]!.length === 1);
    fake.sessionHandler = undefined;
    await expect(send).resolves.toEqual([{ topic: "t", partition: 0, offset: 0n }]);
    await producer.close();
    expect(fake.sessions).toHaveLength(2);
  });

  it("fails the unanswered batches when the session ends with a non-retriable status", async () => {
    // Ensures e.g. PERMISSION_DENIED or UNIMPLEMENTED (an old broker) fails the sends instead of
    // retrying forever.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    fake.sessionHandler = (call) =>
      call.emit("error", { code: status.UNIMPLEMENTED, details: "unknown method" });
    await expect(producer.send("t", { value: "x", partition: 0 })).rejects.toThrow(/unknown method/);
    await producer.close();
  });

  it("sends a batch whose linger ran out while the session was full once the session breaks", async () => {
    // Ensures a batch left open for want of room is not forgotten when room comes from a broken
    // session (its unanswered batch failed, nothing resent) rather than from an answer.
    const producer = client.producer({ acks: "per-batch", lingerMs: 5, maxInFlightBatches: 1 });
    await producer.send("t", { value: "warm", partition: 0 });
    let held: (() => void) | undefined;
    fake.sessionHandler = (call) => {
      held = () => call.emit("error", { code: status.PERMISSION_DENIED, details: "not allowed" });
    };
    const first = producer.send("t", { value: "a", partition: 0 });
    await until(() => held !== undefined);
    const second = producer.send("t", { value: "b", partition: 1 });
    await new Promise((r) => setTimeout(r, 40)); // its linger runs out while "a" fills the session
    fake.sessionHandler = undefined;
    held!();
    await expect(first).rejects.toThrow(/not allowed/);
    await expect(second).resolves.toEqual([{ topic: "t", partition: 1, offset: 0n }]);
    expect(values(1)).toEqual(["b"]);
    await producer.close();
  });

  it("keeps a partition's batch filling past its linger while its previous batch is unanswered", async () => {
    // Ensures one batch short of batchBytes per partition is in flight: records that arrive while a
    // partition waits for an answer go out together once it comes, not as a batch per linger (which
    // collapsed throughput over 1,000 partitions), and another partition is not held back meanwhile.
    const producer = client.producer({ acks: "per-batch", lingerMs: 5 });
    await producer.send("t", { value: "warm", partition: 0 });
    const held = holdAnswers();
    const sends = [producer.send("t", { value: "a", partition: 0 })];
    await until(() => held.length === 1);
    for (const v of ["b", "c", "d"]) {
      sends.push(producer.send("t", { value: v, partition: 0 }));
      await new Promise((r) => setTimeout(r, 10)); // each past the linger of the one before
    }
    sends.push(producer.send("t", { value: "x", partition: 1 }));
    await until(() => held.length === 2); // partition 1 is not held behind partition 0
    await new Promise((r) => setTimeout(r, 20));
    expect(recordsAfterWarmUp()).toEqual([["a"], ["x"]]);
    held[0]!();
    await until(() => held.length === 3);
    expect(recordsAfterWarmUp()).toEqual([["a"], ["x"], ["b", "c", "d"]]);
    for (const answer of held.slice(1)) answer();
    await Promise.all(sends);
    expect(values(0)).toEqual(["warm", "a", "b", "c", "d"]);
    await producer.close();
  });

  it("also holds a partition whose sealed batch waits for room in the session", async () => {
    // Ensures that with more partitions than maxInFlightBatches a partition with a batch sealed and
    // not sent yet keeps its next batch filling too, instead of sealing one per linger behind it.
    const producer = client.producer({ acks: "per-batch", lingerMs: 5, maxInFlightBatches: 1 });
    await producer.send("t", { value: "warm", partition: 0 });
    const held = holdAnswers();
    const pause = () => new Promise((r) => setTimeout(r, 15)); // past the linger
    const sends = [producer.send("t", { value: "a", partition: 0 })];
    await until(() => held.length === 1);
    sends.push(
      producer.send("t", { value: "b", partition: 1 }),
      producer.send("t", { value: "c", partition: 2 }),
    );
    await pause();
    held[0]!(); // room for one: "b" and "c" are sealed, "b" is sent, "c" waits
    await until(() => held.length === 2);
    sends.push(producer.send("t", { value: "d", partition: 2 }));
    await pause();
    held[1]!(); // room again: "c" is sent; "d" keeps filling behind it
    await until(() => held.length === 3);
    sends.push(producer.send("t", { value: "e", partition: 2 }));
    await pause();
    held[2]!();
    await until(() => held.length === 4);
    held[3]!();
    await Promise.all(sends);
    expect(recordsAfterWarmUp()).toEqual([["a"], ["b"], ["c"], ["d", "e"]]);
    await producer.close();
  });

  it("gives up after the bounded number of attempts", async () => {
    // Ensures a broker that keeps breaking sessions fails the send with the last retriable error.
    const producer = client.producer({ acks: "per-batch", lingerMs: 0, retry: { maxAttempts: 3 } });
    fake.sessionHandler = (call) => call.emit("error", { code: status.UNAVAILABLE, details: "down" });
    await expect(producer.send("t", { value: "x", partition: 0 })).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    expect(fake.sessions).toHaveLength(3);
    await producer.close();
  });

  it("keeps at most maxInFlightBatches batches unanswered", async () => {
    // Ensures the client-side bound: with answers held, no more than the bound is written.
    const producer = client.producer({
      acks: "per-batch",
      lingerMs: 0,
      batchBytes: 64,
      maxInFlightBatches: 3,
    });
    const pending: (() => void)[] = [];
    fake.sessionHandler = (call, _requests, r) =>
      pending.push(() =>
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: fake.append(r.produce!) } }),
      );
    const sends = Array.from({ length: 10 }, (_, i) =>
      producer.send("t", { value: `v${i}`.padEnd(50, "-"), partition: i % 3 }),
    );
    await until(() => pending.length === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.sessions[0]).toHaveLength(3);
    fake.sessionHandler = undefined;
    for (const answer of pending.splice(0)) answer();
    await Promise.all(sends);
    await producer.close();
    expect(fake.sessions[0]).toHaveLength(10);
  });

  it("half-closes its session on close", async () => {
    // Ensures close() ends the session cleanly (the broker sees the half-close and ends it OK).
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    await producer.send("t", { value: "x", partition: 0 });
    expect(fake.sessionsHalfClosed).toBe(0);
    await producer.close();
    expect(fake.sessions).toHaveLength(1);
    expect(fake.sessionsHalfClosed).toBe(1);
  });
});

describe("client > producer > session request framing", () => {
  it("wraps the kept ProduceRequest bytes as the generated decoder reads them", () => {
    // Ensures encodeSessionRequest writes sequence and produce exactly as ProduceSessionRequest.encode.
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.maxSafeNat()),
        fc.string({ maxLength: 40 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.uint8Array({ maxLength: 300 }),
        (sequence, topic, partition, value) => {
          const produce = {
            topic,
            partition,
            records: {
              records: [
                { key: Buffer.alloc(0), value: Buffer.from(value), headers: [], timestampMs: undefined },
              ],
            },
            compression: 0,
            compressedRecords: Buffer.alloc(0),
            recordCount: 0,
            durability: 0,
          };
          const inner = ProduceRequest.encode(produce).finish();
          const ours = encodeSessionRequest(sequence, inner);
          const generated = Buffer.from(
            ProduceSessionRequest.encode({ sequence: BigInt(sequence), produce }).finish(),
          );
          expect(ours.equals(generated)).toBe(true);
          const decoded = ProduceSessionRequest.decode(ours);
          expect(decoded.sequence).toBe(BigInt(sequence));
          expect(decoded.produce?.topic).toBe(topic);
        },
      ),
      { numRuns: 300 },
    );
  });
});
