/**
 * The results of a run: the markdown table printed at the end (and saved as .md), and the JSON
 * document saved beside it. Ratios of phases 3 and 4 to the phase-7 ceiling are filled in here.
 */
import type { PhaseResult, TimeWindow } from "./types.js";

export interface BenchReport {
  /** UTC time the run started, as in the file names (e.g. 2026-11-26T18-30-00Z). */
  stamp: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  options: Record<string, unknown>;
  machine: Record<string, unknown>;
  /** The git commit of the code measured and the count of files changed since (when in a clone). */
  source?: { commit: string; changedFiles: number } | undefined;
  /** `security`: how the clients connected ("plaintext", "TLS, bearer token"...; never a secret). */
  broker: { address: string; spawned: boolean; security: string; cpuProfile?: string | undefined };
  results: PhaseResult[];
  profile?: { file: string; top: ProfileLine[] } | undefined;
  failed: boolean;
  /** When the timed parts ran (monotonic µs), to cut a CPU profile of any process to them. */
  windowsUs: TimeWindow[];
}

export interface ProfileLine {
  selfMs: number;
  selfPercent: number;
  function: string;
  location: string;
  /** For Node-internal and native functions: the nearest application frame above them, mostly. */
  via: string;
}

/** Sets `ceilingRatio` on phases 3 (vs client streaming) and 4 (vs server streaming). */
export function addCeilingRatios(results: PhaseResult[]): void {
  const rate = (id: string) => results.find((r) => r.id === id && r.error === undefined)?.recordsPerSec;
  const ratio = (value: number | undefined, ceiling: number | undefined) =>
    value !== undefined && ceiling !== undefined && ceiling > 0
      ? Math.round((value / ceiling) * 1000) / 1000
      : undefined;
  for (const r of results) {
    const dir = r.phase === 3 ? "up" : r.phase === 4 ? "down" : undefined;
    if (dir === undefined) continue;
    const small = ratio(r.recordsPerSec, rate(`7-${dir}-small`));
    const large = ratio(r.recordsPerSec, rate(`7-${dir}-large`));
    if (small !== undefined || large !== undefined) r.ceilingRatio = { small, large };
  }
}

const n = (v: number | undefined, digits = 0) =>
  v === undefined
    ? ""
    : v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** What the "result" column says for a row. */
function resultCell(r: PhaseResult): string {
  if (r.error !== undefined) return `FAILED: ${r.error.split("\n")[0]}`;
  if (r.latency) {
    const l = r.latency;
    const w = l.warmup;
    const warm =
      w === undefined || w.seconds === 0
        ? ""
        : `; after a ${w.seconds} s warm-up (its p99 ${n(w.p99Ms, 2)} ms)`;
    return `p50 ${n(l.p50Ms, 2)} / p99 ${n(l.p99Ms, 2)} / p99.9 ${n(l.p999Ms, 2)} ms (max ${n(l.maxMs, 1)}); sent at ${n(l.achievedRate)}/s${warm}`;
  }
  if (r.storage) {
    const s = r.storage;
    const idx = s.overheadWithIndexes === undefined ? "" : `, ${n(s.overheadWithIndexes, 2)} with indexes`;
    return `${n(s.overheadPerRecord, 2)} bytes/record over the 200-byte value${idx}`;
  }
  if (r.memory) {
    const m = r.memory;
    return `broker RSS ${n(m.baselineMb, 1)} → peak ${n(m.peakMb, 1)} MB while ${n(m.producedMb, 1)} MB were produced; then read ${n(m.readAfterStall)}`;
  }
  if (r.partitionRatio !== undefined) return `${n(r.partitionRatio, 2)} × the 1-partition records/s`;
  if (r.ceilingRatio) {
    const c = r.ceilingRatio;
    return `${n(c.small, 2)} × ceiling (small msgs), ${n(c.large, 2)} × (large msgs)`;
  }
  if (r.bytesPerSec !== undefined) return `${n(r.bytesPerSec / 1e6, 1)} MB/s on the wire`;
  return "";
}

/** The markdown table of the results. */
export function markdownTable(results: PhaseResult[]): string {
  const rows = [
    "| id | phase | records | s | records/s | MB/s | result | broker CPU s | client CPU s |",
    "|---|---|---:|---:|---:|---:|---|---:|---:|",
  ];
  for (const r of results) {
    const count = `${n(r.records)}${r.capped ? "*" : ""}`;
    rows.push(
      `| ${r.id} | ${r.name} | ${count} | ${n(r.seconds, 2)} | ${n(r.recordsPerSec)} | ${n(r.mbPerSec, 2)} | ${resultCell(r)} | ${n(r.brokerCpuSeconds, 2)} | ${n(r.clientCpuSeconds, 2)} |`,
    );
  }
  return `${rows.join("\n")}\n`;
}

/** The whole .md file: table, notes per row, machine and options. */
export function markdownReport(report: BenchReport): string {
  const lines = [
    `# rill bench ${report.stamp}`,
    "",
    `\`${report.command}\` against ${report.broker.spawned ? "a broker it started" : "the broker"} at ${report.broker.address} (${report.broker.security}); started ${report.startedAt}, finished ${report.finishedAt}.`,
    "",
    markdownTable(report.results),
    "`*` = the phase stopped at its time cap; its rate is over what was done by then. MB/s = records × 200 payload bytes / 10^6 / s. CPU s = user + system seconds during the phase (broker: from /proc, when the bench started it; for phase 7 the ceiling server).",
    "",
    "## How each row was measured",
    "",
    ...report.results.map((r) => `- **${r.id}**: ${r.note}`),
    "",
    "## Machine and options",
    "",
    "```json",
    JSON.stringify({ machine: report.machine, source: report.source, options: report.options }, null, 2),
    "```",
  ];
  if (report.profile) {
    lines.push(
      "",
      `## Broker CPU profile (${report.profile.file}): top self time during the timed phases`,
      "",
    );
    lines.push("| self ms | % | function | where | mostly under |", "|---:|---:|---|---|---|");
    for (const p of report.profile.top) {
      lines.push(`| ${n(p.selfMs, 1)} | ${n(p.selfPercent, 1)} | ${p.function} | ${p.location} | ${p.via} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The JSON document, laid out as the repository's formatter (biome) lays out JSON, so that a
 * committed run passes `npm run lint`: objects one key per line, arrays of plain values on one line
 * when they fit in 110 columns, 2-space indent.
 */
export function jsonReport(report: BenchReport): string {
  return `${layout(JSON.parse(JSON.stringify(report)) as unknown, "", 0)}\n`;
}

const LINE_WIDTH = 110;

function layout(value: unknown, indent: string, prefix: number): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const flat = value.every((v) => v === null || typeof v !== "object");
    const oneLine = `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
    if (flat && prefix + oneLine.length <= LINE_WIDTH) return oneLine;
    return `[\n${value.map((v) => `${inner}${layout(v, inner, inner.length)}`).join(",\n")}\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return "{}";
  const lines = entries.map(([k, v]) => {
    const key = `${inner}${JSON.stringify(k)}: `;
    // +1: the comma that may follow
    return `${key}${layout(v, inner, key.length + 1)}`;
  });
  return `{\n${lines.join(",\n")}\n${indent}}`;
}
