/**
 * The file-system seam of storage: exactly the node:fs calls storage makes, and nothing else.
 *
 * Tests wrap `nodeFileSystem` to inject faults (ENOSPC, EIO, short writes) at any call. The split
 * between sync and async calls is deliberate:
 *
 * - Sync: the append path (open a new segment on roll, vectored write, truncate back after a failed
 *   write, close/unlink a segment created by a failed append). Appends are synchronous writes to the
 *   page cache, so a partition's batches are ordered by the order their requests were handled.
 * - Async: everything that may wait on the disk (reads of cold data, fsync, directory work), so it
 *   never blocks the event loop.
 *
 * File descriptors are plain numbers (node:fs's classic API), so sync and async calls can share
 * one descriptor. Positions are byte offsets from the start of the file; every write and read in
 * storage is positional (never O_APPEND, which would ignore the position on Linux).
 */
import * as nodeFs from "node:fs";
import { join } from "node:path";

/** The subset of node:fs storage uses. Implementations must keep node:fs's semantics and errors. */
export interface FileSystem {
  /** Opens `path` with numeric flags (e.g. O_RDWR | O_CREAT); returns a descriptor. */
  openSync(path: string, flags: number, mode?: number): number;
  /**
   * Writes `buffers` in order at `position`; returns the bytes written, which may be fewer than
   * asked (callers loop). Throws on error; bytes before the error may already be in the file.
   */
  writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number): number;
  /** Cuts (or extends with zeros) the file to `length` bytes. */
  ftruncateSync(fd: number, length: number): void;
  /** The file's current size in bytes. */
  fstatSync(fd: number): { size: number };
  closeSync(fd: number): void;
  unlinkSync(path: string): void;

  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; resolves with bytes read (0 at EOF). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Flushes the file's data and metadata to stable storage. */
  fsync(fd: number): Promise<void>;
  close(fd: number): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Creates the directory and its parents (mkdir -p); no error if it exists. */
  mkdir(path: string): Promise<void>;
  /** Names of the directory's entries (not paths). */
  readdir(path: string): Promise<string[]>;
  /** Removes a file or a directory tree (rm -rf); no error if it does not exist. */
  rm(path: string): Promise<void>;
}

function promisify<T>(
  start: (done: (err: NodeJS.ErrnoException | null, value: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, value) => (err ? reject(err) : resolve(value)));
  });
}

/** The real thing: node:fs. */
export const nodeFileSystem: FileSystem = {
  openSync: (path, flags, mode) => nodeFs.openSync(path, flags, mode ?? 0o644),
  writevSync: (fd, buffers, position) => nodeFs.writevSync(fd, buffers, position),
  ftruncateSync: (fd, length) => nodeFs.ftruncateSync(fd, length),
  fstatSync: (fd) => ({ size: nodeFs.fstatSync(fd).size }),
  closeSync: (fd) => nodeFs.closeSync(fd),
  unlinkSync: (path) => nodeFs.unlinkSync(path),
  read: (fd, buffer, offset, length, position) =>
    promisify<number>((done) => nodeFs.read(fd, buffer, offset, length, position, done)),
  fsync: (fd) => promisify<void>((done) => nodeFs.fsync(fd, (err) => done(err, undefined))),
  close: (fd) => promisify<void>((done) => nodeFs.close(fd, (err) => done(err ?? null, undefined))),
  unlink: (path) => nodeFs.promises.unlink(path),
  rename: (from, to) => nodeFs.promises.rename(from, to),
  mkdir: async (path) => {
    await nodeFs.promises.mkdir(path, { recursive: true });
  },
  readdir: (path) => nodeFs.promises.readdir(path),
  rm: (path) => nodeFs.promises.rm(path, { recursive: true, force: true }),
};

/** Flags for a segment or index file: read/write, created if missing, never O_APPEND. */
export const OPEN_READ_WRITE = nodeFs.constants.O_RDWR | nodeFs.constants.O_CREAT;

/** Flags for reading a small file whole (the recovery point); fails with ENOENT if it is missing. */
export const OPEN_READ_ONLY = nodeFs.constants.O_RDONLY;

/** Flags for a fresh segment file: like OPEN_READ_WRITE, and any leftover content is discarded. */
export const OPEN_TRUNCATE = OPEN_READ_WRITE | nodeFs.constants.O_TRUNC;

/**
 * Writes every byte of `buffers` at `position`, looping over short writes (a writev writes at most
 * IOV_MAX buffers at a time, and a nearly full disk may accept part of a write). Throws the first
 * error; the file may then hold part of the data, which the caller must cut off.
 */
export function writeFully(
  fs: FileSystem,
  fd: number,
  buffers: readonly Uint8Array[],
  position: number,
): number {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  let written = 0;
  let pending: readonly Uint8Array[] = buffers;
  while (written < total) {
    const n = fs.writevSync(fd, pending, position + written);
    if (!(n > 0)) {
      throw Object.assign(new Error(`write of ${total - written} bytes made no progress`), { code: "EIO" });
    }
    written += n;
    if (written < total) pending = dropPrefix(pending, n);
  }
  return written;
}

/** `buffers` without their first `bytes` bytes (views, no copies). */
function dropPrefix(buffers: readonly Uint8Array[], bytes: number): Uint8Array[] {
  let skip = bytes;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i]!.byteLength) {
    skip -= buffers[i]!.byteLength;
    i++;
  }
  const rest = buffers.slice(i);
  if (skip > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}

/**
 * Reads `length` bytes at `position`, looping over short reads. Returns fewer bytes only if the
 * file ends first.
 */
export async function readFully(
  fs: FileSystem,
  fd: number,
  position: number,
  length: number,
): Promise<Buffer> {
  // Never from Node's shared pool: a read owns all of its memory, so a caller may use the room
  // after what it keeps (ReadResult.spare).
  const buffer = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const n = await fs.read(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

/** fsyncs a directory (via the seam), so the entries created or renamed in it survive a power loss. */
export async function syncDirectory(fs: FileSystem, dir: string): Promise<void> {
  const fd = fs.openSync(dir, nodeFs.constants.O_RDONLY | nodeFs.constants.O_DIRECTORY);
  try {
    await fs.fsync(fd);
  } finally {
    await fs.close(fd);
  }
}

/**
 * Replaces dir/name whole and durably: `tempName` is written and fsynced, renamed over `name`, and
 * the directory fsynced, so a crash at any step leaves either the old file or the new one whole
 * (plus, perhaps, a stray `tempName` the next replace truncates). Throws on any I/O error.
 */
export async function replaceFileDurably(
  fs: FileSystem,
  dir: string,
  name: string,
  contents: Uint8Array,
  tempName = `${name}.tmp`,
): Promise<void> {
  const temp = join(dir, tempName);
  const fd = fs.openSync(temp, OPEN_TRUNCATE);
  try {
    writeFully(fs, fd, [contents], 0);
    await fs.fsync(fd);
  } finally {
    await fs.close(fd);
  }
  await fs.rename(temp, join(dir, name));
  await syncDirectory(fs, dir);
}
