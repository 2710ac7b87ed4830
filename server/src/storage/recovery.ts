/**
 * Opening a partition directory: clean up leftovers, load the segments, check the indexes against
 * the log, and — after an unclean shutdown — scan and truncate the tail (STYLE habit 5).
 *
 * Steps, and why in this order:
 * 1. Finish interrupted deletes (`*.deleted`) and drop temporaries (`.cleaned`, `.swap`) and index
 *    files without a .log: all are remains of operations that were already decided.
 * 2. Open every segment, oldest first, and load both indexes into memory.
 * 3. Per segment, pick how much to trust it:
 *    - after an unclean shutdown, the last segment (and the one before it, if the last is empty:
 *      a crash right after a roll) gets a full scan: every frame's framing, header, CRC, base offset
 *      (dense from the segment's base) and record count; the log is cut at the first bad frame;
 *    - every other segment gets a sanity check of its indexes (sizes, monotonic entries, inside the
 *      log) and a walk of the frame headers after the last offset-index entry, which finds the
 *      segment's end offset and proves the index's tail matches the log. An index that fails is
 *      rebuilt by a full scan of its segment — so a bad index never hides a bad log.
 *    A scan (segment-scan.ts) re-derives both indexes with the append path's own rule; an index
 *    file that disagrees with the log is rewritten from them and counted in `rebuiltIndexes`.
 *    Time indexes are sparse (index-rule.ts), so the exact newest append time (retention and
 *    timestamp lookups use it) comes from the time index's final entry, which every segment must
 *    have — except the active one after an unclean stop (its roll or close never happened): there
 *    the segment takes the newest time from the full scan and the final entry is appended, without
 *    counting a rebuild. A clean open of a cleanly closed log therefore rebuilds nothing.
 * 4. Continuity: a segment that now ends before the next one starts leaves a hole. If everything
 *    after the hole is empty, those empty segments are deleted (the log end moves back to the cut);
 *    otherwise the later data is kept, reads skip the hole, and a warning names the lost offsets.
 */

import { join } from "node:path";
import type { Logger } from "../logger.js";
import { MAX_FRAME_HEADER_BYTES } from "./batch-frame.js";
import { parseFileName } from "./file-names.js";
import type { FileSystem } from "./fs.js";
import type { RecoveryReport } from "./log-api.js";
import { Segment } from "./segment.js";
import { scanSegment } from "./segment-scan.js";

/** Read size of a full scan. */
const SCAN_READ_BYTES = 1 << 20;

export interface LoadOptions {
  fs: FileSystem;
  dir: string;
  logger: Logger;
  indexIntervalBytes: number;
  cleanShutdown: boolean;
}

export interface LoadedLog {
  /** Oldest first; never empty; the last one is active and has its index files open. */
  segments: Segment[];
  report: RecoveryReport;
}

export async function loadSegments(options: LoadOptions): Promise<LoadedLog> {
  const { fs, dir, logger } = options;
  await fs.mkdir(dir);
  const bases = await removeLeftovers(fs, dir, logger);
  const report: RecoveryReport = { truncatedBytes: 0, rebuiltIndexes: 0 };
  if (bases.length === 0) return { segments: [Segment.create(fs, logger, dir, 0n)], report };

  const segments: Segment[] = [];
  try {
    const problems: Array<{ offsetIndex: string | null; timeIndex: string | null }> = [];
    for (const base of bases) {
      const opened = await Segment.open(fs, logger, dir, base);
      segments.push(opened.segment);
      problems.push({ offsetIndex: opened.offsetIndexProblem, timeIndex: opened.timeIndexProblem });
    }
    const last = segments.length - 1;
    const fullScan = new Set<number>();
    if (!options.cleanShutdown) {
      fullScan.add(last);
      if (segments[last]!.size === 0 && last > 0) fullScan.add(last - 1);
    }
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const nextBase = i < last ? segments[i + 1]!.baseOffset : null;
      const decoding = problems[i]!;
      let problem = decoding.offsetIndex ?? decoding.timeIndex;
      if (!fullScan.has(i) && problem === null) problem = await checkSegment(segment, nextBase, options);
      if (fullScan.has(i) || problem !== null) {
        if (problem !== null)
          logger.info({ file: segment.indexPath, problem }, "rebuilding indexes from the log");
        const unsealed = i === last && !options.cleanShutdown;
        await recoverSegment(segment, nextBase, decoding, unsealed, options, report);
      }
      // Closed segments keep only their .log descriptor; their indexes live in memory.
      if (i < last) segment.closeIndexFiles();
    }
    await closeHoles(segments, logger);
    segments[segments.length - 1]!.openIndexFiles();
    return { segments, report };
  } catch (err) {
    for (const s of segments) await s.retire();
    throw err;
  }
}

/** Step 1; returns the base offsets of the .log files, sorted. */
async function removeLeftovers(fs: FileSystem, dir: string, logger: Logger): Promise<bigint[]> {
  const names = await fs.readdir(dir);
  const logs = new Set<bigint>();
  const indexes: Array<{ name: string; base: bigint }> = [];
  for (const name of names) {
    const parsed = parseFileName(name);
    if (parsed === null) continue;
    if (parsed.temporary !== null) {
      if (parsed.temporary !== ".deleted")
        logger.warn({ file: join(dir, name) }, "removing a leftover temporary file");
      await fs.unlink(join(dir, name));
    } else if (parsed.kind === "log") {
      logs.add(parsed.baseOffset);
    } else {
      indexes.push({ name, base: parsed.baseOffset });
    }
  }
  for (const { name, base } of indexes) {
    if (!logs.has(base)) {
      logger.info({ file: join(dir, name) }, "removing an index without a log");
      await fs.unlink(join(dir, name));
    }
  }
  return [...logs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Step 3, trusted path: index sanity plus a header walk from the last offset-index entry to the end.
 * Sets the segment's nextOffset and returns null, or returns why the indexes must be rebuilt.
 */
async function checkSegment(
  segment: Segment,
  nextBase: bigint | null,
  options: LoadOptions,
): Promise<string | null> {
  const span = nextBase === null ? null : Number(nextBase - segment.baseOffset);
  const problem =
    segment.offsetIndex.check(segment.size, span) ?? segment.timeIndex.check(segment.size, span);
  if (problem !== null) return problem;
  if (segment.size === 0) return null;
  const k = segment.offsetIndex.entryCount - 1;
  const relativeOffset = segment.offsetIndex.relativeOffset(k);
  const walk = await scanSegment(segment, {
    from: { position: segment.offsetIndex.position(k), relativeOffset },
    compareFrom: { offsetEntry: k, timeEntry: segment.timeIndex.floorEntryByOffset(relativeOffset - 1) + 1 },
    verifyCrc: false,
    nextBase,
    readSize: options.indexIntervalBytes + 2 * MAX_FRAME_HEADER_BYTES,
    indexIntervalBytes: options.indexIntervalBytes,
  });
  if (walk.problem !== null) return `log tail after the last index entry: ${walk.problem}`;
  if (!walk.offsetIndexAgrees) return "offset index disagrees with the log's tail";
  if (!walk.timeIndexAgrees) return "time index disagrees with the log's tail";
  if (!walk.timeIndexFinal) return "time index does not end with the newest append time";
  segment.nextOffset = walk.nextOffset;
  return null;
}

/**
 * Full scan: cut the log at the first bad frame, rewrite indexes that disagree with it, take the
 * exact newest append time. `unsealed`: the time index may lack its final entry (appended here).
 */
async function recoverSegment(
  segment: Segment,
  nextBase: bigint | null,
  decoding: { offsetIndex: string | null; timeIndex: string | null },
  unsealed: boolean,
  options: LoadOptions,
  report: RecoveryReport,
): Promise<void> {
  const scan = await scanSegment(segment, {
    from: { position: 0, relativeOffset: 0 },
    compareFrom: { offsetEntry: 0, timeEntry: 0 },
    verifyCrc: true,
    nextBase,
    readSize: SCAN_READ_BYTES,
    indexIntervalBytes: options.indexIntervalBytes,
  });
  if (scan.validBytes < segment.size) {
    const dropped = segment.size - scan.validBytes;
    options.logger.warn(
      { file: segment.logPath, position: scan.validBytes, droppedBytes: dropped, problem: scan.problem },
      "truncating the log at the first bad frame",
    );
    report.truncatedBytes += dropped;
    segment.truncateLog(scan.validBytes);
  }
  // A file whose size was not a whole number of entries is rewritten even if its entries agree.
  const offsetDiffers = decoding.offsetIndex !== null || !scan.offsetIndexAgrees;
  const timeDiffers =
    decoding.timeIndex !== null || !scan.timeIndexAgrees || (!scan.timeIndexFinal && !unsealed);
  segment.replaceIndexes(offsetDiffers ? scan.offsetIndex : null, timeDiffers ? scan.timeIndex : null);
  report.rebuiltIndexes += (offsetDiffers ? 1 : 0) + (timeDiffers ? 1 : 0);
  segment.nextOffset = scan.nextOffset;
  segment.takeNewestTime(scan.newest);
  segment.sealTimeIndex(); // a no-op unless the kept time index of an unsealed segment lacks it
}

/** Step 4. */
async function closeHoles(segments: Segment[], logger: Logger): Promise<void> {
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i]!;
    const next = segments[i + 1]!;
    if (segment.nextOffset >= next.baseOffset) continue;
    if (segments.slice(i + 1).every((s) => s.size === 0)) {
      for (const empty of segments.splice(i + 1)) {
        logger.warn({ file: empty.logPath }, "removing an empty segment after a cut log");
        await empty.retire();
        await empty.deleteFiles();
      }
      return;
    }
    logger.warn(
      { file: segment.logPath, from: String(segment.nextOffset), to: String(next.baseOffset) },
      "offsets lost: the log has a hole before the next segment",
    );
  }
}
