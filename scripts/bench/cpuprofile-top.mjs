#!/usr/bin/env node
// Top self-time functions of a V8 .cpuprofile (node --cpu-prof), optionally only the samples
// inside one phase window written by profile-phases.mjs:
//
//   node scripts/bench/cpuprofile-top.mjs broker.cpuprofile [windows.json PHASE] [--top 25]
//
// Self time = samples whose top frame is the function. "(idle)" = the broker waited (epoll);
// "(program)" = native code outside JS functions; "(garbage collector)" = GC.
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const topI = args.indexOf("--top");
const top = topI >= 0 ? Number(args.splice(topI, 2)[1]) : 25;
const [file, windowsFile, phase] = args;
const p = JSON.parse(readFileSync(file, "utf8"));
let from = -Infinity;
let to = Infinity;
if (windowsFile) {
  const w = JSON.parse(readFileSync(windowsFile, "utf8"))[phase];
  if (!w) throw new Error(`no phase ${phase} in ${windowsFile}`);
  from = w.startUs;
  to = w.endUs;
}
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
let t = p.startTime;
let total = 0;
let busy = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i];
  if (t < from || t > to) continue;
  const d = p.timeDeltas[i + 1] ?? 0; // a sample stands for the interval up to the next one
  const cf = byId.get(p.samples[i]).callFrame;
  const where = cf.url
    .replace(/^.*node_modules\//, "")
    .replace(/^file:\/\/.*?\/dist\//, "dist/")
    .replace(/^node:/, "node:");
  const key = `${cf.functionName || "(anonymous)"}${where ? ` ${where}:${cf.lineNumber + 1}` : ""}`;
  self.set(key, (self.get(key) ?? 0) + d);
  total += d;
  if (cf.functionName !== "(idle)") busy += d;
}
const ms = (us) => (us / 1000).toFixed(0);
console.log(
  `${file}${windowsFile ? ` phase ${phase}` : ""}: ${ms(total)} ms sampled, ${ms(busy)} ms not idle (${((100 * busy) / total).toFixed(0)}%)`,
);
console.log("| self ms | % of busy | function (file:line) |");
console.log("|---:|---:|---|");
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  if (k.startsWith("(idle)")) continue;
  console.log(`| ${ms(v)} | ${((100 * v) / busy).toFixed(1)} | ${k.replace(/\|/g, "\\|")} |`);
}
