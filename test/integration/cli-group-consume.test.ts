/**
 * `rill consume TOPIC --group G` end to end, as child processes against a real broker: `--max N`
 * prints N records and commits exactly those, so the next run continues after them; SIGINT commits
 * what was printed and leaves the group with exit 0; the options that make no sense with a group
 * are usage errors.
 */
import { credentials } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type DescribeGroupResponse,
  type FetchCommittedOffsetsResponse,
  GroupServiceClient,
} from "../../clients/ts/src/gen/rill/v1/group.js";
import { createClient } from "../../clients/ts/src/index.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { buildIfMissing, cli } from "./helpers/cli.js";

let broker: TestBroker;
let groupStub: GroupServiceClient;
const cmd = cli(() => broker.address);

/** Starts `rill args... --broker ADDR`; the caller waits for `closed`. */
const start = (args: string[]) => cmd.start(args);
/** Runs `rill args...` to completion, killed by PID if it overruns. */
const rill = (args: string[]) => cmd.run(args);

async function committed(group: string): Promise<Map<number, bigint>> {
  const res = await new Promise<FetchCommittedOffsetsResponse>((resolve, reject) =>
    groupStub.fetchCommittedOffsets({ groupId: group, topics: [] }, (e, r) => (e ? reject(e) : resolve(r))),
  );
  return new Map(res.offsets.map((o) => [o.partition, o.offset]));
}

async function members(group: string): Promise<number> {
  const res = await new Promise<DescribeGroupResponse | undefined>((resolve) =>
    groupStub.describeGroup({ groupId: group }, (e, r) => resolve(e ? undefined : r)),
  );
  return res?.members.length ?? 0;
}

/** Creates a topic with `partitions` partitions and `perPartition` records `p<p>-<i>` in each. */
async function topicWith(partitions: number, perPartition: number): Promise<string> {
  const topic = randomTopic("cg");
  const client = createClient({ brokers: broker.address });
  try {
    await client.admin().createTopic(topic, { partitions });
    const records = [];
    for (let p = 0; p < partitions; p++) {
      for (let i = 0; i < perPartition; i++) records.push({ partition: p, value: `p${p}-${i}` });
    }
    await client.producer().send(topic, records);
  } finally {
    await client.close();
  }
  return topic;
}

const lines = (s: string): string[] => (s === "" ? [] : s.trimEnd().split("\n"));

beforeAll(async () => {
  buildIfMissing("clients", "cli", "src", "main.js");
  broker = await startTestBroker();
  groupStub = new GroupServiceClient(broker.address, credentials.createInsecure());
}, 120_000);

afterEach(() => cmd.killAll());

afterAll(async () => {
  groupStub?.close();
  await broker?.stop();
});

describe("client > cli > consume --group", () => {
  it("prints --max records, commits exactly those, and the next run continues after them", async () => {
    // Ensures no record is printed twice and none skipped across runs of the same group.
    const topic = await topicWith(3, 10);
    const first = await rill(["consume", topic, "--group", "cli-max", "--max", "7"]);
    expect(first.code, first.stderr).toBe(0);
    expect(lines(first.stdout)).toHaveLength(7);
    const c1 = await committed("cli-max");
    expect([...c1.values()].reduce((a, b) => a + b, 0n)).toBe(7n);
    expect(await members("cli-max")).toBe(0); // it left the group
    const second = await rill(["consume", topic, "--group", "cli-max", "--max", "23", "--format", "json"]);
    expect(second.code, second.stderr).toBe(0);
    const rows = lines(second.stdout).map((l) => JSON.parse(l) as { value: string; partition: number });
    expect(rows).toHaveLength(23);
    const all = [...lines(first.stdout), ...rows.map((r) => r.value)];
    expect(new Set(all).size).toBe(30);
    const expected = [];
    for (let p = 0; p < 3; p++) for (let i = 0; i < 10; i++) expected.push(`p${p}-${i}`);
    expect(all.sort()).toEqual(expected.sort());
    const c2 = await committed("cli-max");
    expect([...c2.entries()].sort()).toEqual([
      [0, 10n],
      [1, 10n],
      [2, 10n],
    ]);
  });

  it("commits what it printed when interrupted with SIGINT, and exits 0", async () => {
    // Ensures SIGINT ends a group consumer cleanly: committed offsets match the printed records.
    const topic = await topicWith(2, 25);
    const run = start(["consume", topic, "--group", "cli-int", "--format", "json"]);
    const deadline = Date.now() + 20_000;
    while (lines(run.out()).length < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(lines(run.out())).toHaveLength(50);
    expect(await members("cli-int")).toBe(1);
    process.kill(run.child.pid!, "SIGINT");
    const result = await run.closed;
    expect(result.code, result.stderr).toBe(0);
    const printed = lines(result.stdout).map((l) => JSON.parse(l) as { partition: number; offset: string });
    const next = new Map<number, bigint>();
    for (const r of printed) {
      const o = BigInt(r.offset) + 1n;
      if ((next.get(r.partition) ?? 0n) < o) next.set(r.partition, o);
    }
    expect([...(await committed("cli-int")).entries()].sort()).toEqual([...next.entries()].sort());
    expect(next.get(0)).toBe(25n);
    expect(await members("cli-int")).toBe(0);
    // A second run has nothing left to print: it is stopped by SIGTERM, with nothing printed.
    const again = start(["consume", topic, "--group", "cli-int"]);
    const joinedBy = Date.now() + 10_000;
    while ((await members("cli-int")) === 0 && Date.now() < joinedBy)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    process.kill(again.child.pid!, "SIGTERM");
    const r2 = await again.closed;
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toBe("");
  });

  it("commits exactly what it printed when interrupted in the middle of a backlog", async () => {
    // Ensures a SIGINT that lands while records are being printed still commits exactly the
    // printed ones: per partition, printed offsets are 0..k-1 and the committed offset is k.
    const topic = await topicWith(2, 10_000);
    const run = start(["consume", topic, "--group", "cli-mid", "--format", "json"]);
    const deadline = Date.now() + 20_000;
    while (lines(run.out()).length < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    process.kill(run.child.pid!, "SIGINT");
    const result = await run.closed;
    expect(result.code, result.stderr).toBe(0);
    const printed = lines(result.stdout).map((l) => JSON.parse(l) as { partition: number; offset: string });
    expect(printed.length).toBeGreaterThanOrEqual(100);
    expect(printed.length).toBeLessThan(20_000); // it really was interrupted mid-way
    const byPartition = new Map<number, bigint[]>();
    for (const r of printed)
      byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), BigInt(r.offset)]);
    const expected = new Map<number, bigint>();
    for (const [p, offsets] of byPartition) {
      expect(offsets).toEqual(offsets.map((_, i) => BigInt(i)));
      expected.set(p, BigInt(offsets.length));
    }
    expect([...(await committed("cli-mid")).entries()].sort()).toEqual([...expected.entries()].sort());
  });

  it("refuses --partition, --follow and an offset --from with --group (exit 2)", async () => {
    // Ensures the options that contradict group consumption are usage errors.
    for (const extra of [["--partition", "0"], ["--follow"], ["--from", "5"]]) {
      const r = await rill(["consume", "whatever", "--group", "g", ...extra]);
      expect(r.code, `${extra.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/^rill: .*--group/);
    }
  });

  it("reports a missing topic", async () => {
    // Ensures a NOT_FOUND from JoinGroup becomes the usual one-line message, exit 1.
    const r = await rill(["consume", randomTopic("none"), "--group", "g"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not found/);
  });
});
