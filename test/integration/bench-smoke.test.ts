/**
 * `rill bench` end to end with a tiny N: it starts its own broker process, runs every phase and
 * writes its results. Only counts are checked (records produced = read back = N per phase, storage
 * overhead from the real segment files), never timings: the machine may be busy.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../../clients/cli/src/bench/report.js";

const ROOT = join(import.meta.dirname, "..", "..");
const N = 2000;
const RATES = [1000, 4000];
let out: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  // `npm test` builds first; build here too when the compiled command is missing.
  if (!existsSync(join(ROOT, "dist", "clients", "cli", "src", "commands", "bench.js"))) {
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "ignore" });
  }
  out = await mkdtemp(join(tmpdir(), "rill-bench-smoke-"));
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, "SIGKILL");
  await rm(out, { recursive: true, force: true });
});

/** Runs `rill bench args...` without --broker (so it starts its own); killed by PID past `timeoutMs`. */
function bench(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.RILL_BROKER;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, "bin", "rill.js"), "bench", ...args], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      reject(new Error(`rill bench timed out; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("integration > rill bench", () => {
  it("runs every phase against a broker it starts and accounts for every record", async () => {
    // Ensures the harness works end to end and that what it reports is counted, not assumed.
    const run = await bench(
      [
        ...["-n", String(N), "--rates", RATES.join(","), "--rate-seconds", "1", "--rate-warmup", "1"],
        ...["--out", out, "--verify"],
      ],
      170_000,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("| id | phase | records |");
    const stamps = readdirSync(out).filter((f) => f.endsWith(".json"));
    expect(stamps).toHaveLength(1);
    const base = join(out, stamps[0]!.replace(/\.json$/, ""));
    const report = JSON.parse(readFileSync(`${base}.json`, "utf8")) as BenchReport;
    expect(readFileSync(`${base}.svg`, "utf8")).toMatch(/^<svg [\s\S]*<\/svg>\n$/);
    expect(readFileSync(`${base}.md`, "utf8")).toContain("| 6 | storage overhead");
    expect(report.failed).toBe(false);
    expect(report.broker.spawned).toBe(true);
    const byId = new Map(report.results.map((r) => [r.id, r]));
    expect([...byId.keys()]).toEqual([
      "1-written",
      "1-fsynced",
      "2-written",
      "2-fsynced",
      "3",
      "4",
      ...RATES.map((r) => `5-${r}`),
      "6",
      "7-up-small",
      "7-up-large",
      "7-down-small",
      "7-down-large",
      "8",
      "9-1",
      "9-1000",
    ]);
    for (const r of report.results) {
      expect(r.error, r.id).toBeUndefined();
      expect(r.capped, r.id).toBe(false);
    }
    // Produced = acknowledged = read back = N (phases 1-3); read = N (phase 4).
    for (const id of ["1-written", "1-fsynced", "2-written", "2-fsynced", "3", "4"]) {
      const r = byId.get(id)!;
      expect([id, r.target, r.records, r.consumed]).toEqual([id, N, N, N]);
    }
    expect(byId.get("1-written")!.note).toMatch(/^ProduceSession/);
    // Phase 5: every record sent at a rate is read by the following consumer, the warm-up's
    // (one second's worth) apart from the measured ones.
    for (const rate of RATES) {
      const r = byId.get(`5-${rate}`)!;
      const expected = Math.min(N, rate);
      expect([r.target, r.records, r.consumed]).toEqual([expected, expected, expected]);
      expect([r.latency!.warmup!.seconds, r.latency!.warmup!.records]).toEqual([1, rate]);
      expect(r.latency!.warmup!.p99Ms).toBeGreaterThan(0);
      expect(r.latency!.p50Ms).toBeGreaterThan(0);
      expect(r.latency!.p999Ms).toBeGreaterThanOrEqual(r.latency!.p50Ms);
    }
    // Phase 6: sizes of the real files of the N-record data set.
    const s = byId.get("6")!.storage!;
    expect(s.source).toBe("files");
    expect(s.records).toBe(N);
    expect(s.logBytes).toBeGreaterThan(N * 200);
    expect(s.overheadPerRecord).toBeGreaterThan(0);
    expect(s.overheadPerRecord).toBeLessThan(100);
    expect(s.overheadWithIndexes!).toBeGreaterThanOrEqual(s.overheadPerRecord);
    expect(s.overheadWithIndexes!).toBeLessThan(100);
    // Phase 7 moved at least N records' worth of bytes each way, and 3 and 4 got their ratios.
    for (const id of ["7-up-small", "7-up-large", "7-down-small", "7-down-large"]) {
      expect(byId.get(id)!.records, id).toBeGreaterThanOrEqual(N - 1);
      expect(byId.get(id)!.bytesPerSec, id).toBeGreaterThan(0);
    }
    expect(byId.get("3")!.ceilingRatio?.small).toBeGreaterThan(0);
    expect(byId.get("4")!.ceilingRatio?.small).toBeGreaterThan(0);
    // Phase 8: 5 × N produced while the consumer stalled, then all of them (and the warm-up) read.
    const stalled = byId.get("8")!;
    expect([stalled.target, stalled.records, stalled.consumed]).toEqual([5 * N, 5 * N, 5 * N + 1]);
    expect(stalled.memory!.baselineMb).toBeGreaterThan(0);
    expect(stalled.memory!.peakMb).toBeGreaterThanOrEqual(stalled.memory!.baselineMb);
    expect(stalled.memory!.producedMb).toBe((5 * N * 200) / 1e6);
    // Phase 9: 5 × N records acknowledged and stored over 1 and over 1,000 partitions, and their ratio.
    for (const id of ["9-1", "9-1000"]) {
      const r = byId.get(id)!;
      expect([id, r.target, r.records, r.consumed]).toEqual([id, 5 * N, 5 * N, 5 * N]);
    }
    expect(byId.get("9-1000")!.partitionRatio).toBeGreaterThan(0);
  }, 180_000);
});
