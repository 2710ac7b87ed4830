/**
 * Per-principal byte-rate quotas against a real broker: over its quota a principal is slowed
 * (throttled), never failed. Bounds are LOWER bounds only (no upper bound, nothing about speed): a
 * 1 MiB/s principal moving 3 MiB past its 1 MiB burst needs at least 2 s. The principal without a
 * quota is checked through the broker's throttle counter (it never waits), not by timing. Debt
 * carries across calls (a new Produce or Fetch waits it out before it moves bytes; cancelled, it
 * moves nothing) and a graceful shutdown ends every wait.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProduceSessionResponse } from "../../clients/ts/src/gen/rill/v1/log.js";
import type { Quotas } from "../../server/src/rpc/auth/quota.js";
import { type AuthFiles, type AuthStubs, authStubs, writeAuthFiles } from "./helpers/auth.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { api, fetchAll, produce, produceRequest, record } from "./helpers/grpc.js";

const MiB = 1024 * 1024;
const BATCH_VALUE = 64 * 1024;
const BATCHES = 48; // 3 MiB of values
/** (3 MiB - 1 MiB burst) / 1 MiB/s, minus 5% for timer granularity: a lower bound only. */
const MIN_THROTTLED_MS = 1900;

const T = {
  alice: "alice-token-111111111111",
  bob: "bob-token-22222222222222",
  carol: "carol-token-333333333333",
};

let files: AuthFiles;
let tb: TestBroker;
let alice: AuthStubs;
let bob: AuthStubs;
let quotas: Quotas;

beforeAll(async () => {
  files = await writeAuthFiles(
    [
      { token: T.alice, principal: "alice" },
      { token: T.bob, principal: "bob" },
      { token: T.carol, principal: "carol" },
    ],
    [{ principal: "*", resource: "topic", pattern: "*", operations: ["all"] }],
    // alice: the broker's default produce quota, a fetch quota from the file; bob: lifted to -1.
    // carol: 1 KiB/s, so one 64 KiB batch puts her a minute in debt.
    {
      alice: { fetchBytesPerSecond: MiB },
      bob: { produceBytesPerSecond: -1 },
      carol: { produceBytesPerSecond: 1024 },
    },
  );
  tb = await startTestBroker({
    authTokensFile: files.tokensFile,
    authAclFile: files.aclFile,
    quotaProduceBytesPerSecond: MiB,
    metricsPort: 0,
  });
  quotas = tb.broker.server.context.auth!.quotas!;
  alice = authStubs(tb.address, { token: T.alice });
  bob = authStubs(tb.address, { token: T.bob });
});

afterAll(async () => {
  alice?.close();
  bob?.close();
  await tb?.stop();
  await files?.cleanup();
});

function batches(topic: string, tag: string) {
  return Array.from({ length: BATCHES }, (_, i) =>
    produceRequest(topic, 0, [record(Buffer.alloc(BATCH_VALUE, i), `${tag}-${i}`)]),
  );
}

describe("integration > quota > produce", () => {
  it("slows a 1 MiB/s principal producing 3 MiB to at least 2 s, and accepts every batch", async () => {
    // Ensures "throttle, don't fail": all 48 batches get offsets, and the stream took >= ~2 s.
    const before = quotas.throttledMs.produce;
    const started = performance.now();
    const out = await produce(alice.log, batches("q-alice", "a"));
    const elapsed = performance.now() - started;
    expect(out.error).toBeUndefined();
    expect(out.response!.results.map((r) => r.baseOffset)).toEqual(
      Array.from({ length: BATCHES }, (_, i) => BigInt(i)),
    );
    expect(elapsed).toBeGreaterThanOrEqual(MIN_THROTTLED_MS);
    // Waited (the counter excludes time spent appending, which also refills the bucket).
    expect(quotas.throttledMs.produce - before).toBeGreaterThan(0);
  });

  it("slows a ProduceSession the same way and answers every batch with a result", async () => {
    // Ensures the session path (same appendBatch) throttles rather than failing batches.
    const call = alice.log.produceSession();
    const answers: ProduceSessionResponse[] = [];
    const started = performance.now();
    const done = new Promise<ServiceError | undefined>((resolve) => {
      call.on("data", (r: ProduceSessionResponse) => answers.push(r));
      call.on("error", (e: ServiceError) => resolve(e));
      call.on("end", () => resolve(undefined));
    });
    batches("q-alice-session", "s").forEach((produce, i) => {
      call.write({ sequence: BigInt(i), produce });
    });
    call.end();
    expect(await done).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(MIN_THROTTLED_MS);
    expect(answers.map((a) => a.outcome?.$case)).toEqual(Array(BATCHES).fill("result"));
  });

  it("never makes a principal whose quota the ACL file lifts (-1) wait", async () => {
    // Ensures the override beats the default: bob's 3 MiB add nothing to the throttle counter.
    const before = quotas.throttledMs.produce;
    const out = await produce(bob.log, batches("q-bob", "b"));
    expect(out.error).toBeUndefined();
    expect(out.response!.results).toHaveLength(BATCHES);
    expect(quotas.throttledMs.produce).toBe(before);
  });
});

describe("integration > quota > cancellation", () => {
  it("ends a throttled Produce as soon as its client cancels, not when the debt is paid", async () => {
    // Ensures quota waits are bounded by the call's life: a minute of debt, cancelled, frees the
    // broker's handler within seconds (polled, bounded).
    const carol = authStubs(tb.address, { token: T.carol });
    try {
      const before = quotas.throttledMs.produce;
      const call = carol.log.produce(() => {});
      call.write(produceRequest("q-carol", 0, [record(Buffer.alloc(BATCH_VALUE, 1))]));
      const inflight = tb.broker.server.context.inflight;
      await until(() => quotas.throttledMs.produce > before, "carol's batch to be throttled");
      expect(inflight.size).toBeGreaterThan(0);
      call.cancel();
      await until(() => inflight.size === 0, "the cancelled Produce's handler to end");
    } finally {
      carol.close();
    }
  });
});

describe("integration > quota > debt across calls", () => {
  it("makes a new Produce call wait out its principal's debt before its batch is written", async () => {
    // Ensures the quota cannot be skipped by opening a new call per batch (or many in parallel)
    // and abandoning it: carol's first 64 KiB at 1 KiB/s is a minute of debt; her second call's
    // batch must wait for it, so cancelling that call leaves it unwritten. (Were the debt checked
    // only after each append, every new call would append at once, at any rate.)
    const own = await startTestBroker({ authTokensFile: files.tokensFile, authAclFile: files.aclFile });
    const carol = authStubs(own.address, { token: T.carol });
    const admin = authStubs(own.address, { token: T.alice });
    try {
      const ownQuotas = own.broker.server.context.auth!.quotas!;
      const inflight = own.broker.server.context.inflight;
      const first = carol.log.produce(() => {});
      first.write(produceRequest("q-carol-debt", 0, [record(Buffer.alloc(BATCH_VALUE, 3))]));
      await until(() => ownQuotas.throttledMs.produce > 0, "the first batch to be throttled");
      const charged = ownQuotas.throttledMs.produce;
      const second = carol.log.produce(() => {});
      second.write(produceRequest("q-carol-debt", 0, [record(Buffer.alloc(BATCH_VALUE, 4))]));
      await until(() => ownQuotas.throttledMs.produce > charged, "the second call to be throttled");
      second.cancel();
      first.cancel();
      await until(() => inflight.size === 0, "both Produce handlers to end");
      const offsets = await api(admin).listOffsets({
        topic: "q-carol-debt",
        partitions: [0],
        timestampMs: undefined,
      });
      expect(offsets.partitions[0]!.latest).toBe(1n); // the first batch only
    } finally {
      carol.close();
      admin.close();
      await own.stop();
    }
  });
});

describe("integration > quota > fetch debt across calls", () => {
  it("makes a new Fetch call wait out its principal's debt before it reads", async () => {
    // Ensures the fetch quota cannot be skipped with a new call per response: 1 KiB/s for everyone;
    // bob's first Fetch takes one 64 KiB batch (a minute of debt), so his second Fetch must send
    // nothing while the debt lasts (it is cancelled after 1 s of waiting, a bound, not a speed).
    const own = await startTestBroker({
      authTokensFile: files.tokensFile,
      authAclFile: files.aclFile,
      quotaFetchBytesPerSecond: 1024,
    });
    const bobOwn = authStubs(own.address, { token: T.bob });
    try {
      const ownQuotas = own.broker.server.context.auth!.quotas!;
      const topic = "q-bob-fetch-debt";
      const out = await produce(bobOwn.log, [
        produceRequest(topic, 0, [record(Buffer.alloc(BATCH_VALUE, 5))]),
        produceRequest(topic, 0, [record(Buffer.alloc(BATCH_VALUE, 6))]),
      ]);
      expect(out.error).toBeUndefined();
      const start = (offset: bigint) => ({
        topic,
        partition: 0,
        maxBytes: 1, // one batch per response
        follow: false,
        start: { $case: "offset" as const, value: offset },
      });
      const first = bobOwn.log.fetch(start(0n));
      const firstData: unknown[] = [];
      first.on("data", (r) => firstData.push(r));
      first.on("error", () => {});
      await until(() => ownQuotas.throttledMs.fetch > 0 && firstData.length > 0, "the first fetch's debt");
      const charged = ownQuotas.throttledMs.fetch;
      const second = bobOwn.log.fetch(start(1n));
      const secondData: unknown[] = [];
      second.on("data", (r) => secondData.push(r));
      second.on("error", () => {});
      await until(() => ownQuotas.throttledMs.fetch > charged, "the second fetch to be throttled");
      await new Promise((r) => setTimeout(r, 1000));
      expect(secondData).toEqual([]);
      second.cancel();
      first.cancel();
    } finally {
      bobOwn.close();
      await own.stop();
    }
  });
});

describe("integration > quota > shutdown", () => {
  it("ends quota waits when the broker drains, so a throttled Produce gets its answer, not a cancel", async () => {
    // Ensures a throttled principal cannot hold a graceful shutdown until its deadline: carol's
    // 64 KiB at 1 KiB/s is a minute of debt; shutdown.timeout.ms is 20 s. The drain must release
    // the wait (her stream was half-closed, so the handler then answers OK with the batch's
    // offset); without that the broker cancels the call at the deadline (CANCELLED/UNAVAILABLE).
    const own = await startTestBroker({
      authTokensFile: files.tokensFile,
      authAclFile: files.aclFile,
      shutdownTimeoutMs: 20_000,
    });
    const carol = authStubs(own.address, { token: T.carol });
    try {
      const ownQuotas = own.broker.server.context.auth!.quotas!;
      let answer: { err: ServiceError | null; offsets?: bigint[] } | undefined;
      const call = carol.log.produce((err, res) => {
        answer = { err, offsets: res?.results.map((r) => r.baseOffset) };
      });
      call.write(produceRequest("q-carol-drain", 0, [record(Buffer.alloc(BATCH_VALUE, 2))]));
      call.end();
      await until(() => ownQuotas.throttledMs.produce > 0, "carol's batch to be throttled");
      const stopped = own.broker.shutdown();
      await until(() => answer !== undefined, "the throttled Produce to be answered during the drain");
      expect(answer!.err?.code).toBeUndefined();
      expect(answer!.offsets).toEqual([0n]);
      await stopped;
    } finally {
      carol.close();
      await own.stop();
    }
  });
});

/** Polls `check` every 20 ms for at most 5 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after 5 s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("integration > quota > fetch", () => {
  it("slows a 1 MiB/s principal fetching 3 MiB in one response to at least 2 s, and delivers every record", async () => {
    // Ensures the fetch side throttles (delays the next step) rather than failing or dropping, and
    // that a response larger than a second's worth is paid in full, not capped at one 1 s wait.
    const before = quotas.throttledMs.fetch;
    const started = performance.now();
    // max_bytes 4 MiB: one read takes all 3 MiB, 3x the rate; the 2 MiB debt still costs 2 s.
    const read = await fetchAll(alice.log, { topic: "q-bob", maxBytes: 4 * MiB });
    const elapsed = performance.now() - started;
    expect(read.error).toBeUndefined();
    const keys = read.responses.flatMap((r) =>
      r.batches.flatMap((b) => b.records!.records.map((x) => x.key.toString())),
    );
    expect(keys).toEqual(Array.from({ length: BATCHES }, (_, i) => `b-${i}`));
    expect(elapsed).toBeGreaterThanOrEqual(MIN_THROTTLED_MS);
    expect(quotas.throttledMs.fetch - before).toBeGreaterThan(0);
  });

  it("does not throttle a principal without a fetch quota, and reports waits in /metrics", async () => {
    // Ensures bob (no fetch quota anywhere) never waits, and the counter is exported.
    const before = quotas.throttledMs.fetch;
    const read = await fetchAll(bob.log, { topic: "q-alice", maxBytes: BATCH_VALUE + 1024 });
    expect(read.error).toBeUndefined();
    expect(read.responses.reduce((n, r) => n + r.batches.length, 0)).toBe(BATCHES);
    expect(quotas.throttledMs.fetch).toBe(before);
    const text = await (await fetch(`http://${tb.broker.metricsAddress}/metrics`)).text();
    const m = /rill_quota_throttle_seconds_total\{kind="fetch"\} ([\d.e+-]+)/.exec(text);
    expect(m, text.slice(0, 500)).not.toBeNull();
    expect(Number(m![1])).toBeCloseTo(quotas.throttledMs.fetch / 1000, 3);
    expect(Number(m![1])).toBeGreaterThan(0);
  });
});
