/**
 * A partition's recovery point: the base offset of the oldest segment that may hold data not yet
 * fsynced. Invariant: every segment whose base offset is below it was completely fsynced (its
 * .log, its indexes and its directory entry). An unclean open therefore scans only the segments at
 * or above it (recovery.ts), normally the active one and perhaps the one rolled just before it;
 * segments below it get the cheap index sanity check and tail walk of a clean open.
 *
 * File: `recovery-point` in the partition directory (file-names.ts), holding the offset in ASCII
 * decimal followed by one "\n" (e.g. "1042\n") and nothing else. Any other content is unreadable,
 * which, like a missing file, makes an unclean open scan every segment (always safe).
 *
 * Writes replace the file whole: write `recovery-point.tmp`, fsync it, rename it over the file,
 * fsync the directory — all through the FileSystem seam. A crash at any step leaves either the old
 * value or the new one, both of which satisfy the invariant (the old one, being lower, only makes
 * recovery scan more). The log (log.ts) moves the point forward after a flush has covered a
 * segment that is no longer active, i.e. about once per roll, never per append; recovery moves it
 * back only when it is past the active segment (segments were dropped or removed).
 */
import { join } from "node:path";
import { RECOVERY_POINT_FILE, RECOVERY_POINT_TEMP_FILE } from "./file-names.js";
import { type FileSystem, OPEN_READ_ONLY, readFully, replaceFileDurably, syncDirectory } from "./fs.js";

/** Longest valid content: 20 digits (2^64 - 1) and the newline. */
const MAX_BYTES = 21;
const CONTENT = /^([0-9]{1,20})\n$/;

export interface LoadedRecoveryPoint {
  /** The recovery point, or null if the file is missing or unreadable. */
  value: bigint | null;
  /** Why `value` is null ("missing", or what is wrong with the file). */
  problem: string | null;
}

export async function readRecoveryPoint(fs: FileSystem, dir: string): Promise<LoadedRecoveryPoint> {
  let fd: number;
  try {
    fd = fs.openSync(join(dir, RECOVERY_POINT_FILE), OPEN_READ_ONLY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { value: null, problem: code === "ENOENT" ? "missing" : `cannot open: ${code ?? String(err)}` };
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > MAX_BYTES) return { value: null, problem: `${size} bytes, at most ${MAX_BYTES} expected` };
    const text = (await readFully(fs, fd, 0, size)).toString("latin1");
    const match = CONTENT.exec(text);
    const value = match === null ? null : BigInt(match[1]!);
    if (value === null || value >= 2n ** 64n) return { value: null, problem: "not a decimal offset" };
    return { value, problem: null };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { value: null, problem: `cannot read: ${code ?? String(err)}` };
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // nothing was written through this descriptor
    }
  }
}

/** Replaces the file with `value` durably (see the header). Throws on any I/O error. */
export async function writeRecoveryPoint(fs: FileSystem, dir: string, value: bigint): Promise<void> {
  const contents = Buffer.from(`${value}\n`, "latin1");
  await replaceFileDurably(fs, dir, RECOVERY_POINT_FILE, contents, RECOVERY_POINT_TEMP_FILE);
}

/** Removes the file durably (an unclean open then scans every segment). No error if it is missing. */
export async function removeRecoveryPoint(fs: FileSystem, dir: string): Promise<void> {
  try {
    await fs.unlink(join(dir, RECOVERY_POINT_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return;
  }
  await syncDirectory(fs, dir);
}
