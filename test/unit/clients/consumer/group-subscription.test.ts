/**
 * Group subscription failure paths and protocol order, against a scripted GroupService
 * (fake-group-broker.ts): revocation order, the record in hand, lost memberships, refused commits,
 * out-of-range committed offsets, fatal join errors, close and abort.
 */
import { describe, expect, it } from "vitest";
import {
  type ConsumedRecord,
  FailedPreconditionError,
  InvalidArgumentError,
  type LogEntry,
  type RillClient,
  TopicNotFoundError,
} from "../../../../clients/ts/src/index.js";
import { type FakeGroupBroker, fill, message, status } from "./fake-group-broker.js";
import { sleep, text, until, useFakeGroupClient } from "./fake-group-client.js";

let fake: FakeGroupBroker;
let client: RillClient;
let logs: LogEntry[];

useFakeGroupClient((setup) => {
  ({ fake, client, logs } = setup);
});

describe("client > group subscription > protocol", () => {
  it("revokes in order: stop, drop queued records, commit processed, revoked, then release", async () => {
    // Ensures the revocation sequence and that it waits for the record in hand.
    fill(fake, "t", 0, 5);
    fill(fake, "t", 1, 5);
    const events: string[] = [];
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0, 1] }));
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onRevoked: () =>
        events.push(`revoked after ${fake.commits.length} commit, ${fake.releases.length} release`),
    });
    const it = sub[Symbol.asyncIterator]();
    const first = await it.next();
    const held = first.value as ConsumedRecord;
    expect(held.offset).toBe(0n);
    await until("both partitions fetched", () => fake.fetches.length === 2);
    await sleep(50); // let both partitions' batches reach the queue
    const p = held.partition;
    // Revoke the partition whose record the application holds.
    fake.joins[0]!.push(message("m1", 2, { t: [1 - p] }, { t: [p] }));
    await sleep(200);
    expect(fake.releases).toHaveLength(0); // not while the record is in hand
    expect(events).toEqual([]);
    const rest: ConsumedRecord[] = [];
    const next = await it.next(); // the held record is processed now; the revocation runs first
    rest.push(next.value as ConsumedRecord);
    for (let i = 0; i < 4; i++) rest.push((await it.next()).value as ConsumedRecord);
    // Nothing more of the revoked partition was handed out: its queued records were dropped.
    expect(rest.map((r) => r.partition)).toEqual([1 - p, 1 - p, 1 - p, 1 - p, 1 - p]);
    expect(fake.calls.filter((c) => c === "commit" || c === "release")).toEqual(["commit", "release"]);
    expect(fake.commits[0]!.offsets).toEqual([{ topic: "t", partition: p, offset: 1n, metadata: "" }]);
    expect(fake.commits[0]!.generationId).toBe(2n);
    expect(fake.commits[0]!.memberId).toBe("m1");
    expect(fake.releases[0]!.partitions).toEqual([{ topic: "t", partitions: [p] }]);
    expect(events).toEqual(["revoked after 1 commit, 0 release"]);
    expect(sub.assignment()).toEqual([{ topic: "t", partition: 1 - p }]);
    await sub.close();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it("keeps a partition the broker gives back before its revocation started", async () => {
    // Ensures a deferred revocation that a later rebalance cancels neither commits nor releases.
    fill(fake, "t", 0, 3);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    const revoked: number[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onRevoked: (tps) => revoked.push(...tps.map((tp) => tp.partition)),
    });
    const it = sub[Symbol.asyncIterator]();
    expect(text((await it.next()).value as ConsumedRecord)).toBe("t/0-0"); // in hand
    fake.joins[0]!.push(message("m1", 2, {}, { t: [0] }));
    await sleep(50);
    fake.joins[0]!.push(message("m1", 3, { t: [0] }));
    await sleep(50);
    expect(text((await it.next()).value as ConsumedRecord)).toBe("t/0-1");
    expect(text((await it.next()).value as ConsumedRecord)).toBe("t/0-2");
    expect(revoked).toEqual([]);
    expect(fake.releases).toHaveLength(0);
    expect(sub.assignment()).toEqual([{ topic: "t", partition: 0 }]);
    await sub.close();
    expect(fake.committed.get("t/0")).toBe(2n);
  });

  it("drops a partition taken without a revocation, without committing or releasing it", async () => {
    // Ensures a partition missing from a message (e.g. its topic was deleted) is stopped at once.
    fill(fake, "t", 0, 2);
    fill(fake, "t", 1, 2);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0, 1] }));
    const revoked: number[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onRevoked: (tps) => revoked.push(...tps.map((tp) => tp.partition)),
    });
    await until("fetching both", () => fake.fetches.length === 2);
    fake.joins[0]!.push(message("m1", 2, { t: [1] }));
    await until("revoked", () => revoked.length === 1);
    expect(revoked).toEqual([0]);
    const it = sub[Symbol.asyncIterator]();
    const got = [(await it.next()).value, (await it.next()).value] as ConsumedRecord[];
    expect(got.map(text)).toEqual(["t/1-0", "t/1-1"]);
    expect(fake.commits).toHaveLength(0);
    expect(fake.releases).toHaveLength(0);
    await sub.close();
  });

  it("revokes at once while the application waits in next()", async () => {
    // Ensures a revocation does not wait for a record when none is in hand.
    fill(fake, "t", 0, 1);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    const order: string[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onRevoked: () => order.push(`revoked after ${fake.calls.filter((c) => c === "commit").length} commit`),
    });
    const it = sub[Symbol.asyncIterator]();
    expect(text((await it.next()).value as ConsumedRecord)).toBe("t/0-0");
    const pending = it.next(); // marks t/0-0 processed, then waits
    await sleep(50);
    fake.joins[0]!.push(message("m1", 2, {}, { t: [0] }));
    await until("released", () => fake.releases.length === 1);
    expect(order).toEqual(["revoked after 1 commit"]);
    expect(fake.committed.get("t/0")).toBe(1n);
    await sub.close();
    expect(await pending).toEqual({ done: true, value: undefined });
  });

  it("starts new partitions at the committed offset, emitting assigned first", async () => {
    // Ensures FetchCommittedOffsets decides the start and "assigned" precedes the first fetch.
    fill(fake, "t", 0, 5);
    fake.committed.set("t/0", 3n);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    let fetchesAtAssigned = -1;
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      onAssigned: () => {
        fetchesAtAssigned = fake.fetches.length;
      },
    });
    const it = sub[Symbol.asyncIterator]();
    const got = [(await it.next()).value, (await it.next()).value] as ConsumedRecord[];
    expect(got.map(text)).toEqual(["t/0-3", "t/0-4"]);
    expect(fetchesAtAssigned).toBe(0);
    expect(fake.fetches[0]!.start).toEqual({ $case: "offset", value: 3n });
    expect(fake.fetches[0]!.follow).toBe(true);
    expect(fake.joins[0]!.request).toMatchObject({ groupId: "g", topics: ["t"], sessionTimeoutMs: 0 });
    expect(fake.joins[0]!.request.memberName).toBe(`${(await import("node:os")).hostname()}-${process.pid}`);
    await sub.close();
  });

  it("restarts at `from` with a warning when the committed offset is out of range", async () => {
    // Ensures OUT_OF_RANGE for a committed offset falls back to `from` instead of failing.
    fill(fake, "t", 0, 3);
    fake.committed.set("t/0", 100n);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"], from: "earliest" });
    const it = sub[Symbol.asyncIterator]();
    expect(text((await it.next()).value as ConsumedRecord)).toBe("t/0-0");
    expect(logs.some((e) => e.level === "warn" && e.message.includes("out of range"))).toBe(true);
    await sub.close();
  });

  it("sends heartbeats at the broker's interval", async () => {
    // Ensures heartbeats go every heartbeat_interval_ms with the member id, and stop on close.
    fake.onJoin = (j) => j.push({ ...message("m1", 1, {}), heartbeatIntervalMs: 30 });
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"] });
    await until("5 heartbeats", () => fake.heartbeats.length >= 5, 2_000);
    expect(fake.heartbeats.every((h) => h.memberId === "m1" && h.groupId === "g")).toBe(true);
    await sub.close();
    const after = fake.heartbeats.length;
    await sleep(120);
    expect(fake.heartbeats.length).toBe(after);
    expect(fake.leaves).toEqual([{ groupId: "g", memberId: "m1" }]);
  });
});

describe("client > group subscription > lost membership", () => {
  it("reports everything revoked without committing and rejoins after the stream breaks", async () => {
    // Ensures UNAVAILABLE on the JoinGroup stream drops the assignment, emits "revoked" with no
    // commit, and joins again with backoff; the new membership reads from the committed offsets.
    fill(fake, "t", 0, 3);
    const events: string[] = [];
    fake.onJoin = (j) => j.push(message(`m${fake.joins.length}`, fake.joins.length, { t: [0] }));
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onAssigned: (tps) => events.push(`assigned ${tps.length}`),
      onRevoked: (tps) => events.push(`revoked ${tps.length}`),
    });
    const got: string[] = [];
    const done = (async () => {
      for await (const r of sub) got.push(text(r));
    })();
    await until("3 read", () => got.length === 3);
    expect(sub.memberId).toBe("m1");
    fake.joins[0]!.fail({ code: status.UNAVAILABLE, details: "going away" });
    await until("rejoined", () => fake.joins.length === 2 && events.length === 3);
    expect(events).toEqual(["assigned 1", "revoked 1", "assigned 1"]);
    expect(fake.commits).toHaveLength(0); // no commit for partitions no longer ours
    // Nothing was committed, so the new membership reads the partition again: at-least-once.
    await until("re-read", () => got.length === 6);
    expect(got).toEqual(["t/0-0", "t/0-1", "t/0-2", "t/0-0", "t/0-1", "t/0-2"]);
    await until("member id", () => sub.memberId === "m2");
    await sub.close();
    await done;
    expect(fake.leaves).toEqual([{ groupId: "g", memberId: "m2" }]);
  });

  it("rejoins when a heartbeat says the member is gone", async () => {
    // Ensures FAILED_PRECONDITION from Heartbeat ends the membership at once.
    fake.onJoin = (j) => j.push(message(`m${fake.joins.length}`, 1, {}));
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"] });
    await until("joined", () => sub.memberId === "m1");
    fake.heartbeatError = { code: status.FAILED_PRECONDITION, details: "member m1 is not in group g" };
    // The first stream is given up (cancelled) at once, without waiting for the broker to end it.
    await until("first stream cancelled", () => fake.joins[0]!.cancelled, 2_000);
    await until("second join", () => fake.joins.length >= 2);
    fake.heartbeatError = undefined;
    await until("joined again", () => sub.memberId !== undefined && sub.memberId !== "m1");
    await sub.close();
  });

  it("keeps rejoining with bounded delays while the join keeps failing", async () => {
    // Ensures attempts are unbounded after the first membership, each delay bounded by maxDelayMs
    // (20 ms here). Unbounded exponential backoff (5 ms doubling) would pass 320 ms by the 7th
    // retry; the slack allowed on top of maxDelayMs is generous (a round trip on a loaded machine).
    fake.onJoin = (j) => {
      if (fake.joins.length === 1) j.push(message("m1", 1, {}));
      else j.fail({ code: status.UNAVAILABLE, details: "not yet" });
    };
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"] });
    await until("joined", () => sub.memberId === "m1");
    fake.joins[0]!.fail({ code: status.UNAVAILABLE, details: "restart" });
    // 10 more attempts (maxAttempts is 3), or 3 s: whichever comes first.
    await until("10 more attempts", () => fake.joins.length >= 12, 3_000).catch(() => {});
    await sub.close();
    // Between consecutive rejoin attempts (joins[0] was the membership itself).
    const gaps = fake.joins.slice(2).map((j, i) => j.at - fake.joins[i + 1]!.at);
    const maxDelayMs = 20;
    const slackMs = 250;
    expect(gaps.filter((g) => g > maxDelayMs + slackMs)).toEqual([]);
    expect(gaps.every((g) => g >= 2)).toBe(true); // a backoff, not a busy loop
    expect(fake.joins.length).toBeGreaterThanOrEqual(12);
  });
});

describe("client > group subscription > errors", () => {
  it("logs a refused auto-commit instead of throwing it; commit() rejects with it", async () => {
    // Ensures FAILED_PRECONDITION on commit never breaks the iteration.
    fill(fake, "t", 0, 2);
    fake.commitError = { code: status.FAILED_PRECONDITION, details: "stale generation" };
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"], autoCommitIntervalMs: 20 });
    const it = sub[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const pending = it.next(); // both processed; auto-commit tries and is refused
    await until("refused commits", () => fake.commits.length >= 2);
    expect(logs.some((e) => e.level === "warn" && e.message.includes("commit refused"))).toBe(true);
    await expect(sub.commit()).rejects.toBeInstanceOf(FailedPreconditionError);
    fake.commitError = undefined;
    await sub.commit();
    expect(fake.committed.get("t/0")).toBe(2n);
    await sub.close();
    expect(await pending).toEqual({ done: true, value: undefined });
  });

  it("throws NOT_FOUND and INVALID_ARGUMENT from JoinGroup out of the iterator", async () => {
    // Ensures fatal join errors reach the application once, without rejoining.
    for (const [code, ErrorClass] of [
      [status.NOT_FOUND, TopicNotFoundError],
      [status.INVALID_ARGUMENT, InvalidArgumentError],
    ] as const) {
      const joinsBefore = fake.joins.length;
      fake.onJoin = (j) => j.fail({ code, details: "nope" });
      const sub = client.consumer().subscribe({ group: "g", topics: ["t"] });
      const it = sub[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toBeInstanceOf(ErrorClass);
      expect(await it.next()).toEqual({ done: true, value: undefined });
      await sleep(50);
      expect(fake.joins.length).toBe(joinsBefore + 1);
    }
  });

  it("gives up the first join after the bounded retry when the broker never answers", async () => {
    // Ensures a missing broker is reported, like a plain consumer's start.
    fake.onJoin = (j) => j.fail({ code: status.UNAVAILABLE, details: "down" });
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"] });
    await expect(
      (async () => {
        for await (const _ of sub) {
          // nothing arrives
        }
      })(),
    ).rejects.toThrow("down");
    expect(fake.joins).toHaveLength(3);
  });

  it("validates its options and is iterated once", () => {
    // Ensures bad arguments fail fast with InvalidArgumentError.
    const c = client.consumer();
    expect(() => c.subscribe({ group: "", topics: ["t"] })).toThrow(InvalidArgumentError);
    expect(() => c.subscribe({ group: "g", topics: [] })).toThrow(InvalidArgumentError);
    expect(() => c.subscribe({ group: "g", topics: ["t"], from: "middle" as "latest" })).toThrow(
      InvalidArgumentError,
    );
    expect(() => c.subscribe({ group: "g", topics: ["t"], autoCommitIntervalMs: -1 })).toThrow(
      InvalidArgumentError,
    );
    const sub = c.subscribe({ group: "g", topics: ["t"], autoCommitIntervalMs: 0 });
    sub[Symbol.asyncIterator]();
    expect(() => sub[Symbol.asyncIterator]()).toThrow(InvalidArgumentError);
  });
});

describe("client > group subscription > close", () => {
  it("commits, emits revoked, then leaves; idempotent; ends a pending next()", async () => {
    // Ensures close() order and that a waiting iterator ends only once the leave is done.
    fill(fake, "t", 0, 3);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    const order: string[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onRevoked: () =>
        order.push(`revoked (calls: ${fake.calls.filter((c) => c !== "heartbeat").join(",")})`),
    });
    const it = sub[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await it.next();
    const pending = it.next();
    await sleep(20);
    await Promise.all([sub.close(), sub.close()]);
    expect(order).toEqual(["revoked (calls: join,fetchCommitted,commit)"]);
    expect(fake.calls.filter((c) => c === "leave")).toHaveLength(1);
    expect(fake.committed.get("t/0")).toBe(3n);
    expect(await pending).toEqual({ done: true, value: undefined });
    await sub.close();
    expect(fake.calls.filter((c) => c === "leave")).toHaveLength(1);
  });

  it("closes when its signal aborts, and when the consumer closes", async () => {
    // Ensures abort = close() and consumer.close() closes its subscriptions (commit + leave).
    fill(fake, "t", 0, 1);
    fake.onJoin = (j) => j.push(message(`m${fake.joins.length}`, 1, { t: [0] }));
    const ac = new AbortController();
    const consumer = client.consumer();
    const s1 = consumer.subscribe({ group: "g", topics: ["t"], signal: ac.signal });
    const got: string[] = [];
    const done = (async () => {
      for await (const r of s1) got.push(text(r));
    })();
    await until("read", () => got.length === 1);
    ac.abort();
    await done;
    expect(fake.leaves.map((l) => l.memberId)).toEqual(["m1"]);
    expect(fake.committed.get("t/0")).toBe(1n);
    const s2 = consumer.subscribe({ group: "g", topics: ["t"] });
    await until("joined", () => s2.memberId === "m2");
    await consumer.close();
    expect(fake.leaves.map((l) => l.memberId)).toEqual(["m1", "m2"]);
  });
});
