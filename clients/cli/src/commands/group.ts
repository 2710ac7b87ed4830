/**
 * `rill group list|describe|reset-offsets|delete`: consumer-group administration through the
 * GroupService. Lag is what the broker reports (high watermark minus the committed offset, or minus
 * the log start when the group committed nothing); the CLI prints it as it is.
 *
 * Exit codes as everywhere: 2 for bad usage (checked before the broker is called), 1 when the broker
 * refuses, with its message (e.g. reset-offsets while the group has members: FAILED_PRECONDITION).
 */
import type { Command } from "commander";
import {
  type CommittedOffset,
  type DescribeGroupResponse,
  type GroupMember,
  groupStateName,
  type ResetOffsetsTo,
  type TopicPartitions,
  validateGroupId,
} from "../../../ts/src/index.js";
import { CliError, describeError, globalOptions, withClient, writeOut } from "../context.js";
import { formatTable } from "./topic.js";

const INT64_MAX = 2n ** 63n - 1n;

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parses `--to`: earliest | latest | an offset (0 to 2^63-1) | an ISO-8601 time. Usage error otherwise. */
export function parseResetTo(value: string | undefined): ResetOffsetsTo {
  if (value === undefined)
    throw new CliError("--to is required: earliest, latest, an offset or an ISO time", 2);
  if (value === "earliest" || value === "latest") return value;
  if (/^\d+$/.test(value)) {
    const offset = BigInt(value);
    if (offset > INT64_MAX) {
      throw new CliError(
        `--to offset must be at most ${INT64_MAX} (a signed 64-bit integer), got "${value}"`,
        2,
      );
    }
    return offset;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t) && t >= 0) return new Date(t);
  }
  throw new CliError(`--to must be earliest, latest, an offset or an ISO time, got "${value}"`, 2);
}

function checkGroup(group: string): void {
  try {
    validateGroupId(group);
  } catch (e) {
    throw new CliError(describeError(e), 2);
  }
}

/** `orders:0,1,2 payments:3`; "-" for none. */
export function formatTopicPartitions(tps: readonly TopicPartitions[]): string {
  const parts = tps
    .filter((tp) => tp.partitions.length > 0)
    .map((tp) => `${tp.topic}:${tp.partitions.join(",")}`);
  return parts.length > 0 ? parts.join(" ") : "-";
}

function memberPartitions(m: GroupMember): string {
  const owned = formatTopicPartitions(m.assigned);
  const revoking = formatTopicPartitions(m.revoking);
  return revoking === "-" ? owned : `${owned} (revoking ${revoking})`;
}

/** The text of `rill group describe`. */
export function formatGroupDescription(d: DescribeGroupResponse): string {
  let out = `group       ${d.groupId}\nstate       ${groupStateName(d.state)}\ngeneration  ${d.generationId}\nmembers     ${d.members.length}\n`;
  if (d.members.length > 0) {
    out += "\n";
    out += formatTable([
      ["MEMBER-ID", "NAME", "ADDRESS", "PARTITIONS"],
      ...d.members.map((m) => [m.memberId, m.memberName || "-", m.clientAddress || "-", memberPartitions(m)]),
    ]);
  }
  if (d.partitions.length > 0) {
    out += "\n";
    out += formatTable([
      ["TOPIC", "PARTITION", "OWNER", "COMMITTED", "LOG-END", "LAG"],
      ...d.partitions.map((p) => [
        p.topic,
        String(p.partition),
        p.memberId || "-",
        p.committedOffset === undefined ? "-" : String(p.committedOffset),
        String(p.highWatermark),
        String(p.lag),
      ]),
    ]);
  }
  return out;
}

/** `rill group describe --format json`: one object; 64-bit numbers as strings. */
export function groupDescriptionJson(d: DescribeGroupResponse): string {
  const tps = (list: readonly TopicPartitions[]) =>
    list.map((tp) => ({ topic: tp.topic, partitions: [...tp.partitions] }));
  const o = {
    group: d.groupId,
    state: groupStateName(d.state),
    generation: String(d.generationId),
    members: d.members.map((m) => ({
      memberId: m.memberId,
      name: m.memberName,
      address: m.clientAddress,
      topics: [...m.topics],
      assigned: tps(m.assigned),
      revoking: tps(m.revoking),
      sessionTimeoutMs: m.sessionTimeoutMs,
    })),
    partitions: d.partitions.map((p) => ({
      topic: p.topic,
      partition: p.partition,
      owner: p.memberId || null,
      committed: p.committedOffset === undefined ? null : String(p.committedOffset),
      logStart: String(p.logStartOffset),
      logEnd: String(p.highWatermark),
      lag: String(p.lag),
    })),
  };
  return `${JSON.stringify(o, null, 2)}\n`;
}

function offsetRows(offsets: readonly CommittedOffset[]): string[][] {
  return [
    ["TOPIC", "PARTITION", "OFFSET"],
    ...offsets.map((o) => [o.topic, String(o.partition), String(o.offset)]),
  ];
}

/** Wraps a failure of a group command into its one-line CLI message (the broker's own, exit 1). */
async function run(cmd: Command, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(describeError(e, { broker: globalOptions(cmd).broker }));
  }
}

export function registerGroupCommands(program: Command): void {
  const group = program.command("group").description("list, describe, reset and delete consumer groups");

  group
    .command("list")
    .description("list consumer groups: state, member count and topics")
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async () => {
        const groups = await withClient(globalOptions(cmd), (client) => client.admin().listGroups());
        if (groups.length === 0) {
          process.stderr.write("no groups\n");
          return;
        }
        await writeOut(
          formatTable([
            ["GROUP", "STATE", "MEMBERS", "TOPICS"],
            ...groups.map((g) => [
              g.groupId,
              groupStateName(g.state),
              String(g.memberCount),
              g.topics.length > 0 ? g.topics.join(",") : "-",
            ]),
          ]),
        );
      });
    });

  group
    .command("describe")
    .description("show a group's members and, per partition, its owner, committed offset and lag")
    .argument("<group>", "group id")
    .option("--format <format>", "text | json", "text")
    .action(async (id: string, opts: { format?: string }, cmd: Command) => {
      await run(cmd, async () => {
        checkGroup(id);
        const format = opts.format ?? "text";
        if (format !== "text" && format !== "json") {
          throw new CliError(`--format must be "text" or "json", got "${format}"`, 2);
        }
        const d = await withClient(globalOptions(cmd), (client) => client.admin().describeGroup(id));
        await writeOut(format === "json" ? groupDescriptionJson(d) : formatGroupDescription(d));
      });
    });

  group
    .command("reset-offsets")
    .description("set a group's committed offsets for whole topics (the group must have no members)")
    .argument("<group>", "group id")
    .option("-t, --topic <topic>", "topic whose partitions are reset, repeatable", collect)
    .option("--to <where>", "earliest | latest | OFFSET | ISO time")
    .action(async (id: string, opts: { topic?: string[]; to?: string }, cmd: Command) => {
      await run(cmd, async () => {
        checkGroup(id);
        const topics = opts.topic ?? [];
        if (topics.length === 0) throw new CliError("at least one --topic is required", 2);
        const empty = topics.find((t) => t.length === 0);
        if (empty !== undefined) throw new CliError("--topic must not be empty", 2);
        const to = parseResetTo(opts.to);
        const offsets = await withClient(globalOptions(cmd), (client) =>
          client.admin().resetOffsets(id, topics, to),
        );
        await writeOut(formatTable(offsetRows(offsets)));
      });
    });

  group
    .command("delete")
    .description("delete a group's committed offsets (the group must have no members)")
    .argument("<group>", "group id")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await run(cmd, async () => {
        checkGroup(id);
        await withClient(globalOptions(cmd), (client) => client.admin().deleteGroup(id));
        await writeOut(`deleted group "${id}"\n`);
      });
    });
}
