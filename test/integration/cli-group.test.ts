/**
 * `rill group ...` and `rill topic add-partitions` end to end: the compiled CLI against a real
 * broker, with the group's state made through raw GroupService stubs (JoinGroup, CommitOffsets,
 * LeaveGroup) so the expected lag follows from what was produced and committed.
 */
import { type ClientReadableStream, credentials, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CommitOffsetsResponse,
  type DescribeGroupResponse,
  GroupServiceClient,
  type JoinGroupResponse,
  type LeaveGroupResponse,
  type ResetOffsetsResponse,
} from "../../clients/ts/src/gen/rill/v1/group.js";
import { OffsetPosition } from "../../clients/ts/src/gen/rill/v1/log.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { buildIfMissing, cli, type Run } from "./helpers/cli.js";
import { api, produce, produceRequest, record, type Stubs, stubs } from "./helpers/grpc.js";

let broker: TestBroker;
let s: Stubs;
let groups: GroupServiceClient;
const joins = new Set<ClientReadableStream<JoinGroupResponse>>();

const cmd = cli(() => broker.address);

/** Runs `rill args...`; bounded by `timeoutMs`, killed by PID if it overruns. */
function rill(args: string[], timeoutMs = 30_000): Promise<Run> {
  return cmd.run(args, { timeoutMs });
}

type Callback<T> = (err: ServiceError | null, res: T) => void;

function call<T>(invoke: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** The ServiceError a call fails with (fails the test if it succeeds). */
async function failure(p: Promise<unknown>): Promise<ServiceError> {
  const outcome = await p.then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (outcome === undefined) throw new Error("expected the call to fail");
  return outcome;
}

/**
 * Joins `group` with a raw JoinGroup stream and resolves with the first assignment that owns
 * `partitions` partitions (bounded: 10 s).
 */
function joinMember(group: string, topic: string, partitions: number) {
  const stream = groups.joinGroup({
    groupId: group,
    memberName: "cli-test",
    topics: [topic],
    sessionTimeoutMs: 0,
  });
  joins.add(stream);
  stream.on("error", () => {}); // CANCELLED when the test closes it
  return new Promise<{ stream: ClientReadableStream<JoinGroupResponse>; assignment: JoinGroupResponse }>(
    (resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no full assignment within 10 s")), 10_000);
      stream.on("data", (a: JoinGroupResponse) => {
        const owned = a.assigned.reduce((n, tp) => n + tp.partitions.length, 0);
        if (owned === partitions && a.revoking.length === 0) {
          clearTimeout(timer);
          resolve({ stream, assignment: a });
        }
      });
      stream.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    },
  );
}

/** The rows of the partition table of `rill group describe` (text), split on whitespace. */
function partitionRows(describeOut: string): string[][] {
  const lines = describeOut.split("\n");
  const header = lines.findIndex((l) => l.startsWith("TOPIC "));
  expect(header, describeOut).toBeGreaterThan(0);
  expect(lines[header]!.split(/\s+/)).toEqual(["TOPIC", "PARTITION", "OWNER", "COMMITTED", "LOG-END", "LAG"]);
  return lines
    .slice(header + 1)
    .filter((l) => l.length > 0)
    .map((l) => l.split(/\s+/));
}

beforeAll(async () => {
  // The tests run the compiled CLI: build when it (or its group command) is missing.
  buildIfMissing("clients", "cli", "src", "commands", "group.js");
  broker = await startTestBroker();
  s = stubs(broker.address);
  groups = new GroupServiceClient(broker.address, credentials.createInsecure());
}, 120_000);

afterEach(() => {
  cmd.killAll();
  for (const j of joins) j.cancel();
  joins.clear();
});

afterAll(async () => {
  s?.close();
  groups?.close();
  await broker?.stop();
});

describe("client > cli > groups", () => {
  it("describes committed offsets and lag, resets them, refuses while joined, deletes", async () => {
    // Ensures `rill group` prints what the group committed and the records it has left to read,
    // and that reset-offsets/delete change (or, with a member present, refuse to change) it.
    const topic = randomTopic("gt");
    const group = randomTopic("billing");
    await api(s).createTopic({ topic, partitions: 3, config: {} });
    const produced = [10, 7, 4];
    for (const [p, n] of produced.entries()) {
      const records = Array.from({ length: n }, (_, i) => record(`p${p}-${i}`));
      const r = await produce(s.log, [produceRequest(topic, p, records)]);
      expect(r.error).toBeUndefined();
    }

    // One member owns all three partitions; it commits 4 of partition 0 and all of partition 1.
    const { stream, assignment } = await joinMember(group, topic, 3);
    const member = assignment.memberId;
    await call<CommitOffsetsResponse>((cb) =>
      groups.commitOffsets(
        {
          groupId: group,
          memberId: member,
          generationId: assignment.generationId,
          offsets: [
            { topic, partition: 0, offset: 4n, metadata: "" },
            { topic, partition: 1, offset: 7n, metadata: "" },
          ],
        },
        cb,
      ),
    );

    // While the member is there: it shows as the owner, and reset/delete are refused with the
    // broker's own message.
    const joined = await rill(["group", "describe", group]);
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.stdout).toMatch(/^state\s+stable$/m);
    expect(joined.stdout).toMatch(new RegExp(`^${member}\\s+cli-test\\s+\\S+\\s+${topic}:0,1,2$`, "m"));
    expect(partitionRows(joined.stdout).map((r) => r[2])).toEqual([member, member, member]);
    const refused = await failure(
      call<ResetOffsetsResponse>((cb) =>
        groups.resetOffsets(
          {
            groupId: group,
            topics: [topic],
            to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
          },
          cb,
        ),
      ),
    );
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    const reset = await rill(["group", "reset-offsets", group, "--topic", topic, "--to", "earliest"]);
    expect(reset.code).toBe(1);
    expect(reset.stdout).toBe("");
    expect(reset.stderr).toBe(`rill: ${refused.details} (FAILED_PRECONDITION)\n`);
    const del = await rill(["group", "delete", group]);
    expect(del.code).toBe(1);
    expect(del.stderr).toMatch(/^rill: .+ \(FAILED_PRECONDITION\)\n$/);

    await call<LeaveGroupResponse>((cb) => groups.leaveGroup({ groupId: group, memberId: member }, cb));
    stream.cancel();

    // Committed 4 of 10, 7 of 7, nothing of 4: lag 6, 0 and 4 (from the log start).
    const d = await rill(["group", "describe", group]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`^group\\s+${group}$`, "m"));
    expect(d.stdout).toMatch(/^state\s+empty$/m);
    expect(d.stdout).toMatch(/^members\s+0$/m);
    expect(d.stdout).not.toContain("MEMBER-ID");
    expect(partitionRows(d.stdout)).toEqual([
      [topic, "0", "-", "4", "10", "6"],
      [topic, "1", "-", "7", "7", "0"],
      [topic, "2", "-", "-", "4", "4"],
    ]);

    const json = await rill(["group", "describe", group, "--format", "json"]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      group: string;
      state: string;
      generation: string;
      members: unknown[];
      partitions: Record<string, unknown>[];
    };
    expect(parsed).toMatchObject({ group, state: "empty", members: [] });
    expect(typeof parsed.generation).toBe("string");
    expect(parsed.partitions).toEqual([
      { topic, partition: 0, owner: null, committed: "4", logStart: "0", logEnd: "10", lag: "6" },
      { topic, partition: 1, owner: null, committed: "7", logStart: "0", logEnd: "7", lag: "0" },
      { topic, partition: 2, owner: null, committed: null, logStart: "0", logEnd: "4", lag: "4" },
    ]);

    const list = await rill(["group", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n")[0]!.split(/\s+/)).toEqual(["GROUP", "STATE", "MEMBERS", "TOPICS"]);
    expect(list.stdout).toMatch(new RegExp(`^${group}\\s+empty\\s+0\\s+${topic}$`, "m"));

    // Reset to earliest: every record is unread again.
    const earliest = await rill(["group", "reset-offsets", group, "--topic", topic, "--to", "earliest"]);
    expect(earliest.code, earliest.stderr).toBe(0);
    expect(earliest.stdout).toMatch(/^TOPIC\s+PARTITION\s+OFFSET$/m);
    for (const p of [0, 1, 2]) expect(earliest.stdout).toMatch(new RegExp(`^${topic}\\s+${p}\\s+0$`, "m"));
    const afterEarliest = await rill(["group", "describe", group]);
    expect(partitionRows(afterEarliest.stdout)).toEqual([
      [topic, "0", "-", "0", "10", "10"],
      [topic, "1", "-", "0", "7", "7"],
      [topic, "2", "-", "0", "4", "4"],
    ]);

    // An offset is clamped to each partition's high watermark; a future time means the end.
    const five = await rill(["group", "reset-offsets", group, "-t", topic, "--to", "5"]);
    expect(five.code, five.stderr).toBe(0);
    expect(partitionRows((await rill(["group", "describe", group])).stdout).map((r) => [r[3], r[5]])).toEqual(
      [
        ["5", "5"],
        ["5", "2"],
        ["4", "0"],
      ],
    );
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const latest = await rill(["group", "reset-offsets", group, "--topic", topic, "--to", future]);
    expect(latest.code, latest.stderr).toBe(0);
    expect(partitionRows((await rill(["group", "describe", group])).stdout).map((r) => r[5])).toEqual([
      "0",
      "0",
      "0",
    ]);

    // Deleted: describe reports the broker's NOT_FOUND message and exits 1.
    const deleted = await rill(["group", "delete", group]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toBe(`deleted group "${group}"\n`);
    const missing = await failure(
      call<DescribeGroupResponse>((cb) => groups.describeGroup({ groupId: group }, cb)),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    const gone = await rill(["group", "describe", group]);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toBe("");
    expect(gone.stderr).toBe(`rill: ${missing.details}\n`);
    expect((await rill(["group", "list"])).stdout).not.toContain(group);
  });

  it("adds partitions to a topic", async () => {
    // Ensures `rill topic add-partitions` raises the count that describe then shows, and that the
    // broker's refusal of a count that is not larger exits 1 with its message.
    const topic = randomTopic("grow");
    expect((await rill(["topic", "create", topic, "--partitions", "3"])).code).toBe(0);
    const added = await rill(["topic", "add-partitions", topic, "--partitions", "5"]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe(`topic "${topic}" now has 5 partitions\n`);
    const d = await rill(["topic", "describe", topic]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^partitions\s+5$/m);
    for (const p of [0, 1, 2, 3, 4]) expect(d.stdout).toMatch(new RegExp(`^${p}\\s+0\\s+0\\s`, "m"));
    const same = await rill(["topic", "add-partitions", topic, "--partitions", "5"]);
    expect(same.code).toBe(1);
    expect(same.stderr).toMatch(/^rill: \S.*\n$/);
    expect((await api(s).describeTopic({ topic })).topic!.partitions).toHaveLength(5);
  });

  it("exits 2 for usage errors before calling the broker", async () => {
    // Ensures missing or malformed arguments are reported as usage errors with a clear message.
    const cases: [string[], RegExp][] = [
      [["group", "describe"], /^rill: error: missing required argument 'group'/],
      [["group", "describe", ".."], /^rill: invalid group id "\.\."/],
      [["group", "describe", "g", "--format", "xml"], /^rill: --format must be "text" or "json", got "xml"/],
      [["group", "reset-offsets", "g", "--to", "earliest"], /^rill: at least one --topic is required/],
      [["group", "reset-offsets", "g", "--topic", "t"], /^rill: --to is required/],
      [
        ["group", "reset-offsets", "g", "--topic", "t", "--to", "soon"],
        /^rill: --to must be earliest, latest/,
      ],
      [
        ["group", "reset-offsets", "g", "--topic", "t", "--to", "99999999999999999999"],
        /^rill: --to offset must be at most/,
      ],
      [["group", "delete", "a/b"], /^rill: invalid group id "a\/b"/],
      [
        ["topic", "add-partitions", "t"],
        /^rill: error: required option '-p, --partitions <n>' not specified/,
      ],
      [
        ["topic", "add-partitions", "t", "--partitions", "0"],
        /^rill: --partitions must be an integer >= 1, got "0"/,
      ],
      [
        ["topic", "add-partitions", "t", "--partitions", "many"],
        /^rill: --partitions must be an integer >= 1/,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => rill(args)));
    results.forEach((r, i) => {
      const [args, message] = cases[i]!;
      expect(r.code, `rill ${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.stdout).toBe("");
    });
  });
});
