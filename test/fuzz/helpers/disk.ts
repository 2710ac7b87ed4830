/**
 * On-disk state of a broker's data dir for the fuzz oracles: a SHA-256 per file (relative path →
 * hex digest) and the difference between two such snapshots. Bounded: refuses to walk more than
 * MAX_FILES files.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";

const MAX_FILES = 200_000;

export type Snapshot = Map<string, string>;

export async function snapshot(root: string): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    if (out.size >= MAX_FILES) throw new Error(`more than ${MAX_FILES} files under ${root}`);
    const path = join(e.parentPath, e.name);
    out.set(
      relative(root, path),
      createHash("sha256")
        .update(await readFile(path))
        .digest("hex"),
    );
  }
  return out;
}

export interface DiskDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

export function diff(before: Snapshot, after: Snapshot): DiskDiff {
  const added = [...after.keys()].filter((k) => !before.has(k)).sort();
  const removed = [...before.keys()].filter((k) => !after.has(k)).sort();
  const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k) !== after.get(k)).sort();
  return { added, removed, changed };
}

export function allPaths(d: DiskDiff): string[] {
  return [...d.added, ...d.removed, ...d.changed];
}
