/**
 * Raw-bytes fuzzing of every RPC the broker serves (issue 5, "Hostile and malformed input").
 *
 * A generic client with identity (de)serializers (helpers/raw-client.ts) sends seeded cases — random
 * bytes and mutations of valid requests (helpers/wire-mutations.ts: bit flips, truncation,
 * splicing, huge or off-by-one lengths, duplicated and dropped fields, wrong wire types, extreme
 * varints, at any depth) — as the raw request(s) of each method: unary, client-streaming and bidi
 * calls carry 1-4 messages (some valid), server-streaming calls run under a short deadline.
 *
 * Oracles:
 * - the broker never crashes: after every method, the same in-process broker answers health SERVING;
 * - every call ends with a status in ALLOWED for its method (never INTERNAL or UNKNOWN, never a
 *   hang), and every per-batch ProduceSession error code is in SESSION_ERRORS;
 * - broker A (logs and read-only calls) ends with every file under its data dir byte-identical,
 *   except the partitions of FUZZ_TOPIC that acknowledged appends, whose logs only grew, by exactly
 *   the records acknowledged (Produce results, ProduceSession results, and the batches counted by
 *   the rill-appended-batches trailer of a failed stream);
 * - broker B (admin and group calls that change state) changes a file only where an OK answer says
 *   it may: topics/<t>/ for an acknowledged create/delete/add-partitions of t, groups/ for an
 *   acknowledged commit, reset or group delete (or a topic create/delete, which forgets offsets).
 *
 * The tests of this file run in order and share the two brokers; the last ones check the totals.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { status as Status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AddPartitionsRequest,
  CreateTopicRequest,
  DeleteTopicRequest,
} from "../../clients/ts/src/gen/rill/v1/admin.js";
import {
  ProduceRequest,
  ProduceResponse,
  ProduceSessionResponse,
} from "../../clients/ts/src/gen/rill/v1/log.js";
import { startTestBroker, type TestBroker } from "../integration/helpers/broker.js";
import { groupStub, RawMember } from "../integration/helpers/group.js";
import { api, produce, type Stubs, stubs } from "../integration/helpers/grpc.js";
import { healthClient } from "../integration/helpers/health.js";
import { allPaths, diff, type Snapshot, snapshot } from "./helpers/disk.js";
import { allMethods, type Outcome, RawClient, type RawMethod } from "./helpers/raw-client.js";
import { FUZZ_GROUP, FUZZ_TOPIC, GROW_TOPIC, produceRequest, seedsFor } from "./helpers/seeds.js";
import { requestArb } from "./helpers/wire-mutations.js";

const SEED = fc.readConfigureGlobal().seed as number;
/** fast-check runs per method; each run sends CASES_PER_RUN cases at once (the concurrency bound). */
const RUNS_PER_METHOD = 27;
const CASES_PER_RUN = 16;
const MIN_TOTAL = 10_000;
/** Server-streaming calls (Fetch follow, JoinGroup, health Watch) are cut by this deadline. */
const STREAM_DEADLINE_MS = 100;
/** Any other call must finish well within this: reaching it is a hang. */
const CALL_DEADLINE_MS = 10_000;

const S = Status;
/**
 * The statuses each method may answer malformed or hostile input with. DEADLINE_EXCEEDED only for
 * server-streaming methods, whose streams may legitimately stay open; never INTERNAL or UNKNOWN.
 */
const ALLOWED: Record<string, Status[]> = {
  "rill.v1.LogService/Produce": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.RESOURCE_EXHAUSTED],
  // A refused batch is an answer (SESSION_ERRORS); the stream itself ends OK or, for an envelope
  // that cannot be read, INVALID_ARGUMENT (produce-session.ts).
  "rill.v1.LogService/ProduceSession": [S.OK, S.INVALID_ARGUMENT],
  "rill.v1.LogService/Fetch": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.OUT_OF_RANGE, S.DEADLINE_EXCEEDED],
  "rill.v1.LogService/ListOffsets": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.AdminService/CreateTopic": [S.OK, S.INVALID_ARGUMENT, S.ALREADY_EXISTS],
  "rill.v1.AdminService/DeleteTopic": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.AdminService/ListTopics": [S.OK, S.INVALID_ARGUMENT],
  "rill.v1.AdminService/DescribeTopic": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.AdminService/AddPartitions": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.ClusterService/GetMetadata": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.GroupService/JoinGroup": [
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.RESOURCE_EXHAUSTED,
    S.FAILED_PRECONDITION,
    S.DEADLINE_EXCEEDED,
  ],
  "rill.v1.GroupService/Heartbeat": [S.OK, S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  "rill.v1.GroupService/ReleasePartitions": [S.OK, S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  "rill.v1.GroupService/LeaveGroup": [S.OK, S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  "rill.v1.GroupService/CommitOffsets": [
    S.OK,
    S.INVALID_ARGUMENT,
    S.FAILED_PRECONDITION,
    S.NOT_FOUND,
    S.OUT_OF_RANGE,
  ],
  "rill.v1.GroupService/FetchCommittedOffsets": [S.OK, S.INVALID_ARGUMENT],
  "rill.v1.GroupService/ListGroups": [S.OK, S.INVALID_ARGUMENT],
  "rill.v1.GroupService/DescribeGroup": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "rill.v1.GroupService/DeleteGroup": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION],
  "rill.v1.GroupService/ResetOffsets": [
    S.OK,
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.FAILED_PRECONDITION,
    S.OUT_OF_RANGE,
  ],
  "grpc.health.v1.Health/Check": [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  "grpc.health.v1.Health/Watch": [S.INVALID_ARGUMENT, S.DEADLINE_EXCEEDED],
  "grpc.health.v1.Health/List": [S.OK, S.INVALID_ARGUMENT],
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": [S.OK, S.INVALID_ARGUMENT],
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": [S.OK, S.INVALID_ARGUMENT],
};

/** Codes a ProduceSession may answer one refused batch with (the stream goes on). */
const SESSION_ERRORS: Status[] = [S.INVALID_ARGUMENT, S.NOT_FOUND, S.RESOURCE_EXHAUSTED];

/** Methods that change state outside the produced logs: fuzzed against broker B. */
const ON_B = new Set([
  "rill.v1.AdminService/CreateTopic",
  "rill.v1.AdminService/DeleteTopic",
  "rill.v1.AdminService/AddPartitions",
  "rill.v1.GroupService/JoinGroup",
  "rill.v1.GroupService/Heartbeat",
  "rill.v1.GroupService/ReleasePartitions",
  "rill.v1.GroupService/LeaveGroup",
  "rill.v1.GroupService/CommitOffsets",
  "rill.v1.GroupService/DeleteGroup",
  "rill.v1.GroupService/ResetOffsets",
]);

const METHODS = allMethods();

interface Side {
  tb: TestBroker;
  raw: RawClient;
  stubs: Stubs;
  before: Snapshot;
  seeds: Record<string, Buffer[]>;
}
let a: Side;
let b: Side;
let member: RawMember | undefined;
const members: RawMember[] = [];

/** Records acknowledged per partition of FUZZ_TOPIC on broker A. */
const acked = new Map<number, bigint>();
/** OK answers on broker B that may explain a change on disk: [method, request bytes]. */
const okOnB: [string, Buffer][] = [];
const seen = new Map<string, Map<string, number>>();
let total = 0;
/** Largest resident set of this process (both brokers and the clients) seen after a method. */
let peakRss = 0;
/** The first segment of each partition of FUZZ_TOPIC on broker A before fuzzing. */
const initialLogs = new Map<number, Buffer>();

const firstSegment = (dataDir: string, partition: number) =>
  join(dataDir, "topics", FUZZ_TOPIC, String(partition), "00000000000000000000.log");

async function startSide(): Promise<TestBroker> {
  return startTestBroker({ autoCreateTopics: false, fetchHeartbeatMs: 100 });
}

/** Appends a few known batches to both partitions of FUZZ_TOPIC. */
async function fill(s: Stubs): Promise<void> {
  const client = api(s);
  await client.createTopic({ topic: FUZZ_TOPIC, partitions: 2, config: undefined });
  for (let i = 0; i < 3; i++) {
    const r = await produce(s.log, [produceRequest(0), produceRequest(1)]);
    if (r.error) throw r.error;
  }
}

/** Commits offsets for `groupId` through a member that then leaves. */
async function commitAs(address: string, groupId: string): Promise<void> {
  const stub = groupStub(address);
  const m = new RawMember(stub, groupId, { topics: [FUZZ_TOPIC] });
  try {
    await m.until((x) => x.assigned.length === 2, 10_000, "both partitions");
    await m.commit([
      { topic: FUZZ_TOPIC, partition: 0, offset: 2n },
      { topic: FUZZ_TOPIC, partition: 1, offset: 1n },
    ]);
    await m.leave();
  } finally {
    m.kill();
    stub.close();
  }
}

beforeAll(async () => {
  const ta = await startSide();
  const tbB = await startSide();
  const sa = stubs(ta.address);
  const sb = stubs(tbB.address);
  await fill(sa);
  await fill(sb);
  await api(sb).createTopic({ topic: "fz-doomed", partitions: 1, config: undefined });
  await api(sb).createTopic({ topic: GROW_TOPIC, partitions: 1, config: undefined });
  await commitAs(ta.address, FUZZ_GROUP);
  await commitAs(tbB.address, "fg-old");
  // A live member of FUZZ_GROUP on B, so Heartbeat, Commit, Release and Leave seeds can succeed.
  const stub = groupStub(tbB.address);
  member = new RawMember(stub, FUZZ_GROUP, { topics: [FUZZ_TOPIC] });
  members.push(member);
  await member.until((x) => x.assigned.length === 2, 10_000, "both partitions");
  for (const p of [0, 1]) initialLogs.set(p, await readFile(firstSegment(ta.dataDir, p)));
  a = {
    tb: ta,
    raw: new RawClient(ta.address, METHODS),
    stubs: sa,
    before: await snapshot(ta.dataDir),
    seeds: seedsFor(),
  };
  b = {
    tb: tbB,
    raw: new RawClient(tbB.address, METHODS),
    stubs: sb,
    before: await snapshot(tbB.dataDir),
    seeds: seedsFor(member.memberId),
  };
});

afterAll(async () => {
  for (const m of members) m.kill();
  for (const side of [a, b]) {
    side?.raw.close();
    side?.stubs.close();
  }
  await Promise.all([a?.tb.stop(), b?.tb.stop()]);
});

function bump(key: string, outcome: Outcome): void {
  const per = seen.get(key) ?? new Map<string, number>();
  const name = Status[outcome.code] ?? `code ${outcome.code}`;
  per.set(name, (per.get(name) ?? 0) + 1);
  seen.set(key, per);
}

/** Counts the records of acknowledged appends on broker A (Produce and ProduceSession). */
function track(m: RawMethod, requests: Buffer[], outcome: Outcome): void {
  const add = (partition: number, records: bigint) =>
    acked.set(partition, (acked.get(partition) ?? 0n) + records);
  if (m.name === "Produce") {
    if (outcome.code === S.OK) {
      for (const r of ProduceResponse.decode(outcome.messages[0]!).results)
        add(r.partition, BigInt(r.recordCount));
      return;
    }
    // A failed stream appended the batches before the refused one; the trailer says how many.
    const n = Number(outcome.trailers?.get("rill-appended-batches")[0] ?? 0);
    for (const bytes of requests.slice(0, n)) {
      const r = ProduceRequest.decode(bytes);
      add(r.partition, BigInt(r.records ? r.records.records.length : r.recordCount));
    }
  } else if (m.name === "ProduceSession") {
    for (const msg of outcome.messages) {
      const answer = ProduceSessionResponse.decode(msg);
      if (answer.outcome?.$case === "result")
        add(answer.outcome.value.partition, BigInt(answer.outcome.value.recordCount));
    }
  }
}

/** The per-batch errors a ProduceSession answered with. */
function sessionErrors(m: RawMethod, outcome: Outcome): { code: number; message: string }[] {
  if (m.name !== "ProduceSession") return [];
  return outcome.messages.flatMap((msg) => {
    const answer = ProduceSessionResponse.decode(msg);
    return answer.outcome?.$case === "error" ? [answer.outcome.value] : [];
  });
}

function describeCase(key: string, requests: Buffer[], o: Outcome): string {
  return `seed ${SEED}: ${key} answered ${Status[o.code] ?? o.code} "${o.details}" to ${requests
    .map((r) => r.toString("hex"))
    .join(" | ")}`;
}

describe(`raw-bytes fuzzing of every RPC (seed ${SEED})`, () => {
  it("fuzzes every method of every service the broker serves", async () => {
    // ServerReflection list_services (field 7) on the raw client, decoded by hand.
    const req = Buffer.from([0x3a, 0x01, 0x2a]);
    const o = await a.raw.send("grpc.reflection.v1.ServerReflection/ServerReflectionInfo", [req], 5000);
    expect(o.code).toBe(S.OK);
    const served: string[] = [];
    const outer = new BinaryReader(o.messages[0]!);
    while (outer.pos < outer.len) {
      const [field, wt] = outer.tag();
      if (field !== 6) {
        outer.skip(wt);
        continue;
      }
      const list = new BinaryReader(outer.bytes());
      while (list.pos < list.len) {
        const [f, w] = list.tag();
        if (f !== 1) list.skip(w);
        else {
          const svc = new BinaryReader(list.bytes());
          svc.tag();
          served.push(svc.string());
        }
      }
    }
    const fuzzed = [...new Set(METHODS.map((m) => m.service))].sort();
    expect(fuzzed).toEqual(expect.arrayContaining(served));
    expect(served.length).toBeGreaterThanOrEqual(6);
    expect(Object.keys(ALLOWED).sort()).toEqual(METHODS.map((m) => m.key).sort());
  });

  for (const m of METHODS) {
    it(`${m.key}: ${RUNS_PER_METHOD * CASES_PER_RUN} cases`, async () => {
      const side = ON_B.has(m.key) ? b : a;
      const seeds = side.seeds[m.key];
      expect(seeds, `no seeds for ${m.key}`).toBeDefined();
      const one = requestArb(seeds!);
      const requestsArb = m.requestStream
        ? fc.array(one, { minLength: 1, maxLength: 4 })
        : one.map((r) => [r]);
      const deadline = m.responseStream && !m.requestStream ? STREAM_DEADLINE_MS : CALL_DEADLINE_MS;
      const allowed = ALLOWED[m.key]!;
      await fc.assert(
        fc.asyncProperty(
          fc.array(requestsArb, { minLength: CASES_PER_RUN, maxLength: CASES_PER_RUN }),
          async (cases) => {
            const outcomes = await Promise.all(
              cases.map((requests) => side.raw.send(m.key, requests, deadline)),
            );
            // Account for every answer first (state the oracles at the end rely on), then judge.
            outcomes.forEach((o, i) => {
              total++;
              bump(m.key, o);
              if (side === a) track(m, cases[i]!, o);
              else if (o.code === S.OK) for (const r of cases[i]!) okOnB.push([m.key, r]);
            });
            outcomes.forEach((o, i) => {
              expect(allowed, describeCase(m.key, cases[i]!, o)).toContain(o.code);
              for (const e of sessionErrors(m, o))
                expect(
                  SESSION_ERRORS,
                  `${describeCase(m.key, cases[i]!, o)}: batch error ${e.message}`,
                ).toContain(e.code);
            });
          },
        ),
        { numRuns: RUNS_PER_METHOD, endOnFailure: true },
      );
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      // Still the same process, still answering.
      const health = healthClient(side.tb.address);
      try {
        expect(await health.check("")).toBe("SERVING");
      } finally {
        health.close();
      }
    });
  }

  it(`sent at least ${MIN_TOTAL} cases in total`, () => {
    const table = [...seen].map(([k, v]) => `${k}: ${[...v].map(([c, n]) => `${c}=${n}`).join(" ")}`);
    console.log(
      `fuzz seed ${SEED}: ${total} cases, peak RSS ${Math.round(peakRss / 1e6)} MB\n${table.join("\n")}`,
    );
    expect(total).toBeGreaterThanOrEqual(MIN_TOTAL);
  });

  it("left broker A's data dir byte-identical except acknowledged appends", async () => {
    const after = await snapshot(a.tb.dataDir);
    const changed = allPaths(diff(a.before, after));
    const client = api(a.stubs);
    const offsets = await client.listOffsets({
      topic: FUZZ_TOPIC,
      partitions: [0, 1],
      timestampMs: undefined,
    });
    for (const p of offsets.partitions) {
      // 3 batches of 3 records each were produced before fuzzing.
      expect(p.latest, `partition ${p.partition}`).toBe(9n + (acked.get(p.partition) ?? 0n));
    }
    const explained = (path: string) => {
      const match = /^topics\/fz\/(\d+)\//.exec(path);
      return match !== null && (acked.get(Number(match[1])) ?? 0n) > 0n;
    };
    expect(changed.filter((p) => !explained(p))).toEqual([]);
    // Explained directories may only have grown: the log as it was before fuzzing is still there,
    // byte for byte, at the start of each partition's first segment.
    for (const [p, initial] of initialLogs) {
      const now = await readFile(firstSegment(a.tb.dataDir, p));
      expect(
        now.subarray(0, initial.length).equals(initial),
        `partition ${p}: the first ${initial.length} bytes of its log changed`,
      ).toBe(true);
    }
    console.log(
      `broker A: appends acknowledged ${JSON.stringify(Object.fromEntries([...acked].map(([k, v]) => [k, Number(v)])))}, files changed ${changed.length}`,
    );
  });

  it("changed broker B's data dir only where an OK answer allows", async () => {
    const after = await snapshot(b.tb.dataDir);
    const changed = allPaths(diff(b.before, after));
    const topicsTouched = new Set<string>();
    let groupsMayChange = false;
    for (const [key, bytes] of okOnB) {
      const name = key.slice(key.lastIndexOf("/") + 1);
      if (name === "CreateTopic") topicsTouched.add(CreateTopicRequest.decode(bytes).topic);
      if (name === "DeleteTopic") topicsTouched.add(DeleteTopicRequest.decode(bytes).topic);
      if (name === "AddPartitions") topicsTouched.add(AddPartitionsRequest.decode(bytes).topic);
      if (["CommitOffsets", "ResetOffsets", "DeleteGroup", "CreateTopic", "DeleteTopic"].includes(name))
        groupsMayChange = true;
    }
    const explained = (path: string) => {
      if (path.startsWith("groups/")) return groupsMayChange;
      const match = /^topics\/([^/]+)\//.exec(path);
      return match !== null && topicsTouched.has(match[1]!);
    };
    expect(changed.filter((p) => !explained(p))).toEqual([]);
    console.log(`broker B: ${okOnB.length} OK answers, files changed ${changed.length}`);
  });
});
