// The soak's command line: every flag, its default and its bounds, so that a run is always
// bounded in time (duration, catch-up wait) and in size (clients, rate, record size).
//
// Invariants: parseOptions either returns a complete, checked options object or throws an Error
// whose message names the flag and what is allowed; nothing else reads process.argv.
import { parseArgs } from "node:util";
import ms from "ms";

export const USAGE = `npm run soak -- [flags]   (or: node scripts/soak/run.mjs [flags], after npm run build)

Starts one broker process, runs producers and consumers (plain and in groups, with members joining
and leaving) against it for --duration, then checks: 0 records lost, order kept per partition,
0 duplicates, every plain consumer saw every record once in order, the groups covered every record.
Samples broker RSS, event-loop lag and records/s every second. Exit code 0 only if every check holds.

  --duration <d>          how long producers run (default 60s; 1s..1h; "90s", "2m", or seconds)
  --producers <n>         producers (default 50), spread over --producer-procs processes
  --producer-procs <n>    producer processes (default 2)
  --plain-consumers <n>   following consumers that read every partition (default 8)
  --group-members <n>     group members, split over --groups groups (default 12)
  --groups <n>            consumer groups (default 2)
  --topics <n>            topics (default 2)
  --partitions <n>        partitions per topic (default 8)
  --rate <n>              records/s over all producers (default 2500; 0 = as fast as
                          backpressure allows)
  --value-bytes <n>       bytes per record value (default 100; at least 16)
  --catch-up <d>          longest wait for producers to flush and consumers to catch up (default 60s)
  --out <dir>             where soak-<timestamp>.json/.md go (default soak-results)
  --inject <fault>        break the soak's own bookkeeping on purpose, to see a check fail:
                          lose | dup | plain-skip | group-skip (default none)
  --help`;

const INJECTIONS = ["none", "lose", "dup", "plain-skip", "group-skip"];

/** Milliseconds from "90s", "2m", "1h", "500ms" or a bare number of seconds. */
export function parseDuration(flag, text) {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : ms(text);
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`--${flag}: "${text}" is not a duration; use e.g. 60s, 2m or 1h`);
  }
  return Math.round(value);
}

function int(flag, text, min, max) {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= min && n <= max)) {
    throw new Error(`--${flag} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

function bounded(flag, value, min, max) {
  if (value < min || value > max) {
    throw new Error(`--${flag} must lie between ${ms(min, { long: true })} and ${ms(max, { long: true })}`);
  }
  return value;
}

/** Parses and checks the flags (throws an Error naming the bad flag). */
export function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      duration: { type: "string", default: "60s" },
      producers: { type: "string", default: "50" },
      "producer-procs": { type: "string", default: "2" },
      "plain-consumers": { type: "string", default: "8" },
      "group-members": { type: "string", default: "12" },
      groups: { type: "string", default: "2" },
      topics: { type: "string", default: "2" },
      partitions: { type: "string", default: "8" },
      rate: { type: "string", default: "2500" },
      "value-bytes": { type: "string", default: "100" },
      "catch-up": { type: "string", default: "60s" },
      out: { type: "string", default: "soak-results" },
      inject: { type: "string", default: "none" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return { help: true };
  const inject = values.inject;
  if (!INJECTIONS.includes(inject)) {
    throw new Error(`--inject must be one of ${INJECTIONS.join(", ")}, got "${inject}"`);
  }
  const options = {
    help: false,
    durationMs: bounded("duration", parseDuration("duration", values.duration), 1_000, 3_600_000),
    producers: int("producers", values.producers, 1, 1000),
    producerProcs: int("producer-procs", values["producer-procs"], 1, 16),
    plainConsumers: int("plain-consumers", values["plain-consumers"], 0, 200),
    groupMembers: int("group-members", values["group-members"], 0, 200),
    groups: int("groups", values.groups, 1, 20),
    topics: int("topics", values.topics, 1, 16),
    // A partition number is stored in one byte of the ack files (see producer-worker.mjs).
    partitions: int("partitions", values.partitions, 1, 255),
    rate: int("rate", values.rate, 0, 1_000_000),
    valueBytes: int("value-bytes", values["value-bytes"], 16, 1 << 20),
    catchUpMs: bounded("catch-up", parseDuration("catch-up", values["catch-up"]), 1_000, 600_000),
    out: values.out,
    inject,
  };
  options.producerProcs = Math.min(options.producerProcs, options.producers);
  if (options.groupMembers > 0 && options.groupMembers < options.groups) {
    throw new Error(
      `--group-members (${options.groupMembers}) must be 0 or at least --groups (${options.groups})`,
    );
  }
  if (inject === "plain-skip" && options.plainConsumers === 0) {
    throw new Error("--inject plain-skip needs at least one plain consumer");
  }
  if (inject === "group-skip" && options.groupMembers === 0) {
    throw new Error("--inject group-skip needs at least one group member");
  }
  return options;
}
