/**
 * Opening a partition directory: clean up leftovers, load the segments, check the indexes against
 * the log, and — after an unclean shutdown — scan and truncate every segment that may hold data
 * that was never fsynced (STYLE habit 5).
 *
 * Steps, and why in this order:
 * 1. Finish interrupted deletes (`*.deleted`) and drop temporaries (`.cleaned`, `.swap`,
 *    `recovery-point.tmp`) and index files without a .log: all are remains of operations that were
 *    already decided. Then read the recovery point (recovery-point.ts): every segment below it was
 *    completely fsynced, so after a machine crash only the segments at or above it can hold a torn
 *    or missing tail — including segments already rolled, whose tail a power loss can tear just as
 *    well as the active one's when the crash comes before their flush.
 * 2. Open every segment, oldest first, and load both indexes into memory.
 * 3. Per segment, pick how much to trust it:
 *    - after an unclean shutdown, every segment whose base offset is at or above the recovery point
 *      (normally the active one and perhaps the one rolled just before it; every segment if the
 *      file is missing or unreadable; the last one always) gets a full scan: every frame's framing,
 *      header, CRC, base offset (dense from the segment's base) and record count; the segment is
 *      cut at the first bad frame;
 *    - every other segment gets a sanity check of its indexes (sizes, monotonic entries, inside the
 *      log) and a walk of the frame headers after the last offset-index entry, which finds the
 *      segment's end offset and proves the index's tail matches the log. An index that fails is
 *      rebuilt by a full scan of its segment — so a bad index never hides a bad log. Bit rot that
 *      walk meets (the index proven right up to it) is kept in place if the frames after it walk
 *      cleanly to the end (walkPastDamage: reads report it as DATA_LOSS); a last segment holding
 *      such damage is rolled, so appends never follow it in the same file.
 *    A scan (segment-scan.ts) re-derives both indexes with the append path's own rule; an index
 *    file that disagrees with the log is rewritten from them and counted in `rebuiltIndexes`.
 *    Time indexes are sparse (index-rule.ts), so the exact newest append time (retention and
 *    timestamp lookups use it) comes from the time index's final entry, which every segment must
 *    have — except the active one after an unclean stop (its roll or close never happened): there
 *    the segment takes the newest time from the full scan and the final entry is appended, without
 *    counting a rebuild. A clean open of a cleanly closed log therefore rebuilds nothing.
 * 4. Contiguity, after every segment is checked (a cut can only be seen once the segment's end is
 *    known). A segment cut by the unclean-recovery scan (at or above the recovery point: it may
 *    hold unflushed writes) that now ends before the next one starts is a torn write, and ends the
 *    log: every later segment was written after it and is deleted (their bytes count in
 *    `truncatedBytes`, a warning names the file, the position and the offsets dropped), so offsets
 *    stay dense and are never reused. A cut below the recovery point, or on a clean open (found
 *    while rebuilding an index), is damage in fsynced data: its offsets are lost, with a warning,
 *    but the good segments after it stay. A cut that loses no offset (garbage after a segment's
 *    last whole frame) keeps the later segments.
 * 5. Recovery point: if it is now past the active segment (step 4 dropped segments, or files were
 *    removed by hand), it is written back to the active segment's base before any append can land
 *    below it (or, if that write fails, removed: missing means "scan everything"). Last, because
 *    only now is the active segment known. The segments an unclean open scanned (and any segment
 *    cut) go to the log as not yet fsynced: its next flush fsyncs them before the point moves on.
 */

import { join } from "node:path";
import type { Logger } from "../logger.js";
import { isFrameProblem, MAX_FRAME_HEADER_BYTES } from "./batch-frame.js";
import { parseFileName, RECOVERY_POINT_TEMP_FILE } from "./file-names.js";
import { FrameCursor } from "./frame-cursor.js";
import { nextGoodFrame } from "./frame-resync.js";
import type { FileSystem } from "./fs.js";
import type { RecoveryReport } from "./log-api.js";
import { readRecoveryPoint, removeRecoveryPoint, writeRecoveryPoint } from "./recovery-point.js";
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
  /** The recovery point now on disk (recovery-point.ts), or null if there is none. */
  recoveryPoint: bigint | null;
  /** Segments that may hold bytes not yet fsynced (scanned after an unclean stop, or cut). */
  unflushed: Segment[];
}

export async function loadSegments(options: LoadOptions): Promise<LoadedLog> {
  const { fs, dir, logger } = options;
  await fs.mkdir(dir);
  const bases = await removeLeftovers(fs, dir, logger);
  const point = await readRecoveryPoint(fs, dir);
  const report: RecoveryReport = { truncatedBytes: 0, rebuiltIndexes: 0 };
  const segments: Segment[] = [];
  const unflushed = new Set<Segment>();
  try {
    if (bases.length === 0) {
      segments.push(Segment.create(fs, logger, dir, 0n));
    } else {
      const torn = new Set<Segment>();
      await checkSegments(bases, point.value, point.problem, options, report, segments, unflushed, torn);
      await keepContiguous(segments, torn, logger, report);
      const last = segments[segments.length - 1]!;
      if (last.damaged) {
        // Damage kept in place (walkPastDamage) must not sit in the active segment: appends go to
        // a fresh one from the true end offset.
        last.closeIndexFiles();
        segments.push(Segment.create(fs, logger, dir, last.nextOffset));
        logger.warn(
          { file: last.logPath, baseOffset: String(last.nextOffset) },
          "rolled past a damaged segment",
        );
      }
      segments[segments.length - 1]!.openIndexFiles();
    }
    const recoveryPoint = await settleRecoveryPoint(point.value, segments, options);
    return {
      segments,
      report,
      recoveryPoint,
      unflushed: segments.filter((s) => unflushed.has(s)),
    };
  } catch (err) {
    for (const s of segments) await s.retire();
    throw err;
  }
}

/** Steps 2 and 3: opens `bases` into `segments`, noting in `unflushed` the ones scanned or cut. */
async function checkSegments(
  bases: readonly bigint[],
  recoveryPoint: bigint | null,
  pointProblem: string | null,
  options: LoadOptions,
  report: RecoveryReport,
  segments: Segment[],
  unflushed: Set<Segment>,
  torn: Set<Segment>,
): Promise<void> {
  const { fs, dir, logger } = options;
  const problems: Array<{ offsetIndex: string | null; timeIndex: string | null }> = [];
  for (const base of bases) {
    const opened = await Segment.open(fs, logger, dir, base);
    segments.push(opened.segment);
    problems.push({ offsetIndex: opened.offsetIndexProblem, timeIndex: opened.timeIndexProblem });
  }
  const last = segments.length - 1;
  const fullScan = new Set<number>();
  if (!options.cleanShutdown) {
    for (let i = 0; i <= last; i++) {
      if (recoveryPoint === null || segments[i]!.baseOffset >= recoveryPoint || i === last) fullScan.add(i);
    }
    if (recoveryPoint === null) {
      logger.info(
        { recoveryPoint: pointProblem, segments: fullScan.size },
        "no usable recovery point: scanning every segment",
      );
    } else {
      logger.info(
        { recoveryPoint: String(recoveryPoint), segments: fullScan.size },
        "scanning the segments from the recovery point",
      );
    }
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
      const cut = await recoverSegment(segment, nextBase, decoding, unsealed, options, report);
      if (cut || fullScan.has(i)) unflushed.add(segment);
      // A cut in a segment that may hold unflushed writes is a torn write: what follows it was
      // written later and cannot be trusted either. A cut below the recovery point (fsynced data)
      // is damage at rest, and must not cost the good segments after it.
      if (cut && fullScan.has(i)) torn.add(segment);
    }
    // Closed segments keep only their .log descriptor; their indexes live in memory. Indexes this
    // open rewrote are fsynced first: no later flush can (their descriptors close here), and the
    // recovery point may pass the segment.
    if (i < last) {
      if (fullScan.has(i) || problem !== null) await segment.flush();
      segment.closeIndexFiles();
    }
  }
}

/** Step 1; returns the base offsets of the .log files, sorted. */
async function removeLeftovers(fs: FileSystem, dir: string, logger: Logger): Promise<bigint[]> {
  const names = await fs.readdir(dir);
  const logs = new Set<bigint>();
  const indexes: Array<{ name: string; base: bigint }> = [];
  for (const name of names) {
    const parsed = parseFileName(name);
    if (parsed === null) {
      if (name === RECOVERY_POINT_TEMP_FILE) await fs.unlink(join(dir, name));
      continue;
    }
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
  if (walk.problem !== null) {
    // Damage right at the last entry's position may mean the entry is what is wrong: only an entry
    // a walk from the previous one reaches exactly proves that the log is damaged there.
    const entryRight = walk.validBytes > segment.offsetIndex.position(k) || (await entryReached(segment, k));
    const past = entryRight
      ? await walkPastDamage(segment, walk.validBytes, walk.nextOffset, nextBase)
      : null;
    if (past === null) return `log tail after the last index entry: ${walk.problem}`;
    options.logger.warn(
      {
        file: segment.logPath,
        position: walk.validBytes,
        from: String(walk.nextOffset),
        to: String(past.resumeAt),
        problem: walk.problem,
      },
      "damaged batch in fsynced data: kept in place, reads of these offsets fail with DATA_LOSS, the rest is served",
    );
    segment.nextOffset = past.nextOffset;
    return null;
  }
  if (!walk.offsetIndexAgrees) return "offset index disagrees with the log's tail";
  if (!walk.timeIndexAgrees) return "time index disagrees with the log's tail";
  if (!walk.timeIndexFinal) return "time index does not end with the newest append time";
  segment.nextOffset = walk.nextOffset;
  return null;
}

/** Whether a header walk from offset-index entry k-1 lands exactly on entry k (entry 0 is (0, 0)). */
async function entryReached(segment: Segment, k: number): Promise<boolean> {
  if (k === 0) return true;
  const target = segment.offsetIndex.position(k);
  const cursor = new FrameCursor(segment, target, SCAN_READ_BYTES);
  let at = segment.offsetIndex.position(k - 1);
  let offset = segment.offsetIndex.relativeOffset(k - 1);
  while (at < target) {
    const header = await cursor.headerOrProblem(at);
    if (isFrameProblem(header) || header.baseOffset !== segment.baseOffset + BigInt(offset)) return false;
    offset += header.recordCount;
    at += header.frameBytes;
  }
  return at === target && offset === segment.offsetIndex.relativeOffset(k);
}

/**
 * Bit rot found by the trusted path's tail walk (the indexes passed their checks, so this is
 * damage in fsynced data, not a torn write): the next good frame after the damage
 * (frame-resync.ts) and a header walk from it to the end of the segment (dense offsets, within the
 * next segment's base, ending with the time index's newest time) give the segment's true end
 * offset, so nothing after the damage is cut and, in the last segment, no offset is ever reused.
 * Null if that does not work out (the caller then rebuilds and cuts, as before). Reads of the
 * damaged offsets fail with DATA_LOSS (segment-reader.ts). The last segment then stops being the
 * active one (loadSegments rolls), so a later unclean open's scan never treats this damage as a
 * torn write.
 */
async function walkPastDamage(
  segment: Segment,
  position: number,
  expected: bigint,
  nextBase: bigint | null,
): Promise<{ resumeAt: bigint; nextOffset: bigint } | null> {
  const end = segment.size;
  const before = nextBase ?? 2n ** 64n - 1n;
  const next = await nextGoodFrame(segment, position + 1, expected, end, before);
  if (next === null) return nextBase === null ? null : { resumeAt: nextBase, nextOffset: nextBase };
  const cursor = new FrameCursor(segment, end, SCAN_READ_BYTES);
  let at = next.position;
  let offset = next.baseOffset;
  let newest = next.appendTimeMs;
  while (at < end) {
    const header = await cursor.headerOrProblem(at);
    if (isFrameProblem(header) || header.baseOffset !== offset) return null;
    offset += BigInt(header.recordCount);
    if (offset > before) return null;
    newest = header.appendTimeMs;
    at += header.frameBytes;
  }
  if (newest !== segment.timeIndex.lastTimestamp) return null;
  segment.damaged = true;
  return { resumeAt: next.baseOffset, nextOffset: offset };
}

/**
 * Full scan: cut the log at the first bad frame, rewrite indexes that disagree with it, take the
 * exact newest append time. `unsealed`: the time index may lack its final entry (appended here).
 * Returns whether the log was cut.
 */
async function recoverSegment(
  segment: Segment,
  nextBase: bigint | null,
  decoding: { offsetIndex: string | null; timeIndex: string | null },
  unsealed: boolean,
  options: LoadOptions,
  report: RecoveryReport,
): Promise<boolean> {
  const scan = await scanSegment(segment, {
    from: { position: 0, relativeOffset: 0 },
    compareFrom: { offsetEntry: 0, timeEntry: 0 },
    verifyCrc: true,
    nextBase,
    readSize: SCAN_READ_BYTES,
    indexIntervalBytes: options.indexIntervalBytes,
  });
  const cut = scan.validBytes < segment.size;
  if (cut) {
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
  return cut;
}

/**
 * Step 4: a torn write ends the log. The first segment cut by the unclean-recovery scan that now
 * ends before the next one starts ends the log, and every later segment is deleted (offsets stay
 * dense and are never reused). A gap after a segment cut for any other reason (damage in fsynced
 * data found while rebuilding an index) is left, with a warning naming the lost offsets: deleting
 * the good segments after it would turn one damaged batch into a large loss.
 */
async function keepContiguous(
  segments: Segment[],
  torn: ReadonlySet<Segment>,
  logger: Logger,
  report: RecoveryReport,
): Promise<void> {
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i]!;
    if (segment.nextOffset >= segments[i + 1]!.baseOffset) continue;
    if (!torn.has(segment)) {
      logger.warn(
        {
          file: segment.logPath,
          position: segment.size,
          from: String(segment.nextOffset),
          to: String(segments[i + 1]!.baseOffset),
        },
        "damaged batches cut from an fsynced segment: these offsets are lost, later segments are kept",
      );
      continue;
    }
    const dropped = segments.splice(i + 1);
    let bytes = 0;
    for (const s of dropped) bytes += s.size;
    report.truncatedBytes += bytes;
    logger.warn(
      {
        file: segment.logPath,
        position: segment.size,
        from: String(segment.nextOffset),
        to: String(dropped[dropped.length - 1]!.nextOffset),
        segments: dropped.length,
        droppedBytes: bytes,
      },
      "a torn write ends the log inside a segment that is not the last: deleting every later segment",
    );
    for (const s of dropped) {
      await s.retire();
      await s.deleteFiles();
    }
    return;
  }
}

/** Step 5; returns the recovery point now on disk. */
async function settleRecoveryPoint(
  loaded: bigint | null,
  segments: readonly Segment[],
  options: LoadOptions,
): Promise<bigint | null> {
  const activeBase = segments[segments.length - 1]!.baseOffset;
  if (loaded === null || loaded <= activeBase) return loaded;
  const { fs, dir, logger } = options;
  logger.warn(
    { recoveryPoint: String(loaded), activeBase: String(activeBase) },
    "the recovery point is past the active segment: moving it back",
  );
  try {
    await writeRecoveryPoint(fs, dir, activeBase);
    return activeBase;
  } catch (err) {
    logger.warn({ err }, "could not move the recovery point back: removing it");
    await removeRecoveryPoint(fs, dir);
    return null;
  }
}
