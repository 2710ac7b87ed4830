/**
 * `rill consume TOPIC`: prints records of a topic.
 *
 * `--from` defaults to `earliest` (also with `--follow`: pass `--from latest` to see only new
 * records). Without `--follow` the command stops once every partition reached the high watermark it
 * had when the command started; with it, it tails until SIGINT, which ends it cleanly (exit 0).
 *
 * Output: `--format text` writes each value as raw bytes followed by "\n"; `--format json` writes one
 * JSON object per line: topic, partition, offset (a string: offsets are 64-bit), key, value,
 * headers, timestamp (ms). Keys, values and header values are UTF-8 strings when they are valid
 * UTF-8, else base64 with `keyEncoding`/`valueEncoding`/`encoding` set to "base64". Output is written
 * once per fetched batch, waiting for stdout to drain; a closed pipe (`| head`) ends it quietly.
 *
 * `--group G`: reads as a member of consumer group G (`consumer.subscribe`), so several commands
 * with the same group split the topic's partitions, and a later run continues where the group left
 * off. It always follows (`--follow` and `--partition` are usage errors with it, exit 2); `--from`
 * (earliest or latest) only applies to partitions the group never committed. It ends on SIGINT or
 * SIGTERM, or after `--max N` records, by committing exactly the records it printed (each one
 * counts once it was written to stdout) and leaving the group, exit 0. In this mode output is
 * written one record at a time, so that what was printed and what is committed never differ.
 */
import { isUtf8 } from "node:buffer";
import type { Command } from "commander";
import type { ConsumedRecord, StartPosition } from "../../../ts/src/index.js";
import { CliError, describeError, globalOptions, parseCount, withClient, writeOut } from "../context.js";

interface ConsumeOptions {
  from?: string;
  partition?: string;
  follow?: boolean;
  max?: string;
  format?: string;
  group?: string;
}

const INT64_MAX = 2n ** 63n - 1n;

/** Parses `--from`: earliest | latest | an offset (0 to 2^63-1, an int64) | an ISO-8601 time. */
export function parseFrom(value: string | undefined): StartPosition {
  if (value === undefined || value === "earliest") return "earliest";
  if (value === "latest") return "latest";
  if (/^\d+$/.test(value)) {
    const offset = BigInt(value);
    if (offset > INT64_MAX) {
      throw new CliError(
        `--from offset must be at most ${INT64_MAX} (a signed 64-bit integer), got "${value}"`,
        2,
      );
    }
    return offset;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return new Date(t);
  }
  throw new CliError(`--from must be earliest, latest, an offset or an ISO time, got "${value}"`, 2);
}

function bytesField(b: Buffer): { text: string; base64: boolean } {
  return isUtf8(b)
    ? { text: b.toString("utf8"), base64: false }
    : { text: b.toString("base64"), base64: true };
}

/** One record as a JSON line (without the newline). */
export function jsonLine(r: ConsumedRecord): string {
  const o: Record<string, unknown> = { topic: r.topic, partition: r.partition, offset: r.offset.toString() };
  if (r.key === null) o.key = null;
  else {
    const k = bytesField(r.key);
    o.key = k.text;
    if (k.base64) o.keyEncoding = "base64";
  }
  const v = bytesField(r.value);
  o.value = v.text;
  if (v.base64) o.valueEncoding = "base64";
  o.headers = r.headers.map((h) => {
    const hv = bytesField(h.value);
    return hv.base64 ? { key: h.key, value: hv.text, encoding: "base64" } : { key: h.key, value: hv.text };
  });
  o.timestamp = r.timestamp;
  return JSON.stringify(o);
}

const NL = Buffer.from("\n");

/** The bytes to print for some records. */
export function render(records: readonly ConsumedRecord[], format: "text" | "json"): Buffer {
  if (format === "json") return Buffer.from(`${records.map(jsonLine).join("\n")}\n`);
  const parts: Buffer[] = new Array(records.length * 2);
  for (let i = 0; i < records.length; i++) {
    parts[2 * i] = records[i]!.value;
    parts[2 * i + 1] = NL;
  }
  return Buffer.concat(parts);
}

export function registerConsumeCommand(program: Command): void {
  program
    .command("consume")
    .description("print records of a topic (one per line)")
    .argument("<topic>", "topic to read")
    .option("--from <where>", "earliest | latest | OFFSET | ISO time", "earliest")
    .option("-p, --partition <n>", "read only this partition (default: all)")
    .option("-F, --follow", "keep reading new records until interrupted")
    .option("-n, --max <n>", "stop after this many records")
    .option("--format <format>", "text | json", "text")
    .option(
      "-g, --group <group>",
      "read as a member of this consumer group: follows, resumes at the group's committed offsets, commits what it printed",
    )
    .action(async (topic: string, opts: ConsumeOptions, cmd: Command) => {
      const globals = globalOptions(cmd);
      try {
        await consume(topic, opts, globals);
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(describeError(e, { broker: globals.broker, topic }));
      }
    });
}

async function consume(topic: string, opts: ConsumeOptions, globals: ReturnType<typeof globalOptions>) {
  if (opts.group !== undefined) return consumeGroup(topic, opts.group, opts, globals);
  const from = parseFrom(opts.from);
  const partition = parseCount("--partition", opts.partition);
  const max = parseCount("--max", opts.max);
  const format = opts.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new CliError(`--format must be "text" or "json", got "${format}"`, 2);
  }
  if (max === 0) return;
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once("SIGINT", onSigint);
  try {
    await withClient(globals, async (client) => {
      let printed = 0;
      const batches = client.consumer().readBatches({
        topic,
        from,
        follow: opts.follow === true,
        signal: stop.signal,
        ...(partition !== undefined ? { partitions: [partition] } : {}),
      });
      for await (const batch of batches) {
        let records = batch.records;
        if (max !== undefined && printed + records.length > max) records = records.slice(0, max - printed);
        printed += records.length;
        const pending = writeOut(render(records, format));
        if (pending) await pending;
        if (max !== undefined && printed >= max) break;
      }
    });
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** `rill consume TOPIC --group G` (see the file header). */
async function consumeGroup(
  topic: string,
  group: string,
  opts: ConsumeOptions,
  globals: ReturnType<typeof globalOptions>,
): Promise<void> {
  if (opts.partition !== undefined) {
    throw new CliError("--partition cannot be used with --group: the group assigns the partitions", 2);
  }
  if (opts.follow !== undefined) {
    throw new CliError("--follow cannot be used with --group: group consumption always follows", 2);
  }
  const from = opts.from ?? "earliest";
  if (from !== "earliest" && from !== "latest") {
    throw new CliError(
      `--from must be earliest or latest with --group (it applies to partitions the group never committed), got "${from}"`,
      2,
    );
  }
  const max = parseCount("--max", opts.max);
  const format = opts.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new CliError(`--format must be "text" or "json", got "${format}"`, 2);
  }
  if (max === 0) return;
  await withClient(globals, async (client) => {
    const sub = client.consumer().subscribe({ group, topics: [topic], from });
    let stopping = false;
    let waiting = false;
    // While the loop waits for a record, a signal closes at once; while it prints, the loop first
    // marks the printed record processed (by asking for the next one), then closes.
    const onSignal = (): void => {
      stopping = true;
      if (waiting) void sub.close();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    const records = sub[Symbol.asyncIterator]();
    let printed = 0;
    try {
      for (;;) {
        // Asking for the next record marks the one printed last as processed.
        const next = records.next();
        if (stopping) {
          next.catch(() => {}); // ends when the subscription closes; not printed, not processed
          break;
        }
        waiting = true;
        let result: IteratorResult<ConsumedRecord>;
        try {
          result = await next;
        } finally {
          waiting = false;
        }
        if (result.done || stopping) break;
        const pending = writeOut(render([result.value], format));
        if (pending) await pending;
        printed++;
        if (max !== undefined && printed >= max) stopping = true;
      }
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      // Commits what was printed and leaves the group (confirmed by the broker).
      await sub.close();
    }
  });
}
