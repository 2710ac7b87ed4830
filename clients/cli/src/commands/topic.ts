/**
 * `rill topic create|list|describe|add-partitions|delete`: topic administration through the AdminService.
 */
import type { Command } from "commander";
import {
  type PartitionDescription,
  parseTopicConfig,
  TOPIC_CONFIG_KEYS,
  type TopicSettings,
  topicConfigEntries,
} from "../../../ts/src/index.js";
import { CliError, describeError, globalOptions, parseCount, withClient, writeOut } from "../context.js";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Rows of cells → lines with columns padded to the widest cell. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, row[i]!.length);
  }
  return rows
    .map((row) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

function partitionRows(partitions: readonly PartitionDescription[]): string[][] {
  return [
    ["PARTITION", "LOG-START", "HIGH-WATERMARK", "SIZE-BYTES", "SEGMENTS"],
    ...partitions.map((p) => [
      String(p.partition),
      String(p.logStartOffset),
      String(p.highWatermark),
      String(p.sizeBytes),
      String(p.segmentCount),
    ]),
  ];
}

/** Wraps a failure of a topic command into its one-line CLI message. */
async function run(cmd: Command, topic: string | undefined, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(describeError(e, { broker: globalOptions(cmd).broker, topic }));
  }
}

export function registerTopicCommands(program: Command): void {
  const topic = program.command("topic").description("create, list, describe and delete topics");

  topic
    .command("create")
    .description("create a topic")
    .argument("<name>", "topic name: 1-249 characters of [A-Za-z0-9._-]")
    .option("-p, --partitions <n>", "number of partitions (default: the broker's default.partitions)")
    .option(
      "-c, --config <key=value>",
      `per-topic setting, repeatable; keys: ${Object.keys(TOPIC_CONFIG_KEYS).join(", ")}`,
      collect,
    )
    .action(async (name: string, opts: { partitions?: string; config?: string[] }, cmd: Command) => {
      await run(cmd, name, async () => {
        const partitions = parseCount("--partitions", opts.partitions, 1);
        let config: TopicSettings;
        try {
          config = parseTopicConfig(opts.config ?? []);
        } catch (e) {
          throw new CliError(describeError(e), 2);
        }
        const created = await withClient(globalOptions(cmd), (client) =>
          client.admin().createTopic(name, { ...(partitions !== undefined ? { partitions } : {}), config }),
        );
        const n = created.partitions.length;
        await writeOut(`created topic "${created.topic}" with ${n} partition${n === 1 ? "" : "s"}\n`);
      });
    });

  topic
    .command("list")
    .description("list topics and their partition counts")
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, undefined, async () => {
        const topics = await withClient(globalOptions(cmd), (client) => client.admin().listTopics());
        if (topics.length === 0) {
          process.stderr.write("no topics\n");
          return;
        }
        await writeOut(
          formatTable([["TOPIC", "PARTITIONS"], ...topics.map((t) => [t.topic, String(t.partitions)])]),
        );
      });
    });

  topic
    .command("describe")
    .description("show a topic's effective config and its partitions")
    .argument("<name>", "topic name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await run(cmd, name, async () => {
        const d = await withClient(globalOptions(cmd), (client) => client.admin().describeTopic(name));
        const config = topicConfigEntries(d.config);
        let out = `topic       ${d.topic}\npartitions  ${d.partitions.length}\n`;
        if (config.length > 0) {
          out += "config\n";
          out += formatTable(config.map(([k, v]) => [`  ${k}`, v]));
        }
        out += "\n";
        out += formatTable(partitionRows(d.partitions));
        await writeOut(out);
      });
    });

  topic
    .command("add-partitions")
    .description("raise a topic's partition count (partitions are never removed)")
    .argument("<name>", "topic name")
    .requiredOption("-p, --partitions <n>", "the new total number of partitions, above the current one")
    .action(async (name: string, opts: { partitions: string }, cmd: Command) => {
      await run(cmd, name, async () => {
        const partitions = parseCount("--partitions", opts.partitions, 1)!;
        if (partitions > 2 ** 31 - 1) throw new CliError(`--partitions must be at most ${2 ** 31 - 1}`, 2);
        const d = await withClient(globalOptions(cmd), (client) =>
          client.admin().addPartitions(name, partitions),
        );
        await writeOut(`topic "${d.topic}" now has ${d.partitions.length} partitions\n`);
      });
    });

  topic
    .command("delete")
    .description("delete a topic and all its data")
    .argument("<name>", "topic name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await run(cmd, name, async () => {
        await withClient(globalOptions(cmd), (client) => client.admin().deleteTopic(name));
        await writeOut(`deleted topic "${name}"\n`);
      });
    });
}
