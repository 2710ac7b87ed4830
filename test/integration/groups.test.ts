/**
 * GroupService against a real broker through raw generated stubs: membership, range assignment,
 * the revocation handshake, session expiry, commit fencing, durable offsets, and the admin calls.
 */
import { rm } from "node:fs/promises";
import { join as joinPath } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { GroupServiceClient } from "../../clients/ts/src/gen/rill/v1/group.js";
import { GroupState } from "../../clients/ts/src/gen/rill/v1/group.js";
import { OffsetPosition } from "../../clients/ts/src/gen/rill/v1/log.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { flat, groupApi, groupStub, RawMember } from "./helpers/group.js";
import { api, produce, produceRequest, record, type Stubs, stubs } from "./helpers/grpc.js";

let broker: TestBroker;
let s: Stubs;
let stub: GroupServiceClient;
const members: RawMember[] = [];

beforeEach(async () => {
  broker = await startTestBroker({ groupMinSessionTimeoutMs: 100 });
  s = stubs(broker.address);
  stub = groupStub(broker.address);
});

afterEach(async () => {
  for (const m of members.splice(0)) m.kill();
  stub.close();
  s.close();
  await broker.stop();
});

/** Closes the stubs, restarts the broker on its data (after `whileDown`, if given) and reopens them. */
async function restart(whileDown?: () => Promise<void>): Promise<void> {
  stub.close();
  s.close();
  await whileDown?.();
  broker = await broker.restart();
  s = stubs(broker.address);
  stub = groupStub(broker.address);
}

function join(groupId: string, options: ConstructorParameters<typeof RawMember>[2]): RawMember {
  const m = new RawMember(stub, groupId, options);
  members.push(m);
  return m;
}

/** The only member of a new group reading `topics`, once it holds `partitions` partitions. */
async function member(
  topics: string[],
  partitions: number,
  options: Omit<ConstructorParameters<typeof RawMember>[2], "topics"> = {},
): Promise<{ g: string; m: RawMember }> {
  const g = randomTopic("grp");
  const m = join(g, { ...options, topics });
  await m.until((x) => x.assigned.length === partitions);
  return { g, m };
}

async function topic(partitions: number): Promise<string> {
  const name = randomTopic("g");
  await api(s).createTopic({ topic: name, partitions, config: undefined });
  return name;
}

async function fill(name: string, partition: number, n: number): Promise<void> {
  const out = await produce(s.log, [
    produceRequest(
      name,
      partition,
      Array.from({ length: n }, (_, i) => record(`v${i}`)),
    ),
  ]);
  expect(out.error).toBeUndefined();
}

/** Resolves once every member's assignment satisfies `check`, bounded. */
async function settled(
  list: RawMember[],
  check: (sets: string[][]) => boolean,
  ms = 10_000,
): Promise<string[][]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const sets = list.map((m) => m.assigned);
    const revoking = list.some((m) => (m.last?.revoking.length ?? 0) > 0);
    if (!revoking && check(sets)) return sets;
    if (Date.now() > deadline) throw new Error(`assignment did not settle: ${JSON.stringify(sets)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sizes = (sets: string[][]) => sets.map((x) => x.length);

describe("integration > consumer groups (GroupService)", () => {
  it("splits 6 partitions over 3 members 2/2/2, disjoint and covering; a 4th member makes it 2/2/1/1", async () => {
    const t = await topic(6);
    const g = randomTopic("grp");
    const list = [join(g, { topics: [t] }), join(g, { topics: [t] }), join(g, { topics: [t] })];
    const three = await settled(
      list,
      (sets) => sets.flat().length === 6 && sizes(sets).every((n) => n === 2),
    );
    expect(new Set(three.flat()).size).toBe(6);
    list.push(join(g, { topics: [t] }));
    const four = await settled(
      list,
      (sets) => sets.flat().length === 6 && sizes(sets).filter((n) => n > 0).length === 4,
    );
    expect(sizes(four).sort()).toEqual([1, 1, 2, 2]);
    expect(new Set(four.flat()).size).toBe(6);
    // The broker's view agrees with the members'.
    const d = await groupApi(stub).describe(g);
    expect(d.state).toBe(GroupState.GROUP_STATE_STABLE);
    expect(d.members).toHaveLength(4);
    for (const m of list) {
      const seen = d.members.find((x) => x.memberId === m.memberId)!;
      expect(flat(seen.assigned)).toEqual(m.assigned);
    }
    expect(d.partitions.every((p) => p.memberId !== "")).toBe(true);
  });

  it("hands a partition to a new member only after its owner released it", async () => {
    const t = await topic(2);
    const g = randomTopic("grp");
    const a = join(g, { topics: [t], autoRelease: false });
    await a.until((m) => m.assigned.length === 2);
    const b = join(g, { topics: [t] });
    await a.until((m) => (m.last?.revoking.length ?? 0) === 1);
    await b.joined();
    await new Promise((r) => setTimeout(r, 100));
    expect(b.assigned).toEqual([]);
    const d = await groupApi(stub).describe(g);
    expect(d.state).toBe(GroupState.GROUP_STATE_REBALANCING);
    expect(d.partitions.find((p) => p.memberId === b.memberId)).toBeUndefined();
    await groupApi(stub).release(g, a.memberId, a.last!.revoking);
    await b.until((m) => m.assigned.length === 1);
    expect(a.assigned.length).toBe(1);
    expect(new Set([...a.assigned, ...b.assigned]).size).toBe(2);
  });

  it("moves a killed member's partitions (stream aborted without a goodbye) to the others", async () => {
    const t = await topic(4);
    const g = randomTopic("grp");
    const a = join(g, { topics: [t], sessionTimeoutMs: 1000 });
    const b = join(g, { topics: [t], sessionTimeoutMs: 1000 });
    await settled([a, b], (sets) => sizes(sets).join() === "2,2");
    const started = performance.now();
    a.kill();
    await b.until((m) => m.assigned.length === 4, 5000, "b to own all four");
    expect(performance.now() - started).toBeLessThan(1000 + 500);
  });

  it("removes a member that stops heartbeating (stream still open) after its session timeout", async () => {
    const t = await topic(2);
    const g = randomTopic("grp");
    const a = join(g, { topics: [t], sessionTimeoutMs: 300 });
    const b = join(g, { topics: [t], sessionTimeoutMs: 300 });
    await settled([a, b], (sets) => sizes(sets).join() === "1,1");
    a.freeze();
    await b.until((m) => m.assigned.length === 2, 5000, "b to own both");
    await a.until((m) => m.ended, 2000, "a's stream to end");
    expect(a.error?.code).toBe(status.FAILED_PRECONDITION);
    expect(a.error?.details).toMatch(/no heartbeat/);
    // The removed member can no longer commit.
    await expect(a.commit([{ topic: t, partition: 0, offset: 0n }])).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
    });
  });

  it("refuses a commit with a stale generation, for a partition not owned, and from an unknown member", async () => {
    const t = await topic(2);
    await fill(t, 0, 5);
    await fill(t, 1, 5);
    const g = randomTopic("grp");
    const a = join(g, { topics: [t] });
    await a.until((m) => m.assigned.length === 2);
    const first = a.generation;
    await a.commit([{ topic: t, partition: 1, offset: 3n }]);
    const b = join(g, { topics: [t] });
    await settled([a, b], (sets) => sizes(sets).join() === "1,1");
    const moved = b.assigned[0]!;
    const partition = Number(moved.split("/")[1]);
    // b got the partition in a newer generation: a commit tagged with the old one is stale.
    await expect(b.commit([{ topic: t, partition, offset: 4n }], first)).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringMatching(/stale generation/),
    });
    await expect(a.commit([{ topic: t, partition, offset: 4n }])).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringMatching(/does not own/),
    });
    await expect(
      groupApi(stub).commit({
        groupId: g,
        memberId: "nobody",
        generationId: b.generation,
        offsets: [{ topic: t, partition, offset: 1n, metadata: "" }],
      }),
    ).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await b.commit([{ topic: t, partition, offset: 4n }]);
    const got = await groupApi(stub).committed(g);
    expect(got.offsets.find((o) => o.partition === partition)?.offset).toBe(4n);
  });

  it("validates requests before touching state", async () => {
    const t = await topic(1);
    await fill(t, 0, 3);
    const before = await groupApi(stub).list();
    const bad = join("../etc", { topics: [t] });
    await bad.until((m) => m.ended);
    expect(bad.error?.code).toBe(status.INVALID_ARGUMENT);
    const missing = join("g1", { topics: ["no-such-topic"] });
    await missing.until((m) => m.ended);
    expect(missing.error?.code).toBe(status.NOT_FOUND);
    const tooShort = join("g1", { topics: [t], sessionTimeoutMs: 5 });
    await tooShort.until((m) => m.ended);
    expect(tooShort.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(tooShort.error?.details).toMatch(/session_timeout_ms must be between 100/);
    // Refused joins left nothing behind: no group was created.
    expect(await groupApi(stub).list()).toEqual(before);
    await expect(groupApi(stub).describe("g1")).rejects.toMatchObject({ code: status.NOT_FOUND });
    const ok = join("g1", { topics: [t] });
    await ok.until((m) => m.assigned.length === 1);
    await expect(ok.commit([{ topic: t, partition: 0, offset: 4n }])).rejects.toMatchObject({
      code: status.OUT_OF_RANGE,
      details: expect.stringMatching(/past its high watermark 3/),
    });
    await expect(ok.commit([{ topic: t, partition: 0, offset: 1n }], 0n)).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/generation_id is required/),
    });
    await expect(ok.commit([{ topic: t, partition: 7, offset: 0n }])).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    expect((await groupApi(stub).committed("g1")).offsets).toEqual([]);
  });

  it("gives extra members nothing; they take over when an owner leaves", async () => {
    const t = await topic(2);
    const g = randomTopic("grp");
    const list = [join(g, { topics: [t] }), join(g, { topics: [t] }), join(g, { topics: [t] })];
    const sets = await settled(list, (x) => x.flat().length === 2);
    expect(sizes(sets).sort()).toEqual([0, 1, 1]);
    const owner = list.find((m) => m.assigned.length > 0)!;
    const idle = list.find((m) => m.assigned.length === 0)!;
    await owner.leave();
    await idle.until((m) => m.assigned.length === 1, 5000, "the idle member to take over");
    const rest = list.filter((m) => m !== owner);
    const after = await settled(rest, (x) => x.flat().length === 2);
    expect(new Set(after.flat()).size).toBe(2);
  });

  it("splits each topic among its own readers when members read different topics", async () => {
    const x = await topic(2);
    const y = await topic(3);
    const g = randomTopic("grp");
    const a = join(g, { topics: [x, y] });
    const b = join(g, { topics: [x] });
    const sets = await settled([a, b], (v) => v.flat().length === 5);
    const [ofA, ofB] = sets as [string[], string[]];
    expect(ofB.every((p) => p.startsWith(`${x}/`))).toBe(true);
    expect(ofA.filter((p) => p.startsWith(`${y}/`))).toHaveLength(3);
    expect(ofA.filter((p) => p.startsWith(`${x}/`))).toHaveLength(1);
  });

  it("rebalances when a subscribed topic gains partitions", async () => {
    const t = await topic(2);
    const g = randomTopic("grp");
    const a = join(g, { topics: [t] });
    const b = join(g, { topics: [t] });
    await settled([a, b], (v) => sizes(v).join() === "1,1");
    const before = a.generation;
    await new Promise<void>((resolve, reject) =>
      s.admin.addPartitions({ topic: t, partitions: 4 }, (err) => (err ? reject(err) : resolve())),
    );
    const sets = await settled([a, b], (v) => sizes(v).join() === "2,2");
    expect(new Set(sets.flat()).size).toBe(4);
    expect(a.generation).toBeGreaterThan(before);
  });

  it("describes lag as the records left unread, and resets and deletes only an empty group", async () => {
    const t = await topic(3);
    await fill(t, 0, 10);
    await fill(t, 1, 7);
    const { g, m } = await member([t], 3);
    await m.commit([
      { topic: t, partition: 0, offset: 4n },
      { topic: t, partition: 1, offset: 7n },
    ]);
    const d = await groupApi(stub).describe(g);
    expect(d.partitions.map((p) => [p.partition, p.committedOffset, p.highWatermark, p.lag])).toEqual([
      [0, 4n, 10n, 6n],
      [1, 7n, 7n, 0n],
      [2, undefined, 0n, 0n],
    ]);
    const reset = groupApi(stub).reset({
      groupId: g,
      topics: [t],
      to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
    });
    await expect(reset).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await expect(groupApi(stub).deleteGroup(g)).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await m.leave();
    await m.until((x) => x.ended);
    const list = await groupApi(stub).list();
    expect(list.groups.find((x) => x.groupId === g)).toMatchObject({
      state: GroupState.GROUP_STATE_EMPTY,
      memberCount: 0,
      topics: [t],
    });
    const r = await groupApi(stub).reset({
      groupId: g,
      topics: [t],
      to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
    });
    expect(r.offsets.map((o) => o.offset)).toEqual([0n, 0n, 0n]);
    const after = await groupApi(stub).describe(g);
    expect(after.partitions.map((p) => p.lag)).toEqual([10n, 7n, 0n]);
    await groupApi(stub).reset({ groupId: g, topics: [t], to: { $case: "offset", value: 8n } });
    expect((await groupApi(stub).committed(g)).offsets.map((o) => o.offset)).toEqual([8n, 7n, 0n]);
    await groupApi(stub).deleteGroup(g);
    await expect(groupApi(stub).describe(g)).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(groupApi(stub).deleteGroup(g)).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it("keeps committed offsets across a graceful restart", async () => {
    const t = await topic(2);
    await fill(t, 0, 5);
    await fill(t, 1, 5);
    const { g, m } = await member([t], 2);
    await m.commit([
      { topic: t, partition: 0, offset: 2n },
      { topic: t, partition: 1, offset: 5n },
    ]);
    await m.commit([{ topic: t, partition: 0, offset: 3n }]);
    m.kill();
    await restart();
    const got = await groupApi(stub).committed(g);
    expect(got.offsets.map((o) => [o.topic, o.partition, o.offset])).toEqual([
      [t, 0, 3n],
      [t, 1, 5n],
    ]);
  });

  it("forgets a deleted topic's offsets, so a re-created topic starts fresh", async () => {
    const t = await topic(1);
    await fill(t, 0, 5);
    const { g, m } = await member([t], 1);
    await m.commit([{ topic: t, partition: 0, offset: 5n }]);
    await m.leave();
    await api(s).deleteTopic({ topic: t });
    const deadline = Date.now() + 5000;
    while ((await groupApi(stub).committed(g)).offsets.length > 0) {
      if (Date.now() > deadline) throw new Error("offsets of the deleted topic were not forgotten");
      await new Promise((r) => setTimeout(r, 20));
    }
    await api(s).createTopic({ topic: t, partitions: 1, config: undefined });
    await fill(t, 0, 8);
    const fresh = join(g, { topics: [t] });
    await fresh.until((x) => x.assigned.length === 1);
    expect((await groupApi(stub).committed(g)).offsets).toEqual([]);
    const d = await groupApi(stub).describe(g);
    expect(d.partitions.map((p) => [p.committedOffset, p.lag])).toEqual([[undefined, 8n]]);
  });

  it("keeps offsets of a topic missing at start, and forgets them once a topic of that name is created", async () => {
    // A missing topic directory (a wrong mount, say) must not wipe offsets on start; a topic
    // created under that name has no history, so the old offsets must not apply to it.
    const keep = await topic(1);
    const lost = await topic(1);
    await fill(keep, 0, 3);
    await fill(lost, 0, 3);
    const { g, m } = await member([keep, lost], 2);
    await m.commit([
      { topic: keep, partition: 0, offset: 2n },
      { topic: lost, partition: 0, offset: 3n },
    ]);
    await m.leave();
    await restart(async () => {
      await broker.broker.shutdown();
      await rm(joinPath(broker.dataDir, "topics", lost), { recursive: true });
    });
    const kept = await groupApi(stub).committed(g);
    expect(kept.offsets.map((o) => [o.topic, o.offset])).toEqual(
      [
        [keep, 2n],
        [lost, 3n],
      ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
    await api(s).createTopic({ topic: lost, partitions: 1, config: undefined });
    const deadline = Date.now() + 5000;
    for (;;) {
      const got = await groupApi(stub).committed(g);
      if (got.offsets.length === 1) {
        expect(got.offsets.map((o) => [o.topic, o.offset])).toEqual([[keep, 2n]]);
        break;
      }
      if (Date.now() > deadline) throw new Error("the re-created topic kept its old offsets");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("on a graceful shutdown asks members to commit and release before it ends their streams", async () => {
    const t = await topic(2);
    await fill(t, 0, 6);
    await fill(t, 1, 6);
    const { g, m } = await member([t], 2, { autoRelease: false });
    // Like a client: when asked to give partitions up, commit what was processed, then release.
    let handedBack = false;
    const handOver = m
      .until((x) => flat(x.last?.revoking ?? []).length === 2, 10_000, "the drain's revocation")
      .then(async () => {
        await m.commit([
          { topic: t, partition: 0, offset: 5n },
          { topic: t, partition: 1, offset: 6n },
        ]);
        await groupApi(stub).release(g, m.memberId, m.last!.revoking, m.generation);
        handedBack = true;
      });
    const stopping = broker.broker.shutdown();
    await handOver;
    await stopping;
    expect(handedBack).toBe(true);
    expect(m.error?.code).toBe(status.UNAVAILABLE);
    await restart();
    const got = await groupApi(stub).committed(g);
    expect(got.offsets.map((o) => o.offset)).toEqual([5n, 6n]);
  });
});
