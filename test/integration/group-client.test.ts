/**
 * `consumer.subscribe(...)` against a real broker: members of one group split the partitions and
 * read every record exactly once; another group reads everything; close() hands partitions over at
 * the committed offsets; the "assigned"/"revoked" events never show a partition with two holders;
 * manual and automatic commits land where the semantics say (group-subscription.ts).
 */
import { credentials } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type FetchCommittedOffsetsResponse,
  GroupServiceClient,
} from "../../clients/ts/src/gen/rill/v1/group.js";
import {
  type ConsumedRecord,
  createClient,
  type GroupSubscription,
  type RillClient,
  type SubscribeOptions,
  TopicNotFoundError,
  type TopicPartition,
} from "../../clients/ts/src/index.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";

let broker: TestBroker;
let groupStub: GroupServiceClient;
const clients: RillClient[] = [];

beforeAll(async () => {
  broker = await startTestBroker({ groupMinSessionTimeoutMs: 500 });
  groupStub = new GroupServiceClient(broker.address, credentials.createInsecure());
});

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  groupStub?.close();
  await broker?.stop();
});

function client(): RillClient {
  const c = createClient({ brokers: broker.address });
  clients.push(c);
  return c;
}

async function createTopic(partitions: number): Promise<string> {
  const topic = randomTopic("grp");
  await client().admin().createTopic(topic, { partitions });
  return topic;
}

/** Produces `perPartition` records to every partition: value `p<partition>-<seq>`. */
async function produce(topic: string, partitions: number, perPartition: number, firstSeq = 0): Promise<void> {
  const producer = client().producer();
  const records = [];
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < perPartition; i++) records.push({ partition: p, value: `p${p}-${firstSeq + i}` });
  }
  await producer.send(topic, records);
  await producer.close();
}

async function committed(group: string): Promise<Map<string, bigint>> {
  const res = await new Promise<FetchCommittedOffsetsResponse>((resolve, reject) =>
    groupStub.fetchCommittedOffsets({ groupId: group, topics: [] }, (err, r) =>
      err ? reject(err) : resolve(r),
    ),
  );
  return new Map(res.offsets.map((o) => [`${o.topic}/${o.partition}`, o.offset]));
}

async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Who holds which partition, according to the events of every member of one group: "assigned"
 * claims a partition (it must be free), "revoked" frees it (it must be the holder's).
 */
class Holders {
  readonly holder = new Map<string, string>();
  readonly violations: string[] = [];
  events = 0;

  watch(name: string): Pick<SubscribeOptions, "onAssigned" | "onRevoked"> {
    return {
      onAssigned: (tps: TopicPartition[]) => {
        this.events++;
        for (const tp of tps) {
          const key = `${tp.topic}/${tp.partition}`;
          const h = this.holder.get(key);
          if (h !== undefined) this.violations.push(`${name} was assigned ${key} still held by ${h}`);
          this.holder.set(key, name);
        }
      },
      onRevoked: (tps: TopicPartition[]) => {
        this.events++;
        for (const tp of tps) {
          const key = `${tp.topic}/${tp.partition}`;
          const h = this.holder.get(key);
          if (h !== name) this.violations.push(`${name} revoked ${key} held by ${h ?? "nobody"}`);
          this.holder.delete(key);
        }
      },
    };
  }

  of(name: string): string[] {
    return [...this.holder].filter(([, h]) => h === name).map(([k]) => k);
  }
}

/** Iterates a subscription in the background, collecting records, until it ends. */
function collect(sub: GroupSubscription): { records: ConsumedRecord[]; done: Promise<void> } {
  const records: ConsumedRecord[] = [];
  const done = (async () => {
    for await (const r of sub) records.push(r);
  })();
  return { records, done };
}

const textOf = (r: ConsumedRecord): string => r.value.toString();

function expectExactlyOnce(all: ConsumedRecord[], partitions: number, perPartition: number): void {
  const values = all.map(textOf);
  expect(new Set(values).size).toBe(values.length); // no duplicates
  const expected: string[] = [];
  for (let p = 0; p < partitions; p++) for (let i = 0; i < perPartition; i++) expected.push(`p${p}-${i}`);
  expect([...values].sort()).toEqual(expected.sort()); // and no gaps
  // Per partition, offsets are contiguous from 0 and in order.
  for (let p = 0; p < partitions; p++) {
    const offsets = all.filter((r) => r.partition === p).map((r) => r.offset);
    const sorted = [...offsets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(sorted).toEqual(Array.from({ length: perPartition }, (_, i) => BigInt(i)));
  }
}

describe("client > group subscription", () => {
  it("splits partitions between two members, which together read everything once; another group reads all", async () => {
    // Ensures point-to-point within a group (disjoint partitions, each record once) and
    // publish/subscribe across groups.
    const topic = await createTopic(4);
    const holders = new Holders();
    const a = client()
      .consumer()
      .subscribe({ group: "split", topics: [topic], memberName: "a", ...holders.watch("a") });
    const ra = collect(a);
    await until("a owns all 4 partitions", () => holders.of("a").length === 4);
    const b = client()
      .consumer()
      .subscribe({ group: "split", topics: [topic], memberName: "b", ...holders.watch("b") });
    const rb = collect(b);
    await until("the group is split 2/2", () => holders.of("a").length === 2 && holders.of("b").length === 2);
    // Range assignment over sorted member ids ("a-..." < "b-..."): a gets 0-1, b gets 2-3.
    expect(holders.of("a").sort()).toEqual([`${topic}/0`, `${topic}/1`]);
    expect(a.assignment()).toEqual([
      { topic, partition: 0 },
      { topic, partition: 1 },
    ]);
    expect(b.assignment()).toEqual([
      { topic, partition: 2 },
      { topic, partition: 3 },
    ]);
    expect(a.memberId).toMatch(/^a-/);
    expect(b.generation).toBeGreaterThanOrEqual(2n);

    const other = client()
      .consumer()
      .subscribe({ group: "other", topics: [topic] });
    const ro = collect(other);

    await produce(topic, 4, 50);
    await until(
      "both groups read all 200",
      () => ra.records.length + rb.records.length >= 200 && ro.records.length >= 200,
    );
    await new Promise((r) => setTimeout(r, 200)); // room for a wrong extra record to show up
    expectExactlyOnce([...ra.records, ...rb.records], 4, 50);
    expect(new Set(ra.records.map((r) => r.partition))).toEqual(new Set([0, 1]));
    expect(new Set(rb.records.map((r) => r.partition))).toEqual(new Set([2, 3]));
    expectExactlyOnce(ro.records, 4, 50);

    await Promise.all([a.close(), b.close(), other.close()]);
    await Promise.all([ra.done, rb.done, ro.done]);
    expect(holders.violations).toEqual([]);
    expect(holders.holder.size).toBe(0);
  });

  it("hands a closing member's partitions over at its committed offsets: no duplicates, no gaps", async () => {
    // Ensures close() commits what was processed and leaves (confirmed) so the other member
    // resumes exactly there; the holder map built from events never shows two holders.
    const topic = await createTopic(4);
    const holders = new Holders();
    const opts = { group: "handover", topics: [topic], autoCommitIntervalMs: 0 };
    const a = client()
      .consumer()
      .subscribe({ ...opts, memberName: "a", ...holders.watch("a") });
    const b = client()
      .consumer()
      .subscribe({ ...opts, memberName: "b", ...holders.watch("b") });
    const ra = collect(a);
    const rb = collect(b);
    await until("the group is split 2/2", () => holders.of("a").length === 2 && holders.of("b").length === 2);
    await produce(topic, 4, 30);
    await until("200 read", () => ra.records.length + rb.records.length >= 120);
    await a.close(); // a waits in next(): everything it got is processed
    await ra.done;
    // LeaveGroup is confirmed: the broker has already reassigned a's partitions.
    expect(holders.of("a")).toEqual([]);
    const c = await committed("handover");
    expect(c.get(`${topic}/0`)).toBe(30n);
    expect(c.get(`${topic}/1`)).toBe(30n);
    await until("b owns all 4", () => holders.of("b").length === 4);
    await produce(topic, 4, 30, 30);
    await until("all 240 read", () => ra.records.length + rb.records.length >= 240);
    await new Promise((r) => setTimeout(r, 200));
    expectExactlyOnce([...ra.records, ...rb.records], 4, 60);
    // b read partitions 0-1 only from a's committed offset on.
    expect(rb.records.filter((r) => r.partition < 2).every((r) => r.offset >= 30n)).toBe(true);
    await b.close();
    await rb.done;
    expect(holders.violations).toEqual([]);
    expect(holders.events).toBeGreaterThanOrEqual(5);
  });

  it("keeps partitions single-owned through a series of joins and leaves", async () => {
    // Ensures the ordering of events against ReleasePartitions/LeaveGroup: no two holders, ever,
    // while members come and go under load, and every record is read at least once.
    const topic = await createTopic(4);
    const holders = new Holders();
    const seen = new Set<string>();
    const subs: { sub: GroupSubscription; done: Promise<void> }[] = [];
    const start = (name: string) => {
      const sub = client()
        .consumer()
        .subscribe({ group: "churn", topics: [topic], memberName: name, ...holders.watch(name) });
      const done = (async () => {
        for await (const r of sub) {
          seen.add(textOf(r));
          await new Promise((res) => setImmediate(res));
        }
      })();
      subs.push({ sub, done });
    };
    start("m0");
    await produce(topic, 4, 100);
    for (let i = 1; i <= 4; i++) {
      start(`m${i}`);
      await new Promise((r) => setTimeout(r, 150));
      if (i % 2 === 0) {
        const leaving = subs.shift()!;
        await leaving.sub.close();
        await leaving.done;
      }
    }
    await until("every record read", () => seen.size === 400);
    await Promise.all(subs.map((s) => s.sub.close()));
    await Promise.all(subs.map((s) => s.done));
    expect(holders.violations).toEqual([]);
    expect(holders.holder.size).toBe(0);
  });

  it("commit() commits what was processed; a break leaves the record in hand unprocessed", async () => {
    // Ensures the processed rule (a record counts once the loop asks for the next one), manual
    // commit, and that a new member starts at the committed offset.
    const topic = await createTopic(1);
    await produce(topic, 1, 50);
    const a = client()
      .consumer()
      .subscribe({ group: "manual", topics: [topic], autoCommitIntervalMs: 0 });
    let afterCommit: bigint | undefined;
    const got: ConsumedRecord[] = [];
    for await (const r of a) {
      got.push(r);
      if (got.length === 5) {
        await a.commit(); // records 0-3 processed; 4 is in hand
        afterCommit = (await committed("manual")).get(`${topic}/0`);
      }
      if (got.length === 10) break; // 0-8 processed; 9 is not
    }
    expect(afterCommit).toBe(4n);
    // break closed the subscription, committing 0-8.
    expect((await committed("manual")).get(`${topic}/0`)).toBe(9n);
    const b = client()
      .consumer()
      .subscribe({ group: "manual", topics: [topic] });
    const first: ConsumedRecord[] = [];
    for await (const r of b) {
      first.push(r);
      break;
    }
    expect(first[0]?.offset).toBe(9n);
    expect(first[0]?.value.toString()).toBe("p0-9");
  });

  it("auto-commits processed offsets while running", async () => {
    // Ensures the auto-commit timer commits offsets that moved, without closing.
    const topic = await createTopic(2);
    await produce(topic, 2, 20);
    const sub = client()
      .consumer()
      .subscribe({ group: "auto", topics: [topic], autoCommitIntervalMs: 100 });
    const r = collect(sub);
    await until("40 read", () => r.records.length >= 40);
    await until(
      "auto-commit reached the end",
      async () => {
        const c = await committed("auto");
        return c.get(`${topic}/0`) === 20n && c.get(`${topic}/1`) === 20n;
      },
      5_000,
    );
    await produce(topic, 2, 5, 20);
    await until("50 read", () => r.records.length >= 50);
    await until(
      "auto-commit followed",
      async () => (await committed("auto")).get(`${topic}/1`) === 25n,
      5_000,
    );
    await sub.close();
    await r.done;
  });

  it("starts at latest for a partition the group never committed when from is latest", async () => {
    // Ensures `from: "latest"` skips what was there before the member started.
    const topic = await createTopic(1);
    await produce(topic, 1, 10);
    const holders = new Holders();
    const sub = client()
      .consumer()
      .subscribe({ group: "latest", topics: [topic], from: "latest", ...holders.watch("x") });
    const r = collect(sub);
    await until("assigned", () => holders.of("x").length === 1);
    // The fetch starts after the assignment; give it a moment, then produce.
    await new Promise((res) => setTimeout(res, 300));
    await produce(topic, 1, 3, 10);
    await until("3 read", () => r.records.length >= 3);
    expect(r.records.map(textOf)).toEqual(["p0-10", "p0-11", "p0-12"]);
    await sub.close();
    await r.done;
    expect((await committed("latest")).get(`${topic}/0`)).toBe(13n);
  });

  it("throws NOT_FOUND for a topic that does not exist from the iterator", async () => {
    // Ensures a fatal JoinGroup error reaches the application instead of being retried forever.
    const sub = client()
      .consumer()
      .subscribe({ group: "missing", topics: [randomTopic("nope")] });
    const consume = async () => {
      for await (const _ of sub) {
        // nothing
      }
    };
    await expect(consume()).rejects.toBeInstanceOf(TopicNotFoundError);
    await sub.close();
  });

  it("keeps reading the other topics when one subscribed topic is deleted", async () => {
    // Ensures a deleted topic stops only its own partitions (their Fetch streams end with NOT_FOUND,
    // usually before the rebalance message): the iterator does not throw, the other topic keeps
    // being delivered and committed, and the deleted partitions are reported revoked.
    const gone = await createTopic(2);
    const kept = await createTopic(1);
    await produce(gone, 2, 2);
    await produce(kept, 1, 2);
    const holders = new Holders();
    const sub = client()
      .consumer()
      .subscribe({ group: "deleted", topics: [gone, kept], autoCommitIntervalMs: 50, ...holders.watch("x") });
    const r = collect(sub);
    let failure: unknown;
    r.done.catch((e: unknown) => {
      failure = e;
    });
    const ok = (cond: () => boolean) => () => {
      if (failure !== undefined) throw failure;
      return cond();
    };
    await until(
      "6 read",
      ok(() => r.records.length >= 6),
    );
    await client().admin().deleteTopic(gone);
    await until(
      "the deleted topic's partitions revoked",
      ok(() => holders.of("x").length === 1),
    );
    expect(holders.of("x")).toEqual([`${kept}/0`]);
    for (let i = 0; i < 3; i++) {
      await produce(kept, 1, 1, 2 + i);
      await new Promise((res) => setTimeout(res, 50));
    }
    await until(
      "the kept topic's new records read",
      ok(() => r.records.filter((x) => x.topic === kept).length >= 5),
    );
    expect(r.records.filter((x) => x.topic === kept).map(textOf)).toEqual([
      "p0-0",
      "p0-1",
      "p0-2",
      "p0-3",
      "p0-4",
    ]);
    expect(sub.assignment()).toEqual([{ topic: kept, partition: 0 }]);
    await sub.close();
    await r.done; // no TopicNotFoundError
    expect(failure).toBeUndefined();
    expect((await committed("deleted")).get(`${kept}/0`)).toBe(5n);
    expect(holders.violations).toEqual([]);
  });

  it("waits for the record in hand before giving up its partition", async () => {
    // Ensures a revocation of the partition whose record the application is processing happens
    // only when it asks for the next record, and that record then counts as processed.
    const topic = await createTopic(2);
    await produce(topic, 2, 1);
    const holders = new Holders();
    const a = client()
      .consumer()
      .subscribe({
        group: "inhand",
        topics: [topic],
        memberName: "a",
        autoCommitIntervalMs: 0,
        ...holders.watch("a"),
      });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let holding: ConsumedRecord | undefined;
    const done = (async () => {
      for await (const r of a) {
        if (r.partition === 1 && holding === undefined) {
          holding = r;
          await gate;
        }
      }
    })();
    await until("a holds a record of partition 1", () => holding !== undefined);
    // "b" sorts after "a": the rebalance moves partition 1 to b.
    const b = client()
      .consumer()
      .subscribe({ group: "inhand", topics: [topic], memberName: "b", ...holders.watch("b") });
    const rb = collect(b);
    await new Promise((r) => setTimeout(r, 500));
    expect(holders.of("a").sort()).toEqual([`${topic}/0`, `${topic}/1`]); // still held: not released
    expect(holders.of("b")).toEqual([]);
    release();
    await until("b got partition 1", () => holders.of("b").length === 1);
    expect(holders.of("b")).toEqual([`${topic}/1`]);
    // a committed the record it processed before releasing: b does not read it again.
    expect((await committed("inhand")).get(`${topic}/1`)).toBe(1n);
    await produce(topic, 2, 1, 1);
    await until("b read the new record", () => rb.records.length >= 1);
    expect(rb.records.map(textOf)).toEqual(["p1-1"]);
    await Promise.all([a.close(), b.close()]);
    await Promise.all([done, rb.done]);
    expect(holders.violations).toEqual([]);
  });

  it("rejoins after the broker restarts and resumes at the committed offsets", async () => {
    // Ensures a lost membership (the stream ends with UNAVAILABLE) is reported as revoked and
    // rejoined with backoff, and reading resumes at the committed offset: nothing read twice.
    let local = await startTestBroker();
    try {
      const c = createClient({ brokers: local.address, retry: { maxDelayMs: 100 } });
      clients.push(c);
      await c.admin().createTopic("restart", { partitions: 1 });
      const producer = c.producer();
      await producer.send("restart", [{ value: "r0" }, { value: "r1" }]);
      const events: string[] = [];
      const sub = c.consumer().subscribe({
        group: "g",
        topics: ["restart"],
        autoCommitIntervalMs: 50,
        onAssigned: () => events.push("assigned"),
        onRevoked: () => events.push("revoked"),
      });
      const r = collect(sub);
      await until("2 read", () => r.records.length >= 2);
      await until("committed", async () => {
        const stub = new GroupServiceClient(local.address, credentials.createInsecure());
        try {
          const res = await new Promise<FetchCommittedOffsetsResponse>((resolve, reject) =>
            stub.fetchCommittedOffsets({ groupId: "g", topics: [] }, (err, x) =>
              err ? reject(err) : resolve(x),
            ),
          );
          return res.offsets[0]?.offset === 2n;
        } finally {
          stub.close();
        }
      });
      const firstMember = sub.memberId;
      // Same port, same data dir: the client reconnects to the restarted broker.
      local = await local.restart({ listen: local.address });
      await until("rejoined", () => events.length >= 3 && sub.memberId !== undefined);
      expect(events).toEqual(["assigned", "revoked", "assigned"]);
      expect(sub.memberId).not.toBe(firstMember);
      await producer.send("restart", [{ value: "r2" }]);
      await until("3 read", () => r.records.length >= 3);
      await new Promise((res) => setTimeout(res, 200));
      expect(r.records.map(textOf)).toEqual(["r0", "r1", "r2"]);
      await sub.close();
      await r.done;
      await producer.close();
    } finally {
      await local.stop();
    }
  });
});
