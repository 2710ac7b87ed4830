/**
 * `rill bench`: measures a broker on this machine (what `npm run bench` runs). Without --broker it
 * starts one as its own process (`rill broker --listen 127.0.0.1:0 --data-dir <temp dir>`) and
 * stops it by PID at the end; with --broker (or RILL_BROKER) it measures that one and deletes the
 * topics it created, over TLS and with a token when the global options say so (bench/security.ts).
 * Phases (bench/*.ts, one module each):
 *
 *   1  produce, batch 1: each record acknowledged before the next (ProduceSession), per durability
 *   2  produce, batch 50: the same with 50 records per batch
 *   3  produce with the client's Producer (its own linger and batching), as fast as it goes
 *   4  consume N records from offset 0
 *   5  end-to-end latency, produce → following consumer, at fixed rates (p50/p99/p99.9)
 *   6  storage overhead: bytes on disk per 200-byte record, batches of 50
 *   7  the ceiling: the same bytes over bare grpc-js streams, no storage (ratios beside 3 and 4)
 *   8  a stalled consumer (stream open, not reading) beside a full-speed Producer: broker RSS
 *   9  the Producer over 1 partition and over 1,000 partitions, side by side
 *
 * Progress bars on a terminal (stderr), the results table on stdout, and the results saved as
 * `<out>/<UTC stamp>.{json,md,svg}`. Exit code 1 if a phase failed. Every phase is capped by
 * --phase-seconds.
 */
import type { Command } from "commander";
import { DEFAULT_RATES, DEFAULT_WARMUP_SECONDS } from "../bench/phase-latency.js";
import { type BenchOptions, runBench } from "../bench/run.js";
import { CliError, clientSecurity, globalOptions, parseCount, usesSecurityOptions } from "../context.js";

interface BenchFlags {
  records: string;
  phases: string;
  durability: string;
  rates: string;
  rateSeconds: string;
  rateWarmup: string;
  phaseSeconds: string;
  out: string;
  dataDir?: string;
  cpuProf?: boolean;
  verify?: boolean;
}

/** Parses "1,2,3" into integers >= min, or throws a usage error naming the option. */
export function parseList(name: string, value: string, min: number): number[] {
  const items = value.split(",").map((s) => s.trim());
  const out = items.map((s) => parseCount(name, s, min)!);
  if (out.length === 0) throw new CliError(`${name} must list at least one value`, 2);
  return out;
}

/** The options of a run from the command line. */
export function benchOptions(flags: BenchFlags, broker: string | undefined, command: string): BenchOptions {
  const phases = parseList("--phases", flags.phases, 1);
  for (const p of phases) if (p > 9) throw new CliError(`--phases: there is no phase ${p} (1 to 9)`, 2);
  const d = flags.durability;
  if (d !== "both" && d !== "written" && d !== "fsynced") {
    throw new CliError(`--durability must be written, fsynced or both, got "${d}"`, 2);
  }
  const rates = parseList("--rates", flags.rates, 1);
  const twice = rates.find((r, i) => rates.indexOf(r) !== i);
  if (twice !== undefined) throw new CliError(`--rates lists ${twice} twice; each rate runs once`, 2);
  return {
    records: parseCount("--records", flags.records, 1)!,
    phases: new Set(phases),
    durabilities: d === "both" ? ["written", "fsynced"] : [d],
    rates,
    rateSeconds: parseCount("--rate-seconds", flags.rateSeconds, 1)!,
    rateWarmupSeconds: parseCount("--rate-warmup", flags.rateWarmup, 0)!,
    phaseSeconds: parseCount("--phase-seconds", flags.phaseSeconds, 1)!,
    out: flags.out,
    broker,
    dataParent: flags.dataDir,
    cpuProf: flags.cpuProf === true,
    verify: flags.verify === true,
    command,
  };
}

export function registerBenchCommand(program: Command): void {
  program
    .command("bench")
    .description("measure a broker: produce, consume, latency, storage overhead, and the gRPC ceiling")
    .option("-n, --records <n>", "records per phase", "200000")
    .option("--phases <list>", "phases to run, e.g. 1,2,4 (1-9, listed below)", "1,2,3,4,5,6,7,8,9")
    .option("--durability <mode>", "durability of phases 1 and 2: written | fsynced | both", "both")
    .option("--rates <list>", "records/s of the latency phase (5)", DEFAULT_RATES.join(","))
    .option("--rate-seconds <s>", "seconds per rate of phase 5 (records: min(n, rate × s))", "10")
    .option(
      "--rate-warmup <s>",
      "seconds at each rate of phase 5 before the measured ones (their latencies reported apart)",
      String(DEFAULT_WARMUP_SECONDS),
    )
    .option("--phase-seconds <s>", "time cap of each phase", "60")
    .option("--out <dir>", "where to write <UTC stamp>.{json,md,svg}", "bench/results")
    .option("--data-dir <dir>", "parent directory of the started broker's data (default: the OS temp dir)")
    .option("--cpu-prof", "write a CPU profile of the started broker (node --cpu-prof) and summarize it")
    .option("--verify", "read every produced topic back (untimed) and count its records")
    .addHelpText(
      "after",
      "\nPhases: 1 produce batch 1 (acked one by one), 2 produce batch 50, 3 Producer (client batching),\n" +
        "4 consume from offset 0, 5 end-to-end latency at --rates, 6 bytes on disk per record,\n" +
        "7 bare grpc-js ceiling, 8 broker memory beside a stalled consumer, 9 1 vs 1,000 partitions.\n" +
        "Without --broker (or RILL_BROKER) a broker is started for the run. A broker given may be secured:\n" +
        "the global --tls, --tls-ca, --tls-cert/--tls-key, --tls-server-name and --token-file (or RILL_TOKEN)\n" +
        "apply to every client of the run, the phase-5 processes included.",
    )
    .action(async (flags: BenchFlags, cmd: Command) => {
      const source = cmd.parent?.getOptionValueSource("broker");
      const globals = globalOptions(cmd);
      const explicit = (source === "cli" || source === "env") && globals.broker.length > 0;
      if (!explicit && usesSecurityOptions(globals)) {
        throw new CliError(
          "--tls* and --token-file are for the broker given with --broker (or RILL_BROKER); the broker rill bench starts itself listens in plaintext on 127.0.0.1",
          2,
        );
      }
      // RILL_TOKEN counts only for a broker given: the one the bench starts has no authentication.
      const security = explicit ? clientSecurity(globals) : {};
      const options = benchOptions(
        flags,
        explicit ? globals.broker : undefined,
        `rill ${process.argv.slice(2).join(" ")}`,
      );
      const { report, files } = await runBench(options, security);
      process.stderr.write(`results: ${files.md}\n         ${files.json}\n         ${files.svg}\n`);
      if (report.profile) process.stderr.write(`broker CPU profile: ${report.profile.file}\n`);
      if (report.failed) process.exitCode = 1;
    });
}
