/**
 * Group subscription under rebalances that race with the member's own work, against a scripted
 * GroupService (fake-group-broker.ts): messages arriving while a release is in flight (only the
 * newest assignment is applied; releases name the generation that asked), failed releases (retried
 * while the membership lasts, bounded by the session timeout), and deleted topics (a partition's
 * fetch ending with NOT_FOUND stops that partition only; a rejoin that fails with NOT_FOUND names
 * the topic).
 */
import { describe, expect, it } from "vitest";
import {
  type ConsumedRecord,
  type LogEntry,
  type RillClient,
  TopicNotFoundError,
  type TopicPartition,
} from "../../../../clients/ts/src/index.js";
import { append, type FakeGroupBroker, failFetches, fill, message, status } from "./fake-group-broker.js";
import { sleep, text, until, useFakeGroupClient } from "./fake-group-client.js";

let fake: FakeGroupBroker;
let client: RillClient;
let logs: LogEntry[];

useFakeGroupClient((setup) => {
  ({ fake, client, logs } = setup);
});

const names = (event: string, tps: TopicPartition[]) =>
  tps.map((tp) => `${event} ${tp.topic}/${tp.partition}`);

describe("client > group subscription > stale assignments", () => {
  it("applies only the newest message after a release, never re-assigning what it released", async () => {
    // Ensures messages that pile up while a release is in flight are coalesced: gen 3 (t/0 back)
    // superseded by gen 4 (t/0 revoked again) must not emit "assigned" for a partition the member
    // released in gen 2 (the broker may already have handed it on); and releases carry the
    // generation of the message that asked.
    fill(fake, "t", 0, 2);
    fill(fake, "t", 1, 2);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0, 1] }));
    let openGate!: () => void;
    const gate = new Promise<undefined>((r) => {
      openGate = () => r(undefined);
    });
    fake.onRelease = () => (fake.releases.length === 1 ? gate : undefined);
    const events: string[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["t"],
      autoCommitIntervalMs: 0,
      onAssigned: (tps) => events.push(...names("assigned", tps)),
      onRevoked: (tps) => events.push(...names("revoked", tps)),
    });
    const done = (async () => {
      for await (const _ of sub) {
        // read and process
      }
    })();
    await until("fetching both", () => fake.fetches.length === 2);
    fake.joins[0]!.push(message("m1", 2, { t: [1] }, { t: [0] }));
    await until("the release of gen 2 is in flight", () => fake.releases.length === 1);
    fake.joins[0]!.push(message("m1", 3, { t: [0, 1] }));
    fake.joins[0]!.push(message("m1", 4, { t: [1] }, { t: [0] }));
    await until("gen 4 received", () => sub.generation === 4n);
    openGate();
    await until("gen 4 applied", () => fake.releases.length === 2);
    await sleep(50);
    expect(events).toEqual(["assigned t/0", "assigned t/1", "revoked t/0"]);
    expect(fake.releases.map((r) => ({ generation: r.generationId, partitions: r.partitions }))).toEqual([
      { generation: 2n, partitions: [{ topic: "t", partitions: [0] }] },
      { generation: 4n, partitions: [{ topic: "t", partitions: [0] }] },
    ]);
    expect(fake.fetches.filter((f) => f.partition === 0)).toHaveLength(1); // never fetched again
    expect(sub.assignment()).toEqual([{ topic: "t", partition: 1 }]);
    await sub.close();
    await done;
  });
});

describe("client > group subscription > release retries", () => {
  it("retries a release that failed with UNAVAILABLE", async () => {
    // Ensures a transient failure does not leave the partition stuck until the session expires.
    fill(fake, "t", 0, 1);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0] }));
    fake.onRelease = () =>
      fake.releases.length === 1 ? { code: status.UNAVAILABLE, details: "blip" } : undefined;
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"], autoCommitIntervalMs: 0 });
    await until("fetching", () => fake.fetches.length === 1);
    fake.joins[0]!.push(message("m1", 2, {}, { t: [0] }));
    await until("released again", () => fake.releases.length === 2);
    expect(fake.releases[1]).toEqual(fake.releases[0]);
    expect(fake.releases[1]).toEqual({
      groupId: "g",
      memberId: "m1",
      partitions: [{ topic: "t", partitions: [0] }],
      generationId: 2n,
    });
    expect(logs.some((e) => e.level === "warn" && e.message.includes("releasing partitions failed"))).toBe(
      true,
    );
    await sleep(100);
    expect(fake.releases).toHaveLength(2); // done once it succeeded
    await sub.close();
  });

  it("stops retrying after the session timeout, and never retries a refused release", async () => {
    // Ensures the retries are bounded (the broker removes the member past its session timeout
    // anyway) and that FAILED_PRECONDITION (unknown member) is not retried.
    fill(fake, "t", 0, 1);
    fill(fake, "t", 1, 1);
    fake.onJoin = (j) => j.push(message("m1", 1, { t: [0, 1] })); // session timeout 150 ms
    const at: number[] = [];
    fake.onRelease = (req) => {
      if (req.generationId === 3n) return { code: status.FAILED_PRECONDITION, details: "unknown member" };
      at.push(Date.now());
      return { code: status.UNAVAILABLE, details: "down" };
    };
    const sub = client.consumer().subscribe({ group: "g", topics: ["t"], autoCommitIntervalMs: 0 });
    await until("fetching", () => fake.fetches.length === 2);
    fake.joins[0]!.push(message("m1", 2, { t: [1] }, { t: [0] }));
    await until("gave up", () => logs.some((e) => e.message === "releasing partitions failed"));
    const attempts = at.length;
    expect(attempts).toBeGreaterThan(1);
    expect(at[attempts - 1]! - at[0]!).toBeLessThanOrEqual(150 + 250); // generous slack
    fake.joins[0]!.push(message("m1", 3, {}, { t: [1] }));
    await until("refused release", () => fake.releases.some((r) => r.generationId === 3n));
    await sleep(150);
    expect(at).toHaveLength(attempts);
    expect(fake.releases.filter((r) => r.generationId === 3n)).toHaveLength(1);
    await sub.close();
  });
});

describe("client > group subscription > deleted topics", () => {
  it("stops only the partition whose fetch ends with NOT_FOUND, forgetting its processed offset", async () => {
    // Ensures a deleted topic does not close the subscription: the other topic keeps being read,
    // commits leave the gone partition out, and the broker's next message drops it (revoked, with
    // no commit and no release).
    fill(fake, "a", 0, 2);
    fill(fake, "b", 0, 2);
    fake.onJoin = (j) => j.push(message("m1", 1, { a: [0], b: [0] }));
    const events: string[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["a", "b"],
      autoCommitIntervalMs: 0,
      onAssigned: (tps) => events.push(...names("assigned", tps)),
      onRevoked: (tps) => events.push(...names("revoked", tps)),
    });
    const it = sub[Symbol.asyncIterator]();
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(text((await it.next()).value as ConsumedRecord));
    expect(got.sort()).toEqual(["a/0-0", "a/0-1", "b/0-0", "b/0-1"]);
    const pending = it.next(); // all four processed
    failFetches(fake, "a", 0, { code: status.NOT_FOUND, details: 'topic "a" does not exist' });
    await until("a/0 stopped", () => logs.some((e) => e.message.startsWith("partition gone")));
    await sub.commit();
    expect(fake.commits.at(-1)!.offsets).toEqual([{ topic: "b", partition: 0, offset: 2n, metadata: "" }]);
    // The broker drops the deleted partition without a revocation.
    fake.joins[0]!.push(message("m1", 2, { b: [0] }));
    await until("a/0 revoked", () => events.length === 3);
    expect(events).toEqual(["assigned a/0", "assigned b/0", "revoked a/0"]);
    append(fake, "b", 0, 1);
    expect(text((await pending).value as ConsumedRecord)).toBe("b/0-2");
    expect(sub.assignment()).toEqual([{ topic: "b", partition: 0 }]);
    expect(fake.releases).toHaveLength(0);
    expect(fake.fetches.filter((f) => f.topic === "a")).toHaveLength(1); // not retried
    const last = it.next(); // b/0-2 processed
    await sub.close();
    expect(await last).toEqual({ done: true, value: undefined });
    expect(fake.commits.every((c) => c.offsets.every((o) => o.topic === "b"))).toBe(true);
    expect(fake.committed.get("b/0")).toBe(3n);
  });

  it("starts a gone partition afresh when a newer generation still assigns it", async () => {
    // Ensures a topic deleted and re-created (the broker assigns its partition again in a later
    // generation) is read again, while a message of the same generation does not restart it.
    fill(fake, "a", 0, 1);
    fake.fetchErrors.set("a/0", { code: status.NOT_FOUND, details: 'topic "a" does not exist' });
    fake.onJoin = (j) => j.push(message("m1", 1, { a: [0] }));
    const events: string[] = [];
    const sub = client.consumer().subscribe({
      group: "g",
      topics: ["a"],
      autoCommitIntervalMs: 0,
      onAssigned: (tps) => events.push(...names("assigned", tps)),
      onRevoked: (tps) => events.push(...names("revoked", tps)),
    });
    await until("a/0 gone", () => logs.some((e) => e.message.startsWith("partition gone")));
    fake.joins[0]!.push({ ...message("m1", 1, { a: [0] }), heartbeatIntervalMs: 40 }); // same generation
    await sleep(50);
    expect(events).toEqual(["assigned a/0"]);
    expect(fake.fetches).toHaveLength(1);
    fake.fetchErrors.clear();
    fill(fake, "a", 0, 1); // re-created
    fake.joins[0]!.push(message("m1", 2, { a: [0] }));
    const it = sub[Symbol.asyncIterator]();
    expect(text((await it.next()).value as ConsumedRecord)).toBe("a/0-0");
    expect(events).toEqual(["assigned a/0", "revoked a/0", "assigned a/0"]);
    await sub.close();
  });

  it("fails a rejoin that gets NOT_FOUND with an error naming the topics", async () => {
    // Ensures a topic deleted while subscribed is fatal once the membership must be re-created,
    // with a message that says which topics and why.
    fake.onJoin = (j) => {
      if (fake.joins.length === 1) j.push(message("m1", 1, {}));
      else j.fail({ code: status.NOT_FOUND, details: "no such topic" });
    };
    const sub = client.consumer().subscribe({ group: "g", topics: ["t1", "t2"] });
    const it = sub[Symbol.asyncIterator]();
    const first = it.next();
    await until("joined", () => sub.memberId === "m1");
    fake.joins[0]!.fail({ code: status.UNAVAILABLE, details: "restart" });
    const error = await first.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TopicNotFoundError);
    expect((error as Error).message).toMatch(/^rejoining group "g" failed: no such topic/);
    expect((error as Error).message).toContain('(subscribed topics: "t1", "t2")');
    expect((error as Error).message).toContain("deleted");
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it("reads a partition again when its topic was deleted and re-created while messages were merged", async () => {
    // gen 3 (topic a deleted) and gen 4 (a re-created) arrive while a release is in flight, so only
    // gen 4 is applied; the old fetch's NOT_FOUND comes after. The member still owns a/0 per the
    // broker, so it must look again rather than stop reading it for good.
    fill(fake, "a", 0, 2);
    fill(fake, "b", 0, 2);
    fake.onJoin = (j) => j.push(message("m1", 1, { a: [0], b: [0] }));
    let open!: () => void;
    const gate = new Promise<undefined>((r) => {
      open = () => r(undefined);
    });
    fake.onRelease = () => (fake.releases.length === 1 ? gate : undefined);
    const sub = client.consumer().subscribe({ group: "g", topics: ["a", "b"], autoCommitIntervalMs: 0 });
    const read = (async () => {
      const got: string[] = [];
      for await (const r of sub) got.push(`${r.topic}/${r.offset}`);
      return got;
    })();
    await until("both fetching", () => fake.fetches.length === 2);
    fake.joins[0]!.push(message("m1", 2, { a: [0] }, { b: [0] }));
    await until("release in flight", () => fake.releases.length === 1);
    fake.joins[0]!.push(message("m1", 3, {}, { b: [0] }));
    fake.joins[0]!.push(message("m1", 4, { a: [0] }, { b: [0] }));
    await until("gen 4 received", () => sub.generation === 4n);
    failFetches(fake, "a", 0, { code: status.NOT_FOUND, details: 'topic "a" does not exist' });
    await until("gone", () => logs.some((e) => e.message.startsWith("partition gone")));
    open();
    fake.fetchErrors.clear();
    const before = fake.fetches.filter((f) => f.topic === "a").length;
    await until(
      "a/0 fetched again",
      () => fake.fetches.filter((f) => f.topic === "a").length > before,
      5_000,
    );
    expect(sub.assignment().map((tp) => `${tp.topic}/${tp.partition}`)).toContain("a/0");
    await sub.close();
    await read;
  });
});
