/**
 * Small durable file-system steps for broker metadata (topic.json, meta/): a file replaced
 * atomically and fsynced, and directory fsyncs so created, renamed or removed entries survive a
 * power loss. Segment files have their own seam in storage/fs.ts.
 */
import { open, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Writes dir/name via a temp file, fsync and rename, then fsyncs the directory. */
export async function writeFileDurably(dir: string, name: string, contents: string): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  await writeFile(tmp, contents);
  const fh = await open(tmp, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await syncDir(dir);
}

/** fsyncs a directory, so entries created, renamed or removed in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
