/**
 * Small durable file-system steps for broker metadata (topic.json, meta/, the offset store's
 * CURRENT): a file replaced atomically and fsynced, a small file read whole, and directory fsyncs so
 * created, renamed or removed entries survive a power loss.
 *
 * Every step goes through the storage FileSystem seam (storage/fs.ts), like segment files do, so
 * fault injection and crash tests reach topic create/delete and the metadata files too.
 *
 * Invariant of writeFileDurably: `<name>.tmp` is written and fsynced before it is renamed over
 * `<name>`, and the directory is fsynced after, so a crash at any step leaves either the old file
 * or the new one whole (plus, perhaps, a stray `<name>.tmp` the next write replaces).
 */
import { join } from "node:path";
import {
  type FileSystem,
  OPEN_READ_ONLY,
  OPEN_TRUNCATE,
  readFully,
  syncDirectory,
  writeFully,
} from "../storage/fs.js";

/** Writes dir/name via a temp file, fsync and rename, then fsyncs the directory. */
export async function writeFileDurably(
  fs: FileSystem,
  dir: string,
  name: string,
  contents: string,
): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const fd = fs.openSync(tmp, OPEN_TRUNCATE);
  try {
    writeFully(fs, fd, [Buffer.from(contents, "utf8")], 0);
    await fs.fsync(fd);
  } finally {
    await fs.close(fd);
  }
  await fs.rename(tmp, join(dir, name));
  await syncDirectory(fs, dir);
}

/** Reads a small file whole as `encoding` text; rejects like node:fs (ENOENT if it is missing). */
export async function readSmallFile(
  fs: FileSystem,
  path: string,
  encoding: BufferEncoding = "utf8",
): Promise<string> {
  const fd = fs.openSync(path, OPEN_READ_ONLY);
  try {
    const size = fs.fstatSync(fd).size;
    return (await readFully(fs, fd, 0, size)).toString(encoding);
  } finally {
    await fs.close(fd);
  }
}

/** fsyncs a directory, so entries created, renamed or removed in it survive a power loss. */
export function syncDir(fs: FileSystem, dir: string): Promise<void> {
  return syncDirectory(fs, dir);
}
