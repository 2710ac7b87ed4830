/**
 * Names of the files in a partition directory (DESIGN §4). Every suffix is defined here, once.
 *
 *   00000000000000000000.log         a segment: frames of stored batches (batch-frame.ts)
 *   00000000000000000000.index       its sparse offset index (offset-index.ts)
 *   00000000000000000000.timeindex   its sparse time index (time-index.ts)
 *   <any of the above>.deleted       being deleted by retention: renamed first, then unlinked, so a
 *                                    crash mid-delete leaves files that open() recognises and removes
 *   <any of the above>.cleaned/.swap reserved for compaction's temporary files (not written today;
 *                                    open() removes them as leftovers)
 *   recovery-point                   the partition's recovery point (recovery-point.ts): the base
 *                                    offset of the oldest segment that may hold data not yet
 *                                    fsynced; every segment below it was completely fsynced. Layout:
 *                                    the offset in ASCII decimal, then one "\n" (e.g. "1042\n"),
 *                                    nothing else. Replaced whole (temp file, fsync, rename, fsync of
 *                                    the directory), never written in place
 *   recovery-point.tmp               the next value being written; open() removes a leftover one
 *
 * The stem is the segment's base offset, zero-padded to 20 digits so that a plain directory
 * listing sorts segments in offset order (2^64 - 1 has 20 digits).
 */
import { join } from "node:path";

export const LOG_SUFFIX = ".log";
export const INDEX_SUFFIX = ".index";
export const TIME_INDEX_SUFFIX = ".timeindex";
export const DELETED_SUFFIX = ".deleted";
export const CLEANED_SUFFIX = ".cleaned";
export const SWAP_SUFFIX = ".swap";

/** The recovery point's file name (recovery-point.ts), and the temporary it is written through. */
export const RECOVERY_POINT_FILE = "recovery-point";
export const RECOVERY_POINT_TEMP_FILE = `${RECOVERY_POINT_FILE}.tmp`;

/** Digits in a file name's base offset. */
export const BASE_OFFSET_DIGITS = 20;

export type SegmentFileKind = "log" | "index" | "timeindex";

/** What a file name in a partition directory says, or null for a file storage does not own. */
export interface ParsedFileName {
  baseOffset: bigint;
  kind: SegmentFileKind;
  /** The temporary suffix after the kind's suffix, if any. */
  temporary: typeof DELETED_SUFFIX | typeof CLEANED_SUFFIX | typeof SWAP_SUFFIX | null;
}

const KIND_SUFFIXES: ReadonlyArray<readonly [SegmentFileKind, string]> = [
  ["log", LOG_SUFFIX],
  ["index", INDEX_SUFFIX],
  ["timeindex", TIME_INDEX_SUFFIX],
];

const TEMPORARY_SUFFIXES = [DELETED_SUFFIX, CLEANED_SUFFIX, SWAP_SUFFIX] as const;

const STEM = /^[0-9]{20}$/;

/** `42n` → `"00000000000000000042"`. */
export function formatBaseOffset(baseOffset: bigint): string {
  if (baseOffset < 0n || baseOffset >= 2n ** 64n)
    throw new RangeError(`base offset ${baseOffset} out of range`);
  return baseOffset.toString().padStart(BASE_OFFSET_DIGITS, "0");
}

export function fileName(baseOffset: bigint, kind: SegmentFileKind): string {
  return formatBaseOffset(baseOffset) + suffixOf(kind);
}

export function filePath(dir: string, baseOffset: bigint, kind: SegmentFileKind): string {
  return join(dir, fileName(baseOffset, kind));
}

export function suffixOf(kind: SegmentFileKind): string {
  return kind === "log" ? LOG_SUFFIX : kind === "index" ? INDEX_SUFFIX : TIME_INDEX_SUFFIX;
}

/** Parses `00000000000000000042.log`, `…42.index.deleted` etc.; null for any other name. */
export function parseFileName(name: string): ParsedFileName | null {
  let rest = name;
  let temporary: ParsedFileName["temporary"] = null;
  for (const t of TEMPORARY_SUFFIXES) {
    if (rest.endsWith(t)) {
      temporary = t;
      rest = rest.slice(0, -t.length);
      break;
    }
  }
  for (const [kind, suffix] of KIND_SUFFIXES) {
    if (!rest.endsWith(suffix)) continue;
    const stem = rest.slice(0, -suffix.length);
    if (!STEM.test(stem)) return null;
    return { baseOffset: BigInt(stem), kind, temporary };
  }
  return null;
}
