#!/usr/bin/env node
// Runs the peer harness's phases through peer-adapter.mjs against a broker that is already
// running (started by hand with `node --cpu-prof ...`), and prints when each phase ran on the
// monotonic clock (µs, the clock of V8's .cpuprofile timestamps), so cpuprofile-top.mjs can
// split the broker's profile by phase. See BENCHMARKS.md "Where the time goes".
//
//   node scripts/bench/profile-phases.mjs --n 200000 --phases abc > windows.json
//
// HARNESS (default ../shared/bench/peers next to this repo) supplies payload() and Verifier.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const HARNESS = process.env.HARNESS ?? resolve(HERE, "../../../shared/bench/peers");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const N = Number(opt("--n", 200000));
const PHASES = opt("--phases", "abc");
const SECONDS = Number(opt("--phase-seconds", 60));
const GAP_MS = Number(opt("--gap-ms", 500)); // quiet time before each phase

const { payload, Verifier, MESSAGE_SIZE } = await import(
  pathToFileURL(join(HARNESS, "lib/workload.mjs")).href
);
const adapter = (await import(pathToFileURL(join(HERE, "peer-adapter.mjs")).href)).default;
const ctx = { host: "127.0.0.1", messageSize: MESSAGE_SIZE, payload, Verifier };
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const windows = { name: adapter.name, n: N };

async function phase(key, fn) {
  await sleep(GAP_MS); // a quiet gap between phases in the profile
  const t0 = nowUs();
  const w0 = Date.now();
  const r = await fn(Date.now() + SECONDS * 1000);
  const t1 = nowUs();
  const count = typeof r === "number" ? r : r.count;
  windows[key] = {
    startUs: t0,
    endUs: t1,
    count,
    seconds: (t1 - t0) / 1e6,
    msgsPerSec: Math.round(count / ((t1 - t0) / 1e6)),
    result: r,
  };
  process.stderr.write(`[profile-phases] ${key}: ${count} in ${((Date.now() - w0) / 1000).toFixed(3)} s\n`);
}

if (PHASES.includes("a")) {
  await adapter.setup(ctx);
  await phase("a", (deadline) => adapter.produce(N, 1, { deadline }));
  await adapter.teardown();
}
if (PHASES.includes("b")) {
  await adapter.setup(ctx);
  await phase("b", (deadline) => adapter.produce(N, 50, { deadline }));
  if (PHASES.includes("c")) await phase("c", (deadline) => adapter.consume(windows.b.count, { deadline }));
  await adapter.teardown();
}
process.stdout.write(`${JSON.stringify(windows, null, 2)}\n`);
process.exit(0);
