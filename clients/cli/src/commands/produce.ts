/**
 * `rill produce TOPIC`: one record per input line, from stdin or `--file`.
 *
 * Lines are split on "\n" only and sent byte-exact (a "\r" before the newline stays in the value);
 * a last line without a newline is still a record; an empty line is a record with an empty value.
 * `--key-separator SEP` splits each line at the first SEP into key and value (a line without SEP
 * has no key).
 *
 * Throughput: input is read in large chunks, split into lines without decoding, and each chunk's
 * records go to the producer in one `send`; the command only waits when the producer's buffer is
 * full. A line spanning many chunks is kept as a list of its pieces and joined once, when its
 * newline arrives (linear in its length). A line is one record, so it must fit in one batch: once a
 * line grows past the topic's max.batch.bytes (from DescribeTopic; for a topic that does not exist
 * yet, the largest max.batch.bytes a broker allows, 64 MiB) the command stops with an error. At the end it flushes and prints, on stderr, how many records went to each partition and
 * their offset range. With `--file` and a terminal on stderr a progress bar shows the bytes sent.
 *
 * SIGINT stops reading, sends what was read, prints the summary and exits with 130.
 */
import { createReadStream, statSync } from "node:fs";
import { Presets, SingleBar } from "cli-progress";
import type { Command } from "commander";
import {
  type ProducerRecord,
  type RecordMetadata,
  type RillClient,
  TopicNotFoundError,
} from "../../../ts/src/index.js";
import { CliError, describeError, globalOptions, parseCount, withClient } from "../context.js";

interface ProduceOptions {
  file?: string;
  keySeparator?: string;
  partition?: string;
  durability?: string;
  compression?: string;
  lingerMs?: string;
  quiet?: boolean;
}

/** Offsets seen per partition. */
interface PartitionStats {
  count: number;
  min: bigint;
  max: bigint;
  unknown: number;
}

const NEWLINE = 0x0a;

/** The largest max.batch.bytes a broker accepts: the line limit when the topic's own is unknown. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Splits a byte stream into lines on "\n" (byte-exact: a "\r" before it stays in the line). The
 * unfinished line is kept as a list of chunks and joined once its newline arrives, so a line
 * spanning n chunks costs O(its length), not O(n × its length). A line longer than `maxLineBytes`
 * throws a {@link CliError} as soon as it is known to be too long, without waiting for its end.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Whole lines seen so far (for the error's line number). */
  private lines = 0;

  constructor(
    private readonly maxLineBytes = Number.POSITIVE_INFINITY,
    private readonly limitName = "the limit",
  ) {}

  /** The lines `chunk` completes, in order (views into it where possible). */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      this.check(this.pendingBytes + nl - start);
      if (this.pending.length === 0) {
        out.push(chunk.subarray(start, nl));
      } else {
        this.pending.push(chunk.subarray(start, nl));
        out.push(Buffer.concat(this.pending, this.pendingBytes + nl - start));
        this.pending = [];
        this.pendingBytes = 0;
      }
      this.lines++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.length - start;
      this.check(this.pendingBytes + rest);
      // A whole chunk is all line: keep it; a tail is copied so it does not pin the whole chunk.
      this.pending.push(start === 0 ? chunk : Buffer.from(chunk.subarray(start)));
      this.pendingBytes += rest;
    }
    return out;
  }

  /** The last line, if the input did not end with a newline; else null. */
  end(): Buffer | null {
    if (this.pending.length === 0) return null;
    const last = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.lines++;
    return last;
  }

  private check(bytes: number): void {
    if (bytes > this.maxLineBytes) {
      throw new CliError(
        `line ${this.lines + 1} is longer than ${this.maxLineBytes} bytes (${this.limitName}); ` +
          "each line is one record and must fit in one batch",
      );
    }
  }
}

/**
 * The longest line the topic can take as one record: its max.batch.bytes, or for a topic that does
 * not exist yet (it will be auto-created) {@link DEFAULT_MAX_LINE_BYTES}.
 */
export async function maxLineBytes(
  client: RillClient,
  topic: string,
): Promise<{ bytes: number; name: string }> {
  try {
    const d = await client.admin().describeTopic(topic);
    const max = d.config?.maxBatchBytes;
    if (max !== undefined && max > 0n) {
      return { bytes: Number(max), name: `the max.batch.bytes of topic "${topic}"` };
    }
  } catch (e) {
    if (!(e instanceof TopicNotFoundError)) throw e;
  }
  return { bytes: DEFAULT_MAX_LINE_BYTES, name: "the largest max.batch.bytes a broker allows" };
}

/** Makes the line → record function for the given options. */
export function recordMaker(keySeparator: string | undefined, partition: number | undefined) {
  const sep = keySeparator !== undefined && keySeparator.length > 0 ? Buffer.from(keySeparator) : undefined;
  return (line: Buffer): ProducerRecord => {
    if (sep !== undefined) {
      const at = line.indexOf(sep);
      if (at !== -1) {
        return { key: line.subarray(0, at), value: line.subarray(at + sep.length), partition };
      }
    }
    return { value: line, partition };
  };
}

export function formatSummary(topic: string, stats: Map<number, PartitionStats>): string {
  let total = 0;
  const lines: string[] = [];
  for (const [p, s] of [...stats.entries()].sort((a, b) => a[0] - b[0])) {
    total += s.count;
    const known = s.count - s.unknown;
    const range =
      known === 0 ? "offsets unknown" : s.min === s.max ? `offset ${s.min}` : `offsets ${s.min}..${s.max}`;
    const extra = s.unknown > 0 && known > 0 ? ` (${s.unknown} at unknown offsets)` : "";
    lines.push(`  partition ${p}: ${s.count} record${s.count === 1 ? "" : "s"}, ${range}${extra}\n`);
  }
  return `produced ${total} record${total === 1 ? "" : "s"} to "${topic}"\n${lines.join("")}`;
}

export function registerProduceCommand(program: Command): void {
  program
    .command("produce")
    .description("send one record per line of stdin (or --file) to a topic")
    .argument("<topic>", "topic to produce to (auto-created if the broker allows it)")
    .option("-f, --file <path>", "read lines from this file instead of stdin")
    .option("-k, --key-separator <sep>", "split each line at the first <sep> into key and value")
    .option("-p, --partition <n>", "send every record to this partition (default: by key, else sticky)")
    .option("-d, --durability <mode>", "written | fsynced (default: the topic's)")
    .option("--compression <codec>", "none | gzip", "none")
    .option("--linger-ms <ms>", "how long a batch waits for more records", "5")
    .option("-q, --quiet", "no summary on stderr")
    .action(async (topic: string, opts: ProduceOptions, cmd: Command) => {
      const globals = globalOptions(cmd);
      try {
        await produce(topic, opts, globals);
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(describeError(e, { broker: globals.broker, topic }));
      }
    });
}

async function produce(topic: string, opts: ProduceOptions, globals: ReturnType<typeof globalOptions>) {
  const partition = parseCount("--partition", opts.partition);
  const lingerMs = parseCount("--linger-ms", opts.lingerMs) ?? 5;
  const durability = opts.durability;
  if (durability !== undefined && durability !== "written" && durability !== "fsynced") {
    throw new CliError(`--durability must be "written" or "fsynced", got "${durability}"`, 2);
  }
  const compression = opts.compression ?? "none";
  if (compression !== "none" && compression !== "gzip") {
    throw new CliError(`--compression must be "none" or "gzip", got "${compression}"`, 2);
  }
  let fileSize = 0;
  if (opts.file !== undefined) {
    try {
      fileSize = statSync(opts.file).size;
    } catch (e) {
      throw new CliError(`cannot read ${opts.file}: ${(e as Error).message}`);
    }
  }
  const input =
    opts.file !== undefined ? createReadStream(opts.file, { highWaterMark: 1 << 20 }) : process.stdin;
  const bar =
    opts.file !== undefined && process.stderr.isTTY
      ? new SingleBar(
          { format: "{bar} {percentage}% | {value}/{total} bytes | {records} records", hideCursor: true },
          Presets.shades_classic,
        )
      : undefined;

  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    input.destroy();
  };
  process.once("SIGINT", onSigint);

  const stats = new Map<number, PartitionStats>();
  const account = (metas: RecordMetadata[]): void => {
    for (const m of metas) {
      let s = stats.get(m.partition);
      if (s === undefined) {
        s = { count: 0, min: -1n, max: -1n, unknown: 0 };
        stats.set(m.partition, s);
      }
      s.count++;
      if (m.offset < 0n) {
        s.unknown++;
      } else {
        if (s.min < 0n || m.offset < s.min) s.min = m.offset;
        if (m.offset > s.max) s.max = m.offset;
      }
    }
  };
  let failure: unknown;
  let records = 0;

  try {
    await withClient(globals, async (client) => {
      const limit = await maxLineBytes(client, topic);
      const producer = client.producer({
        lingerMs,
        compression,
        ...(durability !== undefined ? { durability } : {}),
      });
      const outstanding = new Set<Promise<void>>();
      const send = (batch: ProducerRecord[]): void => {
        records += batch.length;
        const p: Promise<void> = producer.send(topic, batch).then(account, (e: unknown) => {
          failure ??= e;
        });
        outstanding.add(p);
        void p.finally(() => outstanding.delete(p));
      };
      const toRecord = recordMaker(opts.keySeparator, partition);
      bar?.start(fileSize, 0, { records: 0 });
      const splitter = new LineSplitter(limit.bytes, limit.name);
      let read = 0;
      try {
        for await (const chunk of input as AsyncIterable<Buffer>) {
          read += chunk.length;
          const lines = splitter.push(chunk);
          if (lines.length > 0) send(lines.map(toRecord));
          bar?.update(read, { records });
          if (!producer.writable) await producer.waitWritable();
          if (failure !== undefined || interrupted) break;
        }
      } catch (e) {
        if (!interrupted) throw e;
      }
      const rest = splitter.end();
      if (rest !== null && failure === undefined) send([toRecord(rest)]);
      await producer.flush();
      await Promise.all(outstanding);
      await producer.close();
      bar?.update(read, { records });
    });
  } finally {
    bar?.stop();
    process.off("SIGINT", onSigint);
  }
  if (failure !== undefined) throw failure;
  if (!opts.quiet) process.stderr.write(formatSummary(topic, stats));
  if (interrupted) process.exitCode = 130;
}
