/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, a .cpuprofile file): self time per function,
 * summed over the samples, largest first; with `windows`, only the samples taken within them (the
 * timed parts of the phases, not the broker's start and stop). Sample times are CLOCK_MONOTONIC µs,
 * the clock of process.hrtime in every process of the machine. "(idle)" is left out of the percentages (a broker waiting
 * for the network is not busy); "(garbage collector)" and "(program)" are kept.
 */
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { ProfileLine } from "./report.js";
import type { TimeWindow } from "./types.js";

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export async function summarizeProfile(
  file: string,
  windows: readonly TimeWindow[] = [],
  top = 15,
  root = process.cwd(),
): Promise<ProfileLine[]> {
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const keyOf = new Map<number, { fn: string; where: string; app: boolean }>();
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    let where = url;
    if (url.startsWith("file://")) where = relative(root, fileURLToPath(url));
    keyOf.set(node.id, {
      fn: functionName || "(anonymous)",
      where: where ? `${where}:${lineNumber + 1}` : "",
      app: url.startsWith("file://"),
    });
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  /** The nearest caller outside Node's internals and native code (the node itself if it is one). */
  const appFrame = (id: number): string => {
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const k = keyOf.get(at);
      if (k?.app) return `${k.fn} ${k.where}`;
    }
    return "";
  };
  const selfUs = new Map<string, { fn: string; where: string; us: number; callers: Map<string, number> }>();
  let busyUs = 0;
  let t = profile.startTime;
  const inWindows = (at: number) =>
    windows.length === 0 || windows.some((w) => at >= w.startUs && at <= w.endUs);
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time between sample i-1 and sample i: count it for sample i.
    const us = profile.timeDeltas[i] ?? 0;
    t += us;
    const k = keyOf.get(profile.samples[i]!);
    if (k === undefined || !inWindows(t)) continue;
    const id = `${k.fn} ${k.where}`;
    const entry = selfUs.get(id) ?? { ...k, us: 0, callers: new Map<string, number>() };
    entry.us += us;
    if (!k.app) {
      const caller = appFrame(profile.samples[i]!);
      entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us);
    }
    selfUs.set(id, entry);
    if (k.fn !== "(idle)") busyUs += us;
  }
  return [...selfUs.values()]
    .filter((e) => e.fn !== "(idle)")
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({
      selfMs: Math.round(e.us / 100) / 10,
      selfPercent: busyUs > 0 ? Math.round((e.us / busyUs) * 1000) / 10 : 0,
      function: e.fn,
      location: e.where,
      via: [...e.callers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "",
    }));
}
