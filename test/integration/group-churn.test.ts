/**
 * Consumer groups under churn, end to end: TS-client subscriptions join and leave while a producer
 * writes. With clean joins and leaves only, the group receives every record exactly once; at no
 * instant do two members hold a partition — checked from the clients' assigned/revoked events and
 * from the broker's DescribeGroup, sampled throughout.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { GroupSubscription } from "../../clients/ts/src/consumer/group-subscription.js";
import { createClient, type RillClient } from "../../clients/ts/src/index.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { flat, groupApi, groupStub } from "./helpers/group.js";

let broker: TestBroker;
let client: RillClient;

beforeEach(async () => {
  broker = await startTestBroker({ groupMinSessionTimeoutMs: 100 });
  client = createClient({ brokers: broker.address });
});

afterEach(async () => {
  await client.close();
  await broker.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** partition key → the member holding it, per the members' own events; throws on a double hold. */
class Holders {
  private readonly holder = new Map<string, string>();
  readonly violations: string[] = [];

  assigned(member: string, keys: string[]): void {
    for (const k of keys) {
      const h = this.holder.get(k);
      if (h !== undefined && h !== member)
        this.violations.push(`${k} assigned to ${member} while ${h} holds it`);
      this.holder.set(k, member);
    }
  }

  revoked(member: string, keys: string[]): void {
    for (const k of keys) {
      if (this.holder.get(k) === member) this.holder.delete(k);
      else this.violations.push(`${member} revoked ${k} it did not hold`);
    }
  }
}

describe("integration > consumer groups under churn", () => {
  it("delivers every record exactly once across clean joins and leaves, never with two holders", async () => {
    const topic = randomTopic("churn");
    const group = randomTopic("grp");
    const admin = client.admin();
    await admin.createTopic(topic, { partitions: 6 });
    const holders = new Holders();
    const seen = new Map<string, number>();
    const live: { name: string; sub: GroupSubscription; done: Promise<void> }[] = [];
    let joined = 0;

    const start = () => {
      const name = `m${joined++}`;
      const sub = client.consumer().subscribe({
        group,
        topics: [topic],
        from: "earliest",
        memberName: name,
        sessionTimeoutMs: 5000,
        autoCommitIntervalMs: 200,
      });
      const keys = (tps: { topic: string; partition: number }[]) =>
        tps.map((t) => `${t.topic}/${t.partition}`);
      sub.on("assigned", (tps) => holders.assigned(name, keys(tps)));
      sub.on("revoked", (tps) => holders.revoked(name, keys(tps)));
      const done = (async () => {
        for await (const r of sub) {
          const v = r.value.toString();
          seen.set(v, (seen.get(v) ?? 0) + 1);
        }
      })();
      live.push({ name, sub, done });
    };

    // The broker's view, sampled: no partition in two members' assignments.
    const stub = groupStub(broker.address);
    let sampling = true;
    let samples = 0;
    const brokerViolations: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        const d = await groupApi(stub)
          .describe(group)
          .catch(() => undefined);
        if (d) {
          samples++;
          const owned = d.members.flatMap((m) => flat(m.assigned));
          if (new Set(owned).size !== owned.length) brokerViolations.push(JSON.stringify(owned));
        }
        await sleep(5);
      }
    })();

    const producer = client.producer({ lingerMs: 0 });
    const total = 3000;
    let produced = 0;
    const production = (async () => {
      while (produced < total) {
        const n = Math.min(50, total - produced);
        await producer.send(
          topic,
          Array.from({ length: n }, (_, i) => ({ key: `k${produced + i}`, value: `v${produced + i}` })),
        );
        produced += n;
        await sleep(10);
      }
      await producer.flush();
    })();

    start();
    start();
    // Churn: members come and go while records flow (bounded: 8 steps).
    for (let step = 0; step < 8; step++) {
      await sleep(80);
      if (step % 3 === 2 && live.length > 1) {
        const leaving = live.splice(0, 1)[0]!;
        await leaving.sub.close();
        await leaving.done;
      } else {
        start();
      }
    }
    await production;
    const deadline = Date.now() + 20_000;
    while (seen.size < total && Date.now() < deadline) await sleep(20);
    for (const m of live.splice(0)) {
      await m.sub.close();
      await m.done;
    }
    sampling = false;
    await sampler;
    stub.close();

    expect(holders.violations).toEqual([]);
    expect(brokerViolations).toEqual([]);
    expect(samples).toBeGreaterThan(10);
    expect(seen.size).toBe(total);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    expect(duplicates).toBe(0);
  });

  it("gives two groups every record each (pub/sub) and splits within a group (point-to-point)", async () => {
    const topic = randomTopic("pubsub");
    await client.admin().createTopic(topic, { partitions: 4 });
    const producer = client.producer();
    const total = 400;
    await producer.send(
      topic,
      Array.from({ length: total }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
    );
    await producer.flush();
    const read = async (group: string, members: number) => {
      const subs = Array.from({ length: members }, () =>
        client.consumer().subscribe({ group, topics: [topic], from: "earliest", sessionTimeoutMs: 5000 }),
      );
      const got = subs.map(() => [] as string[]);
      const loops = subs.map(async (sub, i) => {
        for await (const r of sub) got[i]!.push(r.value.toString());
      });
      const deadline = Date.now() + 15_000;
      while (got.flat().length < total && Date.now() < deadline) await sleep(20);
      await sleep(100); // anything more would be a duplicate
      await Promise.all(subs.map((s) => s.close()));
      await Promise.all(loops);
      return got;
    };
    const [a, b] = await Promise.all([read(randomTopic("ga"), 2), read(randomTopic("gb"), 1)]);
    expect(new Set(a!.flat()).size).toBe(total);
    expect(a!.flat()).toHaveLength(total);
    expect(a!.every((part) => part.length > 0)).toBe(true); // both members got a share
    expect(new Set(b!.flat()).size).toBe(total);
    expect(b!.flat()).toHaveLength(total);
  });

  it("redelivers nothing across a graceful broker restart: members commit on the drain's revocation", async () => {
    // No auto-commit: only the revocation the drain sends can save the members' progress.
    const topic = randomTopic("rolling");
    const group = randomTopic("grp");
    await client.admin().createTopic(topic, { partitions: 4 });
    const producer = client.producer();
    await producer.send(
      topic,
      Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
    );
    await producer.flush();
    await producer.close();
    await client.close();
    broker = await broker.restart({ groupMinSessionTimeoutMs: 100, listen: broker.address });
    client = createClient({ brokers: broker.address, retry: { maxAttempts: 100, maxDelayMs: 100 } });
    const seen: string[] = [];
    const subs = [0, 1].map(() =>
      client
        .consumer()
        .subscribe({ group, topics: [topic], autoCommitIntervalMs: 0, sessionTimeoutMs: 5000 }),
    );
    const loops = subs.map(async (sub) => {
      for await (const r of sub) seen.push(r.value.toString());
    });
    const deadline = Date.now() + 15_000;
    while (seen.length < 200 && Date.now() < deadline) await sleep(10);
    expect(seen.length).toBe(200);
    // Same address and data: the members lose their membership, rejoin and carry on.
    broker = await broker.restart({ groupMinSessionTimeoutMs: 100, listen: broker.address });
    // grpc-js channels to one address share a subchannel, which may still be backing off from
    // the restart: retry these calls (bounded) instead of failing on the first UNAVAILABLE.
    const fresh = createClient({ brokers: broker.address, retry: { maxAttempts: 100, maxDelayMs: 100 } });
    const committed = await fresh.admin().fetchCommittedOffsets(group);
    expect(committed.reduce((n, o) => n + o.offset, 0n)).toBe(200n);
    await fresh.producer().send(topic, [{ key: "late", value: "v200" }]);
    await fresh.close();
    const until = Date.now() + 15_000;
    while (!seen.includes("v200") && Date.now() < until) await sleep(10);
    await sleep(200); // anything redelivered would show up by now
    await Promise.all(subs.map((sub) => sub.close()));
    await Promise.all(loops);
    expect(seen.filter((v) => v === "v200")).toHaveLength(1);
    expect(new Set(seen).size).toBe(seen.length);
  });
});
