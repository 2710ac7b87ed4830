/**
 * Shared steps of the kill-point tests: run fixtures/kill-point-broker.mjs with a kill point,
 * drive it until it SIGKILLs itself, then open the data dir with a normal in-process broker and
 * check what recovery made of it.
 *
 * Invariants: every child is tracked by test/helpers/broker-process.ts, every in-process broker
 * by `stopBrokers`, every data dir by `newDataDir`; `cleanUpKillPoints` (call it in afterEach)
 * SIGKILLs, stops and removes them all; every load loop is bounded in count and time; a kill
 * point that is never reached fails the test (it would prove nothing).
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { type Broker, type ConfigOverrides, startBroker } from "../../../server/src/main.js";
import { type BrokerChild, killAll, ROOT, spawnBroker, within } from "../../helpers/broker-process.js";
import { healthClient } from "../../integration/helpers/health.js";
import { Durability, RawLogClient, scanPartitionDir } from "./raw-log.js";

export const FIXTURE = join(ROOT, "test", "crash", "fixtures", "kill-point-broker.mjs");

export interface KillPoint {
  op: string;
  /** A regular expression (source) matched against the call's path. */
  path: string;
  nth: number;
  when: "before" | "after" | "torn";
}

export function describeKillPoint(k: KillPoint): string {
  return `${k.when} ${k.op} #${k.nth} of /${k.path}/`;
}

/** Starts the fixture on `dataDir` with kill point `k`; `env` adds RILL_* settings. */
export function spawnKillPoint(
  dataDir: string,
  k: KillPoint,
  env: Record<string, string> = {},
  mode: "broker" | "offset-store" = "broker",
): BrokerChild {
  return spawnBroker({
    dataDir,
    args: [FIXTURE],
    env: {
      RILL_LISTEN: "127.0.0.1:0",
      RILL_DATA_DIR: dataDir,
      RILL_LOG_PRETTY: "false",
      KILL_OP: k.op,
      KILL_PATH: k.path,
      KILL_NTH: String(k.nth),
      KILL_WHEN: k.when,
      KILL_MODE: mode,
      ...env,
    },
  });
}

/** Waits (bounded) for the fixture to kill itself at its kill point; fails if it did not. */
export async function expectKilledAtPoint(child: BrokerChild, k: KillPoint, ms = 20_000): Promise<void> {
  const exit = await within(child.exited, ms, `the kill point ${describeKillPoint(k)}`).catch((err) => {
    throw new Error(`${(err as Error).message}; last output:\n${child.output.join("\n")}`);
  });
  const reached = child.output.some((l) => l.includes('"msg":"kill point"'));
  expect(
    exit.signal === "SIGKILL" && reached,
    `kill point ${describeKillPoint(k)} reached (exit ${JSON.stringify(exit)}); output:\n${child.output.join("\n")}`,
  ).toBe(true);
}

/**
 * Produces one FSYNCED batch after another to `topic`/`partition` until the child dies (or
 * `max` batches or `ms` pass); returns the acked records (offset → value).
 */
export async function produceUntilDead(
  address: string,
  child: BrokerChild,
  topic: string,
  partition: number,
  options: { max?: number; ms?: number; valueBytes?: number; acked?: Map<bigint, string> } = {},
): Promise<Map<bigint, string>> {
  const acked = options.acked ?? new Map<bigint, string>();
  const client = new RawLogClient(address);
  const deadline = Date.now() + (options.ms ?? 20_000);
  const pad = "v".repeat(options.valueBytes ?? 200);
  try {
    for (let i = 0; i < (options.max ?? 2_000) && Date.now() < deadline; i++) {
      if (child.child.exitCode !== null || child.child.signalCode !== null) break;
      const value = `${topic}/${partition}#${acked.size}-${i}|${pad}`;
      const out = await client.produce(topic, partition, [value], Durability.DURABILITY_FSYNCED, 5_000);
      if (out.baseOffset === undefined) break;
      acked.set(out.baseOffset, value);
    }
  } finally {
    client.close();
  }
  return acked;
}

const running = new Set<Broker>();

/** A normal in-process broker on `dataDir` (port 0), stopped by `stopBrokers`. */
export async function startNormalBroker(dataDir: string, overrides: ConfigOverrides = {}): Promise<Broker> {
  const broker = await startBroker({ listen: "127.0.0.1:0", ...overrides, dataDir });
  running.add(broker);
  return broker;
}

/** Graceful shutdown of one normal broker. */
export async function stopBroker(broker: Broker): Promise<void> {
  running.delete(broker);
  await within(broker.shutdown(), 20_000, "a broker shutdown");
}

/** For afterEach: shuts down every normal broker still running. */
export async function stopBrokers(): Promise<void> {
  await Promise.all([...running].map((b) => stopBroker(b).catch(() => {})));
}

const dataDirs: string[] = [];

/** A fresh temporary data dir, removed by `cleanUpKillPoints`. */
export async function newDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rill-killpoint-"));
  dataDirs.push(dir);
  return dir;
}

/** For afterEach: SIGKILLs every child, stops every normal broker, removes every data dir. */
export async function cleanUpKillPoints(): Promise<void> {
  await killAll();
  await stopBrokers();
  for (const d of dataDirs.splice(0)) await rm(d, { recursive: true, force: true });
}

export async function expectServing(address: string): Promise<void> {
  const health = healthClient(address);
  try {
    expect(await within(health.check(""), 10_000, "a health check")).toBe("SERVING");
  } finally {
    health.close();
  }
}

/**
 * Checks a partition as a client sees it: dense from the log start to the high watermark, every
 * batch CRC-clean, every acked record at or past the log start present with its bytes. Returns
 * the records served (index = offset - log start) and the log start.
 */
export async function checkPartition(
  address: string,
  topic: string,
  partition: number,
  acked: Map<bigint, string>,
  context: string,
): Promise<{ values: string[]; logStart: bigint }> {
  const client = new RawLogClient(address);
  try {
    const { batches, highWatermark, logStartOffset } = await client.fetchAll(topic, partition, "earliest");
    const values: string[] = [];
    let next = logStartOffset;
    for (const b of batches) {
      // Retention deletes whole segments, so the first batch starts exactly at the log start.
      expect(b.baseOffset, `${context}: batch offsets are dense`).toBe(next);
      values.push(...b.values);
      next += BigInt(b.recordCount);
    }
    expect(next, `${context}: the batches end at the high watermark`).toBe(highWatermark);
    for (const [offset, value] of acked) {
      if (offset < logStartOffset) continue; // removed by retention, legitimately
      expect(values[Number(offset - logStartOffset)], `${context}: acked offset ${offset}`).toBe(value);
    }
    return { values, logStart: logStartOffset };
  } finally {
    client.close();
  }
}

/** Appends one more record and reads it back: the partition takes writes after recovery. */
export async function expectWritable(address: string, topic: string, partition: number, context: string) {
  const client = new RawLogClient(address);
  try {
    const value = `after-recovery-${topic}-${partition}`;
    const out = await client.produce(topic, partition, [value], Durability.DURABILITY_FSYNCED, 10_000);
    expect(out.error?.message, `${context}: produce after recovery`).toBeUndefined();
    const read = await client.fetchAll(topic, partition, out.baseOffset!);
    expect(read.batches[0]?.values, `${context}: fetch after recovery`).toEqual([value]);
  } finally {
    client.close();
  }
}

/**
 * After a graceful stop: every segment file of the partition is whole and CRC-clean, and no
 * `.deleted` leftover or index file without its log remains.
 */
export async function expectCleanFiles(dir: string, context: string): Promise<void> {
  const scan = await scanPartitionDir(dir);
  expect(scan.problem, `${context}: segment files of ${dir}`).toBeNull();
  const names = await readdir(dir);
  expect(
    names.filter((n) => n.endsWith(".deleted")),
    `${context}: .deleted leftovers in ${dir}`,
  ).toEqual([]);
  const logs = new Set(names.filter((n) => n.endsWith(".log")).map((n) => n.slice(0, 20)));
  const orphans = names.filter((n) => /^\d{20}\.(index|timeindex)$/.test(n) && !logs.has(n.slice(0, 20)));
  expect(orphans, `${context}: index files without their log in ${dir}`).toEqual([]);
}
