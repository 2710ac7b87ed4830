/**
 * Small durable file-system steps for broker metadata (topic.json, meta/, the offset store's
 * CURRENT): a file replaced atomically and fsynced, a small file read whole, and directory fsyncs so
 * created, renamed or removed entries survive a power loss.
 *
 * Every step goes through the storage FileSystem seam (storage/fs.ts), like segment files do, so
 * fault injection and crash tests reach topic create/delete and the metadata files too.
 *
 * Invariant of writeFileDurably (storage/fs.ts replaceFileDurably, which the partition recovery
 * point uses too): `<name>.tmp` is written and fsynced before it is renamed over `<name>`, and the
 * directory is fsynced after, so a crash at any step leaves either the old file or the new one
 * whole (plus, perhaps, a stray `<name>.tmp` the next write replaces).
 */
import {
  type FileSystem,
  OPEN_READ_ONLY,
  readFully,
  replaceFileDurably,
  syncDirectory,
} from "../storage/fs.js";

/** Writes dir/name via a temp file, fsync and rename, then fsyncs the directory. */
export function writeFileDurably(fs: FileSystem, dir: string, name: string, contents: string): Promise<void> {
  return replaceFileDurably(fs, dir, name, Buffer.from(contents, "utf8"));
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
