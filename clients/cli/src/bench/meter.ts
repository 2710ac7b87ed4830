/**
 * Timing a phase: wall time, this process's CPU time, and the broker's CPU time when the broker is
 * a child of the bench (Linux: utime + stime of /proc/PID/stat, in USER_HZ ticks of 1/100 s).
 */
import { readFileSync } from "node:fs";
import type { BenchEnv, PhaseResult } from "./types.js";

/** Payload bytes of every benchmark record. */
export const RECORD_BYTES = 200;

/** CPU seconds used so far by process `pid`, or undefined where /proc cannot tell. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after its closing ")" do not.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The result of a phase (or of one part of it, `id`) that failed before it measured anything. */
export function failedResult(phase: number, id: string, name: string, e: unknown): PhaseResult {
  return {
    id,
    phase,
    name,
    target: 0,
    records: 0,
    seconds: 0,
    recordsPerSec: undefined,
    mbPerSec: undefined,
    capped: false,
    brokerCpuSeconds: undefined,
    clientCpuSeconds: 0,
    note: "failed",
    error: e instanceof Error ? e.message : String(e),
  };
}

/** Measures one phase from its creation to `finish`. */
export class Meter {
  private readonly t0 = performance.now();
  private readonly h0 = monotonicUs();
  private readonly cpu0 = process.cpuUsage();
  private readonly broker0: number | undefined;

  /** `serverPid`: the process whose CPU time is reported as the broker's (default: the broker). */
  constructor(
    private readonly env: BenchEnv,
    private readonly serverPid = env.brokerPid,
  ) {
    this.broker0 = processCpuSeconds(serverPid);
  }

  /** Seconds since the meter started. */
  get elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** The measured fields of a result for `records` records done out of `target`. */
  finish(
    records: number,
    target: number,
  ): Pick<
    PhaseResult,
    | "records"
    | "target"
    | "seconds"
    | "recordsPerSec"
    | "mbPerSec"
    | "capped"
    | "brokerCpuSeconds"
    | "clientCpuSeconds"
  > {
    const seconds = this.elapsed;
    this.env.windows.push({ startUs: this.h0, endUs: monotonicUs() });
    const cpu = process.cpuUsage(this.cpu0);
    const broker1 = processCpuSeconds(this.serverPid);
    return {
      records,
      target,
      seconds: round(seconds, 3),
      ...rates(records, seconds),
      capped: records < target,
      brokerCpuSeconds:
        this.broker0 !== undefined && broker1 !== undefined ? round(broker1 - this.broker0, 2) : undefined,
      clientCpuSeconds: round((cpu.user + cpu.system) / 1e6, 2),
    };
  }
}

/** records/s and MB/s of `records` done in `seconds` (undefined if no time passed). */
function rates(records: number, seconds: number): Pick<Measured, "recordsPerSec" | "mbPerSec"> {
  const rate = seconds > 0 ? records / seconds : undefined;
  return {
    recordsPerSec: rate === undefined ? undefined : Math.round(rate),
    mbPerSec: rate === undefined ? undefined : round((rate * RECORD_BYTES) / 1e6, 2),
  };
}

/** The measured fields of one result made of several timed runs: counts, seconds and CPU added up. */
export type Measured = ReturnType<Meter["finish"]>;

export function sumMeasured(runs: readonly Measured[]): Measured {
  const sum = (pick: (m: Measured) => number) => runs.reduce((s, m) => s + pick(m), 0);
  const records = sum((m) => m.records);
  const seconds = round(
    sum((m) => m.seconds),
    3,
  );
  const brokerKnown = runs.every((m) => m.brokerCpuSeconds !== undefined);
  return {
    records,
    target: sum((m) => m.target),
    seconds,
    ...rates(records, seconds),
    capped: runs.some((m) => m.capped),
    brokerCpuSeconds: brokerKnown
      ? round(
          sum((m) => m.brokerCpuSeconds!),
          2,
        )
      : undefined,
    clientCpuSeconds: round(
      sum((m) => m.clientCpuSeconds),
      2,
    ),
  };
}

/** Now on the monotonic clock, in µs (what V8's CPU profiles time samples with). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A deadline `seconds` from now, as an epoch-ms number and a check. */
export function deadline(seconds: number): {
  at: number;
  passed: () => boolean;
  date: (graceMs?: number) => Date;
} {
  const at = Date.now() + seconds * 1000;
  return { at, passed: () => Date.now() >= at, date: (graceMs = 0) => new Date(at + graceMs) };
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
