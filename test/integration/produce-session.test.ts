/**
 * LogService.ProduceSession against a real broker: pipelined per-batch answers in order, per-batch
 * errors that leave the stream open, FSYNCED/WRITTEN ordering, the in-flight bound, drain, and the
 * TS producer's per-batch mode.
 */
import { connect } from "node:http2";
import { type ClientDuplexStream, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RillClient } from "../../clients/ts/src/client.js";
import {
  Durability,
  type ProduceRequest,
  ProduceSessionRequest,
  ProduceSessionResponse,
} from "../../clients/ts/src/gen/rill/v1/log.js";
import { encodeSessionResult } from "../../server/src/rpc/codecs/produce-session.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { api, fetchAll, produceRequest, record, type Stubs, stubs, values } from "./helpers/grpc.js";

let tb: TestBroker;
let s: Stubs;

beforeAll(async () => {
  tb = await startTestBroker({ topicDefaults: { maxBatchBytes: 64 * 1024 } });
  s = stubs(tb.address);
});

afterAll(async () => {
  s?.close();
  await tb?.stop();
});

type SessionStream = ClientDuplexStream<ProduceSessionRequest, ProduceSessionResponse>;

interface Session {
  call: SessionStream;
  answers: ProduceSessionResponse[];
  /** Resolves with the final status (code 0 when the stream ended OK). */
  ended: Promise<{ code: number; details: string }>;
  /** Resolves once `n` answers arrived (or the stream ended). */
  answered(n: number): Promise<void>;
  /** Writes the requests, waiting for `drain` when gRPC says its buffer is full. */
  send(requests: ProduceSessionRequest[]): Promise<void>;
}

function openSession(stubsToUse: Stubs = s, options: { read?: boolean } = {}): Session {
  const call = stubsToUse.log.produceSession();
  const answers: ProduceSessionResponse[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let finished = false;
  const check = () => {
    for (const w of [...waiters]) {
      if (finished || answers.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on("status", (st) => {
      finished = true;
      check();
      resolve({ code: st.code, details: st.details });
    });
  });
  call.on("error", () => {}); // the status carries it
  const listen = () =>
    call.on("data", (a: ProduceSessionResponse) => {
      answers.push(a);
      check();
    });
  if (options.read !== false) listen();
  return {
    call,
    answers,
    ended,
    answered: (n) =>
      new Promise<void>((resolve) => {
        waiters.push({ n, resolve });
        check();
      }),
    async send(requests) {
      for (const r of requests) {
        if (!call.write(r)) await new Promise((resolve) => call.once("drain", resolve));
      }
    },
  };
}

function req(sequence: number, produce: ProduceRequest): ProduceSessionRequest {
  return { sequence: BigInt(sequence), produce };
}

async function highWatermark(topic: string, partition = 0): Promise<bigint> {
  const r = await api(s).listOffsets({ topic, partitions: [partition], timestampMs: undefined });
  return r.partitions[0]!.latest;
}

describe("integration > produce session > pipelining", () => {
  it("answers 10k pipelined batches across partitions in order, with their sequences and offsets", async () => {
    // Ensures every request gets exactly one answer, in request order, echoing its sequence, and
    // that each partition's batches got dense offsets in stream order.
    const topic = randomTopic();
    const partitions = 4;
    await api(s).createTopic({ topic, partitions, config: undefined });
    const n = 10_000;
    const session = openSession();
    await session.send(
      Array.from({ length: n }, (_, i) =>
        req(i + 1, produceRequest(topic, i % partitions, [record(`v${i}`)])),
      ),
    );
    await session.answered(n);
    session.call.end();
    expect((await session.ended).code).toBe(status.OK);
    expect(session.answers).toHaveLength(n);
    const next = new Array<bigint>(partitions).fill(0n);
    session.answers.forEach((a, i) => {
      expect(a.sequence).toBe(BigInt(i + 1));
      expect(a.outcome?.$case).toBe("result");
      const o = a.outcome;
      const r = o?.$case === "result" ? o.value : undefined;
      expect(r!.topic).toBe(topic);
      expect(r!.partition).toBe(i % partitions);
      expect(r!.baseOffset).toBe(next[i % partitions]);
      expect(r!.recordCount).toBe(1);
      next[i % partitions]! += 1n;
    });
    for (let p = 0; p < partitions; p++) expect(await highWatermark(topic, p)).toBe(BigInt(n / partitions));
  });

  it("answers a refused batch with its error and keeps appending the later ones", async () => {
    // Ensures per-batch failures (unknown partition, over max.batch.bytes, bad records, bad topic)
    // are answered with the status Produce would give and do not end the stream.
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 1, config: undefined });
    const session = openSession();
    const broken = { ...produceRequest(topic, 0, []), records: undefined };
    await session.send([
      req(1, produceRequest(topic, 0, [record("a")])),
      req(2, produceRequest(topic, 5, [record("no such partition")])),
      req(3, produceRequest(topic, 0, [record(Buffer.alloc(100 * 1024, 1))])),
      req(4, produceRequest(topic, 0, [record("b")])),
      req(5, broken),
      req(6, produceRequest("../bad", 0, [record("x")])),
      req(7, produceRequest(topic, 0, [record("c")])),
    ]);
    await session.answered(7);
    session.call.end();
    expect((await session.ended).code).toBe(status.OK);
    const summary = session.answers.map((a) =>
      a.outcome?.$case === "result"
        ? [Number(a.sequence), "ok", Number(a.outcome.value.baseOffset)]
        : [Number(a.sequence), a.outcome?.value.code],
    );
    expect(summary).toEqual([
      [1, "ok", 0],
      [2, status.NOT_FOUND],
      [3, status.RESOURCE_EXHAUSTED],
      [4, "ok", 1],
      [5, status.INVALID_ARGUMENT],
      [6, status.INVALID_ARGUMENT],
      [7, "ok", 2],
    ]);
    const oversized = session.answers[2]!.outcome;
    expect(oversized?.$case === "error" && oversized.value.message).toMatch(/max\.batch\.bytes/);
    expect(values((await fetchAll(s.log, { topic })).responses)).toEqual(["a", "b", "c"]);
  });

  it("auto-creates a topic on its first batch", async () => {
    // Ensures auto.create.topics applies to sessions as to Produce.
    const topic = randomTopic("auto");
    const session = openSession();
    await session.send([req(1, produceRequest(topic, 0, [record("x")]))]);
    await session.answered(1);
    session.call.end();
    await session.ended;
    expect(session.answers[0]!.outcome?.$case).toBe("result");
    expect(await highWatermark(topic)).toBe(1n);
  });

  it("keeps stream order around a batch that waits for its topic to be created", async () => {
    // Ensures a batch appended later (its topic being auto-created) holds back the requests behind
    // it, which are otherwise appended at once: answers in request order, offsets in stream order.
    const created = randomTopic("auto-wait");
    const existing = randomTopic("existing");
    await api(s).createTopic({ topic: existing, partitions: 1, config: undefined });
    const session = openSession();
    const targets = [created, existing, created, existing, created];
    await session.send(targets.map((topic, i) => req(i + 1, produceRequest(topic, 0, [record(`v${i}`)]))));
    await session.answered(targets.length);
    session.call.end();
    expect((await session.ended).code).toBe(status.OK);
    const next = new Map<string, bigint>();
    session.answers.forEach((a, i) => {
      expect(a.sequence).toBe(BigInt(i + 1));
      const o = a.outcome;
      expect(o?.$case).toBe("result");
      const r = o?.$case === "result" ? o.value : undefined;
      expect(r!.topic).toBe(targets[i]);
      expect(r!.baseOffset).toBe(next.get(targets[i]!) ?? 0n);
      next.set(targets[i]!, (next.get(targets[i]!) ?? 0n) + 1n);
    });
    expect(await highWatermark(created)).toBe(3n);
  });

  it("keeps answers in order when FSYNCED and WRITTEN batches are mixed", async () => {
    // Ensures a WRITTEN batch's answer never overtakes the answer of an earlier FSYNCED batch that
    // still waits for its fsync.
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 2, config: undefined });
    const n = 2000;
    const session = openSession();
    await session.send(
      Array.from({ length: n }, (_, i) =>
        req(
          i + 1,
          produceRequest(topic, i % 2, [record(`v${i}`)], {
            durability: i % 3 === 0 ? Durability.DURABILITY_FSYNCED : Durability.DURABILITY_WRITTEN,
          }),
        ),
      ),
    );
    await session.answered(n);
    session.call.end();
    expect((await session.ended).code).toBe(status.OK);
    expect(session.answers.map((a) => Number(a.sequence))).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
    expect(session.answers.every((a) => a.outcome?.$case === "result")).toBe(true);
  });

  it("ends the stream with INVALID_ARGUMENT on an unreadable request, after answering the earlier ones", async () => {
    // Ensures a request whose envelope cannot be read (no sequence to answer with) ends the
    // stream, and only after the batches before it were answered.
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 1, config: undefined });
    const { LogServiceService } = await import("../../clients/ts/src/gen/rill/v1/log.js");
    const { makeGenericClientConstructor, credentials } = await import("@grpc/grpc-js");
    const Raw = makeGenericClientConstructor(
      { produceSession: { ...LogServiceService.produceSession, requestSerialize: (b: Buffer) => b } },
      "raw",
    );
    const raw = new Raw(tb.address, credentials.createInsecure()) as unknown as {
      produceSession(): ClientDuplexStream<Buffer, ProduceSessionResponse>;
      close(): void;
    };
    const call = raw.produceSession();
    const answers: ProduceSessionResponse[] = [];
    call.on("data", (a: ProduceSessionResponse) => answers.push(a));
    const ended = new Promise<ServiceError>((resolve) => call.on("error", resolve));
    const encode = (r: ProduceSessionRequest) => Buffer.from(ProduceSessionRequest.encode(r).finish());
    for (let i = 1; i <= 5; i++)
      call.write(
        encode(
          req(i, produceRequest(topic, 0, [record(`v${i}`)], { durability: Durability.DURABILITY_FSYNCED })),
        ),
      );
    call.write(Buffer.from([0x08, 0xff])); // a truncated sequence varint
    call.write(encode(req(7, produceRequest(topic, 0, [record("never")]))));
    const err = await ended;
    raw.close();
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/malformed ProduceSessionRequest/);
    expect(answers.map((a) => Number(a.sequence))).toEqual([1, 2, 3, 4, 5]);
    expect(await highWatermark(topic)).toBe(5n);
  });
});

describe("integration > produce session > lifecycle", () => {
  it("reports produced records and the call to the observer, like Produce", async () => {
    // Ensures metrics see session traffic: records per batch and one call ended OK.
    const topic = randomTopic();
    const produced: [string, number][] = [];
    const ended: [string, number][] = [];
    const ctx = tb.broker.server.context;
    const before = ctx.observer;
    ctx.observer = {
      started: () => {},
      ended: (_service, method, code) => ended.push([method, code]),
      produced: (t, records) => produced.push([t, records]),
      fetched: () => {},
    };
    try {
      const session = openSession();
      await session.send([
        req(1, produceRequest(topic, 0, [record("a"), record("b")])),
        req(2, produceRequest(topic, 0, [record("c")])),
      ]);
      await session.answered(2);
      session.call.end();
      await session.ended;
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      ctx.observer = before;
    }
    expect(produced).toEqual([
      [topic, 2],
      [topic, 1],
    ]);
    expect(ended).toContainEqual(["ProduceSession", status.OK]);
  });

  it("forgets a session its client cancels", async () => {
    // Ensures a cancelled session leaves no open stream or call behind (nothing for a drain to wait on).
    const topic = randomTopic();
    const ctx = tb.broker.server.context;
    const session = openSession();
    await session.send([req(1, produceRequest(topic, 0, [record("a")]))]);
    await session.answered(1);
    expect(ctx.streams.size).toBeGreaterThanOrEqual(1);
    session.call.cancel();
    expect((await session.ended).code).toBe(status.CANCELLED);
    for (let i = 0; i < 100 && (ctx.streams.size > 0 || ctx.inflight.size > 0); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(ctx.streams.size).toBe(0);
    expect(ctx.inflight.size).toBe(0);
  });
  it("ends the stream with RESOURCE_EXHAUSTED on a message over max.receive.message.bytes, and forgets it", async () => {
    // Ensures grpc-js's transport limit (a stream-level error: the message was never read) ends the
    // session cleanly: the status reaches the client and the handler leaves nothing open.
    const small = await startTestBroker({
      maxReceiveMessageBytes: 64 * 1024,
      topicDefaults: { maxBatchBytes: 32 * 1024 },
    });
    const c = stubs(small.address);
    try {
      const topic = randomTopic();
      const session = openSession(c);
      await session.send([req(1, produceRequest(topic, 0, [record("ok")]))]);
      await session.answered(1);
      await session.send([req(2, produceRequest(topic, 0, [record(Buffer.alloc(100 * 1024))]))]);
      const end = await session.ended;
      expect(end.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(end.details).toMatch(/larger than max/);
      const ctx = small.broker.server.context;
      for (let i = 0; i < 100 && (ctx.streams.size > 0 || ctx.inflight.size > 0); i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(ctx.streams.size).toBe(0);
      expect(ctx.inflight.size).toBe(0);
    } finally {
      c.close();
      await small.stop();
    }
  });
});

describe("integration > produce session > bounds", () => {
  it("stops reading a client that never reads its answers", async () => {
    // Ensures at most max.inflight.batches.per.session unanswered batches per stream: a client that
    // writes without reading (a raw HTTP/2 stream, paused: grpc-js clients buffer whatever arrives)
    // fills the HTTP/2 window with answers, then the broker stops reading it, so the batches
    // appended stay near the bound instead of reaching everything the client wrote.
    const bound = 50;
    const local = await startTestBroker({ maxInflightBatchesPerSession: bound });
    const ls = stubs(local.address);
    const h2 = connect(`http://${local.address}`);
    try {
      const topic = "b".repeat(200); // long: each answer is ~230 bytes, so few fit in the window
      const n = 5000;
      const stream = h2.request({
        ":method": "POST",
        ":path": "/rill.v1.LogService/ProduceSession",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.pause();
      for (let i = 0; i < n; i++) {
        const body = ProduceSessionRequest.encode(
          req(i + 1, produceRequest(topic, 0, [record(`v${i}`)])),
        ).finish();
        const frame = Buffer.alloc(5 + body.length);
        frame.writeUInt32BE(body.length, 1);
        frame.set(body, 5);
        stream.write(frame);
      }
      const hwm = async () =>
        (
          await api(ls)
            .listOffsets({ topic, partitions: [0], timestampMs: undefined })
            .catch(() => undefined)
        )?.partitions[0]?.latest ?? 0n;
      let stalled = -1n;
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await hwm();
        if (now === stalled && now > 0n) break;
        stalled = now;
      }
      const session = [...local.broker.server.context.streams][0]!;
      expect(session.blocked).toBe(true);
      // Appended = answered (those in the 64 KiB HTTP/2 window, plus the 16 grpc-js buffers) +
      // read and unanswered (the bound); some slack for framing.
      const answerBytes = encodeSessionResult(BigInt(n), {
        topic,
        partition: 0,
        baseOffset: BigInt(n),
        recordCount: 1,
        appendTimeMs: Date.now(),
      }).length;
      const inTransit = Math.ceil(65_535 / answerBytes) + 16;
      expect(stalled).toBeGreaterThanOrEqual(BigInt(bound));
      expect(stalled).toBeLessThanOrEqual(BigInt(bound + inTransit + 64));
      const stalledBytes = session.sentBytes;
      expect(stalledBytes).toBeLessThan(128 * 1024);
      await new Promise((r) => setTimeout(r, 300));
      expect(await hwm()).toBe(stalled); // still stopped, not polling
      // Reading again lets everything through, in order.
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      const trailers = new Promise<Record<string, unknown>>((resolve) => stream.once("trailers", resolve));
      stream.resume();
      stream.end();
      const grpcStatus = (await trailers)["grpc-status"];
      const all = Buffer.concat(chunks);
      const sequences: number[] = [];
      for (let at = 0; at < all.length; ) {
        const len = all.readUInt32BE(at + 1);
        sequences.push(Number(ProduceSessionResponse.decode(all.subarray(at + 5, at + 5 + len)).sequence));
        at += 5 + len;
      }
      expect(grpcStatus).toBe("0");
      expect(sequences).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(await hwm()).toBe(BigInt(n));
      console.log(
        `in-flight bound ${bound}: ${stalled} batches appended while the client did not read (${stalledBytes} bytes of answers)`,
      );
    } finally {
      h2.close();
      ls.close();
      await local.stop();
    }
  });

  it("answers the batches it read, then ends with UNAVAILABLE when the broker drains", async () => {
    // Ensures a drain stops reading, answers every batch it appended (FSYNCED ones after their
    // fsync), ends the stream with UNAVAILABLE, and that exactly the answered batches are in the log.
    const local = await startTestBroker();
    const ls = stubs(local.address);
    try {
      const topic = randomTopic();
      await api(ls).createTopic({ topic, partitions: 1, config: undefined });
      const session = openSession(ls);
      const n = 20_000;
      const writing = session.send(
        Array.from({ length: n }, (_, i) =>
          req(
            i + 1,
            produceRequest(topic, 0, [record(`v${i}`)], { durability: Durability.DURABILITY_FSYNCED }),
          ),
        ),
      );
      writing.catch(() => {});
      await session.answered(100);
      const answeredAtDrain = session.answers.length;
      const shutdown = local.broker.shutdown();
      const end = await session.ended;
      await shutdown;
      expect(end.code).toBe(status.UNAVAILABLE);
      const answered = session.answers.length;
      expect(answered).toBeGreaterThanOrEqual(100);
      expect(answered).toBeLessThan(n);
      expect(session.answers.map((a) => Number(a.sequence))).toEqual(
        Array.from({ length: answered }, (_, i) => i + 1),
      );
      expect(session.answers.every((a) => a.outcome?.$case === "result")).toBe(true);
      const restarted = await local.restart();
      const rs = stubs(restarted.address);
      try {
        const offsets = await api(rs).listOffsets({ topic, partitions: [0], timestampMs: undefined });
        expect(offsets.partitions[0]!.latest).toBe(BigInt(answered));
        console.log(`drain: ${answeredAtDrain} answered when it began, ${answered} when the stream ended`);
      } finally {
        rs.close();
        await restarted.stop();
      }
    } finally {
      ls.close();
      await local.stop().catch(() => {});
    }
  });
});

describe("integration > produce session > producer", () => {
  it("resends unanswered batches on a new session across a broker restart, losing nothing", async () => {
    // Ensures at-least-once through a drain: the session ends UNAVAILABLE, the producer resends
    // what had no answer once the broker is back (same port), and every send resolves; each
    // partition's records appear in send order when duplicates are dropped.
    let local = await startTestBroker();
    const port = local.broker.port;
    const resent: number[] = [];
    const client = new RillClient({
      brokers: [local.address],
      retry: { maxElapsedMs: 20_000, maxAttempts: 50 },
      log: (e) => {
        if (e.message.startsWith("produce session broken")) resent.push(e.fields.batches as number);
      },
    });
    try {
      const topic = randomTopic();
      const partitions = 2;
      const ls = stubs(local.address);
      await api(ls).createTopic({ topic, partitions, config: undefined });
      ls.close();
      const producer = client.producer({
        acks: "per-batch",
        batchBytes: 512,
        lingerMs: 1,
        durability: "fsynced",
      });
      const n = 4000;
      const sends: Promise<unknown>[] = [];
      let restarted: Promise<void> | undefined;
      for (let i = 0; i < n; i++) {
        sends.push(producer.send(topic, { value: `${i}`, partition: i % partitions }));
        if (i === n / 4) {
          restarted = (async () => {
            local = await local.restart({ listen: `127.0.0.1:${port}` });
          })();
        }
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      await restarted;
      await Promise.all(sends);
      await producer.close();
      expect(resent.length).toBeGreaterThanOrEqual(1); // a session broke with batches unanswered
      const rs = stubs(local.address);
      try {
        for (let p = 0; p < partitions; p++) {
          const got = values((await fetchAll(rs.log, { topic, partition: p })).responses).map(Number);
          const firstSeen = got.filter((v, i) => got.indexOf(v) === i);
          const want = Array.from({ length: n / partitions }, (_, k) => k * partitions + p);
          expect(firstSeen).toEqual(want);
        }
      } finally {
        rs.close();
      }
    } finally {
      await client.close();
      await local.stop();
    }
  });

  it("delivers every record exactly once, in order per partition, with acks per batch", async () => {
    // Ensures the producer's per-batch mode (one pipelined session) loses, duplicates and reorders
    // nothing, and resolves each send with its records' offsets.
    const topic = randomTopic();
    const partitions = 4;
    await api(s).createTopic({ topic, partitions, config: undefined });
    const client = new RillClient({ brokers: [tb.address] });
    try {
      const producer = client.producer({ acks: "per-batch", batchBytes: 2048, lingerMs: 1 });
      const n = 20_000;
      const sends: Promise<{ partition: number; offset: bigint }[]>[] = [];
      for (let i = 0; i < n; i++) {
        const p = i % partitions;
        sends.push(producer.send(topic, { value: `${p}:${i}`, partition: p }));
        if (!producer.writable) await producer.waitWritable();
      }
      const results = (await Promise.all(sends)).map((r) => r[0]!);
      await producer.close();
      const nextOffset = new Array<bigint>(partitions).fill(0n);
      results.forEach((r, i) => {
        expect(r.partition).toBe(i % partitions);
        expect(r.offset).toBe(nextOffset[r.partition]);
        nextOffset[r.partition]! += 1n;
      });
      for (let p = 0; p < partitions; p++) {
        const got = values((await fetchAll(s.log, { topic, partition: p })).responses);
        const want = Array.from({ length: n / partitions }, (_, k) => `${p}:${k * partitions + p}`);
        expect(got).toEqual(want);
      }
    } finally {
      await client.close();
    }
  });
});
