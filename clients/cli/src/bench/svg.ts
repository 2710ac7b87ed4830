/**
 * A hand-written SVG chart of a run: throughput bars (records/s, log scale) for every row that has
 * a rate, latency bars (p50 / p99 / p99.9, ms, log scale) per rate of phase 5, and the storage
 * overhead as a line of text. No dependencies; plain SVG 1.1 any browser or viewer shows.
 */
import type { PhaseResult } from "./types.js";

const WIDTH = 960;
const LABEL = 390;
const BAR_MAX = WIDTH - LABEL - 130;
const ROW = 22;
const COLORS: Record<number, string> = {
  1: "#4e79a7",
  2: "#59a14f",
  3: "#f28e2b",
  4: "#e15759",
  7: "#9c9c9c",
};
const LATENCY_COLORS = ["#4e79a7", "#f28e2b", "#e15759"];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (v: number, digits = 0) => v.toLocaleString("en-US", { maximumFractionDigits: digits });

/** x position of `v` on a log scale from `lo` to `hi` over BAR_MAX pixels. */
function logX(v: number, lo: number, hi: number): number {
  if (v <= lo) return 2;
  return Math.max(2, (Math.log10(v / lo) / Math.log10(hi / lo)) * BAR_MAX);
}

/** Whole decades around the values: 10^floor(log10 min) to 10^ceil(log10 max). */
function decades(values: number[]): { lo: number; hi: number } {
  const positive = values.filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...positive, 1e9)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive, lo * 10)));
  return { lo, hi: hi > lo ? hi : lo * 10 };
}

function axis(y: number, lo: number, hi: number, unit: string): string[] {
  const out: string[] = [];
  for (let v = lo; v <= hi * 1.001; v *= 10) {
    const x = LABEL + logX(v, lo, hi);
    out.push(`<line x1="${x}" y1="${y}" x2="${x}" y2="${y + 4}" stroke="#888"/>`);
    out.push(`<text x="${x}" y="${y + 16}" text-anchor="middle" class="s">${fmt(v, 1)}${unit}</text>`);
  }
  return out;
}

export function svgChart(title: string, results: PhaseResult[]): string {
  const out: string[] = [];
  let y = 30;
  out.push(`<text x="10" y="${y}" class="h">${esc(title)}</text>`);
  y += 30;
  const rated = results.filter(
    (r) => r.recordsPerSec !== undefined && r.error === undefined && r.phase !== 5,
  );
  if (rated.length > 0) {
    out.push(
      `<text x="10" y="${y}" class="b">Throughput, records/s (log scale; phase 7 = records/s equivalent)</text>`,
    );
    y += 12;
    const { lo, hi } = decades(rated.map((r) => r.recordsPerSec!));
    for (const r of rated) {
      const w = logX(r.recordsPerSec!, lo, hi);
      out.push(`<text x="${LABEL - 8}" y="${y + 15}" text-anchor="end">${esc(`${r.id} ${r.name}`)}</text>`);
      out.push(
        `<rect x="${LABEL}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW - 6}" fill="${COLORS[r.phase] ?? "#777"}"/>`,
      );
      out.push(
        `<text x="${LABEL + w + 6}" y="${y + 15}">${fmt(r.recordsPerSec!)}${r.capped ? "*" : ""}</text>`,
      );
      y += ROW;
    }
    out.push(...axis(y + 2, lo, hi, ""));
    y += 40;
  }
  const latency = results.filter((r) => r.latency !== undefined && r.error === undefined);
  if (latency.length > 0) {
    out.push(`<text x="10" y="${y}" class="b">End-to-end latency, ms (log scale): p50, p99, p99.9</text>`);
    y += 12;
    const values = latency.flatMap((r) => [r.latency!.p50Ms, r.latency!.p99Ms, r.latency!.p999Ms]);
    const { lo, hi } = decades(values);
    for (const r of latency) {
      const l = r.latency!;
      [l.p50Ms, l.p99Ms, l.p999Ms].forEach((v, i) => {
        const w = logX(v, lo, hi);
        const label = ["p50", "p99", "p99.9"][i]!;
        out.push(
          `<text x="${LABEL - 8}" y="${y + 13}" text-anchor="end">${esc(i === 0 ? `${fmt(l.rate)} records/s  ${label}` : label)}</text>`,
        );
        out.push(
          `<rect x="${LABEL}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW - 8}" fill="${LATENCY_COLORS[i]}"/>`,
        );
        out.push(`<text x="${LABEL + w + 6}" y="${y + 13}">${fmt(v, 2)} ms</text>`);
        y += ROW - 4;
      });
      y += 6;
    }
    out.push(...axis(y + 2, lo, hi, ""));
    y += 40;
  }
  const storage = results.find((r) => r.storage !== undefined && r.error === undefined)?.storage;
  if (storage) {
    const idx =
      storage.overheadWithIndexes === undefined
        ? ""
        : `, ${fmt(storage.overheadWithIndexes, 2)} with indexes`;
    out.push(
      `<text x="10" y="${y}" class="b">Storage: ${fmt(storage.overheadPerRecord, 2)} bytes/record over the 200-byte value${esc(idx)} (batches of 50)</text>`,
    );
    y += 20;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    "<style>.h{font-size:16px;font-weight:bold}.b{font-weight:bold}.s{font-size:10px;fill:#555}</style>",
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...out,
    "</svg>",
    "",
  ].join("\n");
}
