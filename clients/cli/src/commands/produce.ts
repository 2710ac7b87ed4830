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
 * full. At the end it flushes and prints, on stderr, how many records went to each partition and
 * their offset range. With `--file` and a terminal on stderr a progress bar shows the bytes sent.
 *
 * SIGINT stops reading, sends what was read, prints the summary and exits with 130.
 */
import { createReadStream, statSync } from "node:fs";
import { Presets, SingleBar } from "cli-progress";
import type { Command } from "commander";
import type { ProducerRecord, RecordMetadata } from "../../../ts/src/index.js";
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

/** Splits `buf` into lines; returns the records of whole lines and the unterminated rest. */
export function splitLines(
  buf: Buffer,
  toRecord: (line: Buffer) => ProducerRecord,
): { records: ProducerRecord[]; rest: Buffer | null } {
  const records: ProducerRecord[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(NEWLINE, start);
    if (nl === -1) break;
    records.push(toRecord(buf.subarray(start, nl)));
    start = nl + 1;
  }
  return { records, rest: start < buf.length ? buf.subarray(start) : null };
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
      let rest: Buffer | null = null;
      let read = 0;
      try {
        for await (const chunk of input as AsyncIterable<Buffer>) {
          read += chunk.length;
          const buf: Buffer = rest === null ? chunk : Buffer.concat([rest, chunk]);
          const split = splitLines(buf, toRecord);
          rest = split.rest === null ? null : Buffer.from(split.rest); // copy: do not pin the chunk
          if (split.records.length > 0) send(split.records);
          bar?.update(read, { records });
          if (!producer.writable) await producer.waitWritable();
          if (failure !== undefined || interrupted) break;
        }
      } catch (e) {
        if (!interrupted) throw e;
      }
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
