/**
 * Runs the phases of `rill bench` in order against a broker (started here, in its own process,
 * unless one is given) and writes the results: `<out>/<UTC stamp>.json`, `.md` and `.svg`.
 * Every phase is bounded by `phaseSeconds`; a phase that fails is reported and the next one runs.
 * The broker this started is stopped by PID (and its data directory removed) whatever happens.
 */
import { execFileSync } from "node:child_process";
import { rmSync, statfsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { type BrokerProcess, rillBin, startBrokerProcess } from "./broker-process.js";
import { failedResult } from "./meter.js";
import { runAckedPhase } from "./phase-acked.js";
import { runCeilingPhase } from "./phase-ceiling.js";
import { runConsumePhase } from "./phase-consume.js";
import { runLatencyPhase } from "./phase-latency.js";
import { runPartitionsPhase } from "./phase-partitions.js";
import { runProducerPhase } from "./phase-producer.js";
import { runStalledPhase } from "./phase-stalled.js";
import { runStoragePhase } from "./phase-storage.js";
import { summarizeProfile } from "./profile.js";
import { Progress } from "./progress.js";
import { addCeilingRatios, type BenchReport, jsonReport, markdownReport, markdownTable } from "./report.js";
import { type BenchSecurity, describeSecurity } from "./security.js";
import { svgChart } from "./svg.js";
import { withBenchClient } from "./topics.js";
import type { BenchEnv, PhaseResult } from "./types.js";

export const ALL_PHASES = [1, 2, 3, 4, 5, 6, 7, 8, 9] as const;

export interface BenchOptions {
  records: number;
  phases: ReadonlySet<number>;
  durabilities: ("written" | "fsynced")[];
  rates: number[];
  rateSeconds: number;
  /** Seconds at each rate before the measured ones (phase 5). */
  rateWarmupSeconds: number;
  phaseSeconds: number;
  out: string;
  /** An existing broker; undefined: start one. */
  broker: string | undefined;
  /** Parent directory of the started broker's data directory. */
  dataParent: string | undefined;
  cpuProf: boolean;
  verify: boolean;
  /** The command line, for the report. */
  command: string;
}

/** "2026-11-26T18-30-05Z": an ISO time that is a valid file name everywhere. */
export function utcStamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
}

/** Files written by a run. */
export interface BenchFiles {
  json: string;
  md: string;
  svg: string;
}

/**
 * Runs the phases of `o` and writes the report. `security` (TLS, token) is for a broker given with
 * `o.broker`; a broker the bench starts listens in plaintext on 127.0.0.1 and gets none.
 */
export async function runBench(
  o: BenchOptions,
  security: BenchSecurity = {},
): Promise<{ report: BenchReport; files: BenchFiles }> {
  if (o.broker === undefined && (security.tls !== undefined || security.token !== undefined)) {
    throw new Error("TLS and token settings apply only to a broker given with --broker");
  }
  const started = new Date();
  const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  const stamp = utcStamp(started);
  await mkdir(o.out, { recursive: true });
  const cpuProfile =
    o.cpuProf && o.broker === undefined ? join(o.out, `${stamp}.broker.cpuprofile`) : undefined;
  const progress = new Progress();
  let broker: BrokerProcess | undefined;
  const onSigint = () => {
    progress.stop();
    process.stderr.write("rill bench: interrupted; stopping the broker\n");
    if (broker) rmSync(broker.dataDir, { recursive: true, force: true });
    process.exit(130); // child.ts kills every child still running, by PID
  };
  process.once("SIGINT", onSigint);
  const results: PhaseResult[] = [];
  let env: BenchEnv | undefined;
  try {
    if (o.broker === undefined) {
      broker = await startBrokerProcess({ parentDir: o.dataParent, cpuProfile });
      progress.log(`broker started: pid ${broker.pid}, ${broker.address}, data in ${broker.dataDir}`);
    }
    env = {
      address: broker?.address ?? o.broker!,
      security,
      dataDir: broker?.dataDir,
      brokerPid: broker?.pid,
      records: o.records,
      phaseSeconds: o.phaseSeconds,
      topicPrefix: `bench-${stamp.toLowerCase()}`,
      verify: o.verify,
      progress,
      createdTopics: [],
      windows: [],
    };
    await runPhases(env, o, results);
  } finally {
    progress.stop();
    if (broker === undefined && env !== undefined) await deleteTopics(env);
    await broker?.stop().catch((e: unknown) => {
      results.push(failedResult(0, "0-failed", "stopping the broker", e));
    });
    process.off("SIGINT", onSigint);
  }
  addCeilingRatios(results);
  const report: BenchReport = {
    stamp,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: o.command,
    options: { ...o, phases: [...o.phases] },
    machine: { ...machineFacts(o.dataParent ?? tmpdir()), loadAtStart },
    source: sourceState(),
    broker: {
      address: broker?.address ?? o.broker!,
      spawned: broker !== undefined,
      security: describeSecurity(security),
      cpuProfile,
    },
    results,
    failed: results.some((r) => r.error !== undefined),
    windowsUs: env?.windows ?? [],
  };
  if (cpuProfile !== undefined) {
    report.profile = await summarizeProfile(cpuProfile, env?.windows ?? [])
      .then((top) => ({ file: cpuProfile, top }))
      .catch(() => undefined);
  }
  const base = join(o.out, stamp);
  const files = { json: `${base}.json`, md: `${base}.md`, svg: `${base}.svg` };
  await writeFile(files.json, jsonReport(report));
  await writeFile(files.md, markdownReport(report));
  await writeFile(
    files.svg,
    svgChart(`rill bench ${stamp} (${o.records.toLocaleString("en-US")} records)`, results),
  );
  process.stdout.write(markdownTable(results));
  return { report, files };
}

async function runPhases(env: BenchEnv, o: BenchOptions, results: PhaseResult[]): Promise<void> {
  const run = async (phase: number, name: string, fn: () => Promise<PhaseResult | PhaseResult[]>) => {
    if (!o.phases.has(phase)) return;
    try {
      const r = await fn();
      results.push(...(Array.isArray(r) ? r : [r]));
    } catch (e) {
      results.push(failedResult(phase, `${phase}-failed`, name, e));
      env.progress.log(`phase ${phase} (${name}) failed: ${(e as Error).message}`);
    }
  };
  for (const d of o.durabilities) await run(1, `produce, batch 1, ${d}`, () => runAckedPhase(env, 1, 1, d));
  for (const d of o.durabilities) await run(2, `produce, batch 50, ${d}`, () => runAckedPhase(env, 2, 50, d));
  await run(3, "produce, Producer", () => runProducerPhase(env));
  await run(4, "consume", () => runConsumePhase(env));
  await run(5, "end-to-end latency", () => runLatencyPhase(env, o.rates, o.rateSeconds, o.rateWarmupSeconds));
  await run(6, "storage overhead", () => runStoragePhase(env));
  await run(7, "ceiling", () => runCeilingPhase(env));
  await run(8, "stalled consumer", () => runStalledPhase(env));
  await run(9, "1 vs 1,000 partitions", () => runPartitionsPhase(env));
}

/** Deletes what this run created on a broker that is not its own. */
async function deleteTopics(env: BenchEnv): Promise<void> {
  await withBenchClient(env, async (client) => {
    for (const t of env.createdTopics)
      await client
        .admin()
        .deleteTopic(t)
        .catch(() => {});
  }).catch(() => {});
}

const FS_TYPES: Record<number, string> = {
  61267: "ext2/3/4",
  16914836: "tmpfs",
  1481003842: "xfs",
  2435016766: "btrfs",
  2035054128: "overlayfs",
};

function machineFacts(dataParent: string): Record<string, unknown> {
  const cpu = cpus();
  let dataFs: string | undefined;
  try {
    const t = statfsSync(dataParent).type;
    dataFs = FS_TYPES[t] ?? `0x${t.toString(16)}`;
  } catch {
    dataFs = undefined;
  }
  return {
    node: process.version,
    platform: `${process.platform} ${release()} ${process.arch}`,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    /** 1, 5 and 15 minute load averages at the end: other work on the machine skews every number. */
    loadAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
    dataDirFileSystem: dataFs,
  };
}

/** The commit measured, and how many files differed from it (uncommitted work is measured too). */
function sourceState(): { commit: string; changedFiles: number } | undefined {
  try {
    const cwd = dirname(dirname(rillBin()));
    const git = (...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8", stdio: "pipe" });
    const changed = git("status", "--porcelain")
      .split("\n")
      .filter((l) => l.trim().length > 0);
    return { commit: git("rev-parse", "HEAD").trim(), changedFiles: changed.length };
  } catch {
    return undefined;
  }
}
