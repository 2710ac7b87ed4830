/**
 * A partition's log: an in-memory sorted list of segments (segment.ts), the last one active.
 * Implements PartitionLog (log-api.ts); the file format is in batch-frame.ts and the file names in
 * file-names.ts.
 *
 * Invariants:
 * - segments are sorted by base offset; each one's batches have dense offsets from its base; the
 *   next segment starts exactly where the previous ends (recovery.ts deletes every segment after a
 *   cut rather than leave a hole); logStartOffset is the first segment's base, logEndOffset the
 *   active one's end;
 * - append times are monotonic: a batch is stamped max(clock.now(), previous append time);
 * - a segment's time index gets its final entry (index-rule.ts) when the segment stops being the
 *   active one (roll) and on close, so a reopen finds every segment's exact newest append time;
 * - appends are synchronous and all-or-nothing: a failed append (ENOSPC, EIO, short write) cuts
 *   every touched file back, removes segments it rolled, leaves the in-memory state unchanged and
 *   rethrows, so the log stays consistent and appendable once the fault clears;
 * - reads, fsyncs and retention are async. A read bounds itself by the sizes committed when it
 *   starts (never a partial frame), and holds a reference on the segments it reads so retention
 *   or close never pulls a descriptor from under it;
 * - a flush fsyncs every segment with unflushed bytes and, after a roll (or an open), the
 *   partition directory, so a new segment's directory entry is as durable as its data. Of the
 *   active segment it fsyncs only the .log (one fsync per FSYNCED ack, not three): an unclean open
 *   scans the active segment and rebuilds its indexes from the .log whatever the recovery point
 *   says, so they need not be durable yet. A segment becomes unflushed again when it rolls (its
 *   indexes get their fsync before the recovery point can pass it), and close fsyncs everything;
 * - recovery point (recovery-point.ts): every segment whose base offset is below the value on disk
 *   was completely fsynced, so an unclean open scans only the segments from it on. The value on
 *   disk only moves forward, after a successful flush, to the oldest segment still unflushed or
 *   active (so about once per roll, never per append); the segments recovery scanned start out as
 *   unflushed, so the point passes them only once they are fsynced. Failing to write it fails no
 *   flush: the old value stays safe (recovery just scans more) and the next flush retries;
 * - each segment knows how many of its bytes a successful fsync covered (durableSize); after a
 *   failed fsync, rewriteSinceLastFlush() reads the rest back, checks it and writes it again, so a
 *   later successful fsync really covers it (the kernel may drop dirty pages on an fsync error);
 * - a retention pass never outlives the log: close() waits for it and it stops between segments,
 *   so a topic deleted and re-created under the same name cannot lose files to the old pass.
 *
 * Called from one event loop only (the partition's); no locks are needed because every state
 * change happens synchronously between awaits.
 */

import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { frameBytes, frameHeaderBytes, MAX_FRAME_BYTES, writeFrameHeader } from "./batch-frame.js";
import { BatchTooLargeError, LogClosedError, OffsetOutOfRangeError } from "./errors.js";
import { type FileSystem, nodeFileSystem, syncDirectory } from "./fs.js";
import type {
  AppendInput,
  AppendResult,
  LogConfig,
  LogOptions,
  PartitionLog,
  ReadResult,
  RecoveryReport,
} from "./log-api.js";
import { loadSegments } from "./recovery.js";
import { writeRecoveryPoint } from "./recovery-point.js";
import { activeSegmentExpired, deleteSegments, segmentsToDelete } from "./retention.js";
import { type PendingFrame, Segment, type SegmentState } from "./segment.js";
import { emptyRead, findTimestamp, readSegment } from "./segment-reader.js";

const MAX_RELATIVE_OFFSET = 0xffffffffn;

/** A segment written by an append, with its state before (for undo). */
interface Written {
  segment: Segment;
  before: SegmentState;
}

/** Opens (creating, recovering) the log in `options.dir`. */
export function openLog(options: LogOptions): Promise<Log> {
  return Log.open(options);
}

export class Log implements PartitionLog {
  readonly recovery: RecoveryReport;
  readonly dir: string;

  private segments: Segment[];
  private lastAppendTimeMs: number;
  private readonly unflushed = new Set<Segment>();
  /** Segments no longer active whose index descriptors are still open. */
  private readonly rolledOut = new Set<Segment>();
  private flushing: Promise<bigint> | null = null;
  private nextFlush: Promise<bigint> | null = null;
  private closed = false;
  /**
   * Files were created in the partition directory since it was last fsynced. True after open:
   * opening may have created the first segment, and recovery may have removed files.
   */
  private directoryDirty = true;
  /** The retention pass in progress, if any. */
  private retention: Promise<number> | null = null;
  private closing: Promise<void> | null = null;
  /** The recovery point on disk (recovery-point.ts); null if there is none. */
  private recoveryPoint: bigint | null;
  /** The recovery-point write in progress, if any (shutDown waits for it). */
  private recoveryPointWrite: Promise<void> | null = null;
  /** The next flush must fsync the active segment's indexes too (close). */
  private fullFlushWanted = false;
  /** Set by shutDown before it retires the segments: no recovery-point write may start after. */
  private released = false;
  /** The logger's level allows debug (read once: the broker never changes it; pino's check costs per append). */
  private readonly debugEnabled: boolean;

  private constructor(
    private readonly fs: FileSystem,
    private readonly config: LogConfig,
    private readonly clock: Clock,
    private readonly logger: Logger,
    dir: string,
    segments: Segment[],
    recovery: RecoveryReport,
    recoveryPoint: bigint | null,
    unflushed: readonly Segment[],
  ) {
    this.dir = dir;
    this.segments = segments;
    this.recovery = recovery;
    this.recoveryPoint = recoveryPoint;
    for (const s of unflushed) {
      this.unflushed.add(s);
      s.durableSize = 0; // scanned after an unclean stop or cut: fsynced again before it counts
    }
    this.lastAppendTimeMs = segments.reduce((max, s) => Math.max(max, s.lastAppendTimeMs), 0);
    this.debugEnabled = logger.isLevelEnabled("debug");
  }

  static async open(options: LogOptions): Promise<Log> {
    validateConfig(options.config);
    const fs = options.fs ?? nodeFileSystem;
    const logger = options.logger.child({ component: "log" });
    const loaded = await loadSegments({
      fs,
      dir: options.dir,
      logger,
      indexIntervalBytes: options.config.indexIntervalBytes,
      cleanShutdown: options.cleanShutdown,
    });
    const log = new Log(
      fs,
      { ...options.config },
      options.clock,
      logger,
      options.dir,
      loaded.segments,
      loaded.report,
      loaded.recoveryPoint,
      loaded.unflushed,
    );
    logger.debug(
      {
        logStartOffset: String(log.logStartOffset),
        logEndOffset: String(log.logEndOffset),
        segments: log.segmentCount,
      },
      "log opened",
    );
    return log;
  }

  get logStartOffset(): bigint {
    return this.segments[0]!.baseOffset;
  }

  get logEndOffset(): bigint {
    return this.active.nextOffset;
  }

  get sizeBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.size;
    return total;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Base offsets of the segments, oldest first (for tools and tests). */
  segmentBaseOffsets(): bigint[] {
    return this.segments.map((s) => s.baseOffset);
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  append(inputs: readonly AppendInput[]): AppendResult[] {
    this.ensureOpen();
    if (inputs.length === 0) return [];
    let headerBytes = 0;
    for (const input of inputs) headerBytes += validateInput(input);
    const headers = Buffer.allocUnsafe(headerBytes);
    const appendTimeMs = Math.max(Math.max(0, Math.floor(this.clock.now())), this.lastAppendTimeMs);
    const results: AppendResult[] = [];
    const written: Written[] = [];
    const segmentCountBefore = this.segments.length;
    let nextOffset = this.logEndOffset;
    let headerAt = 0;
    let group: PendingFrame[] = [];
    let groupBytes = 0;
    try {
      for (const input of inputs) {
        const fields = {
          baseOffset: nextOffset,
          recordCount: input.recordCount,
          appendTimeMs,
          compression: input.compression,
        };
        const size = writeFrameHeader(headers, headerAt, fields, input.records);
        const frame = size + input.records.byteLength;
        if (this.shouldRoll(groupBytes, frame, nextOffset, input.recordCount, appendTimeMs)) {
          if (group.length > 0)
            written.push({ segment: this.active, before: this.writeGroup(group, appendTimeMs) });
          group = [];
          groupBytes = 0;
          this.sealActive(written);
          this.roll(nextOffset);
        }
        const header = headers.subarray(headerAt, headerAt + size);
        group.push({
          header,
          records: input.records,
          baseOffset: nextOffset,
          recordCount: input.recordCount,
        });
        groupBytes += frame;
        headerAt += size;
        results.push({ baseOffset: nextOffset, recordCount: input.recordCount, appendTimeMs });
        nextOffset += BigInt(input.recordCount);
      }
      written.push({ segment: this.active, before: this.writeGroup(group, appendTimeMs) });
    } catch (err) {
      this.undoAppend(written, segmentCountBefore);
      throw err;
    }
    this.lastAppendTimeMs = appendTimeMs;
    for (const w of written) this.unflushed.add(w.segment);
    if (this.debugEnabled) {
      this.logger.debug({ batches: inputs.length, baseOffset: String(results[0]!.baseOffset) }, "appended");
    }
    return results;
  }

  /** Whether the active segment, already holding `pendingBytes` more, must roll before a `frame`-byte batch. */
  private shouldRoll(
    pendingBytes: number,
    frame: number,
    baseOffset: bigint,
    count: number,
    nowMs: number,
  ): boolean {
    const active = this.active;
    const size = active.size + pendingBytes;
    if (size === 0) return false;
    if (size + frame > this.config.segmentBytes) return true;
    const first = active.size > 0 ? active.firstAppendTimeMs : nowMs;
    if (nowMs - first > this.config.segmentMs) return true;
    return baseOffset + BigInt(count) - 1n - active.baseOffset > MAX_RELATIVE_OFFSET;
  }

  private writeGroup(group: PendingFrame[], appendTimeMs: number): SegmentState {
    return this.active.appendFrames(group, appendTimeMs, this.config.indexIntervalBytes);
  }

  /** Adds the active segment's final time entry if it lacks it (before a roll or close), noting the write. */
  private sealActive(written: Written[]): void {
    const segment = this.active;
    const before = segment.sealTimeIndex();
    if (before !== null) written.push({ segment, before });
  }

  /**
   * Starts a new empty active segment at `baseOffset` (the caller sealed the previous one).
   * Synchronous. The previous segment keeps its index descriptors until a flush has covered it (and
   * a failed append may still cut it back).
   */
  private roll(baseOffset: bigint): void {
    this.rolledOut.add(this.active);
    // Its indexes were fsynced with nothing but its .log while it was active: the next flush must
    // fsync them before the recovery point passes it.
    this.unflushed.add(this.active);
    this.segments.push(Segment.create(this.fs, this.logger, this.dir, baseOffset));
    // The new files' directory entries reach disk with the next flush (see flushSegments).
    this.directoryDirty = true;
    this.logger.info({ baseOffset: String(baseOffset) }, "rolled a new segment");
  }

  private undoAppend(written: Written[], segmentCount: number): void {
    while (this.segments.length > segmentCount) this.segments.pop()!.discard();
    this.rolledOut.delete(this.active);
    for (let i = written.length - 1; i >= 0; i--) {
      const { segment, before } = written[i]!;
      if (this.segments.includes(segment)) segment.restore(before);
    }
  }

  async read(offset: bigint, maxBytes: number, upTo?: bigint): Promise<ReadResult> {
    this.ensureOpen();
    const start = this.logStartOffset;
    const end = this.logEndOffset;
    if (offset < start || offset > end) throw new OffsetOutOfRangeError(offset, start, end);
    const bound = upTo !== undefined && upTo < end ? upTo : end;
    if (offset >= bound) return emptyRead(offset);
    const segments = this.segments;
    for (let i = floorSegment(segments, offset); i < segments.length; i++) {
      const segment = segments[i]!;
      if (!segment.acquire()) throw this.unavailable(offset);
      try {
        const result = await readSegment(
          segment,
          offset,
          maxBytes,
          bound,
          this.config.indexIntervalBytes,
          this.logger,
        );
        if (result !== null) return result;
      } finally {
        segment.release();
      }
    }
    return emptyRead(offset);
  }

  async offsetForTimestamp(timestampMs: number): Promise<bigint | null> {
    this.ensureOpen();
    for (const segment of this.segments) {
      if (segment.lastAppendTimeMs < timestampMs) continue;
      if (!segment.acquire()) return this.offsetForTimestamp(timestampMs); // deleted meanwhile: start over
      try {
        const found = await findTimestamp(segment, timestampMs, this.config.indexIntervalBytes, this.logger);
        if (found !== null) return found;
      } finally {
        segment.release();
      }
    }
    return null;
  }

  flush(): Promise<bigint> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.sharedFlush();
  }

  /**
   * Group commit: with no fsync running, start one; while one runs, every caller shares the single
   * fsync queued behind it (it must start after the call, to cover the caller's appends).
   */
  private sharedFlush(full = false): Promise<bigint> {
    if (full) this.fullFlushWanted = true;
    if (this.flushing === null) return this.startFlush();
    if (this.nextFlush === null) {
      const after = () => {
        this.nextFlush = null;
        return this.startFlush();
      };
      this.nextFlush = this.flushing.then(after, after);
    }
    return this.nextFlush;
  }

  private startFlush(): Promise<bigint> {
    const run = this.flushSegments().finally(() => {
      if (this.flushing === run) this.flushing = null;
    });
    this.flushing = run;
    return run;
  }

  private async flushSegments(): Promise<bigint> {
    const covered = this.logEndOffset;
    const segments = [...this.unflushed];
    const sizes = segments.map((s) => s.size);
    this.unflushed.clear();
    const directoryDirty = this.directoryDirty;
    this.directoryDirty = false;
    const full = this.fullFlushWanted;
    this.fullFlushWanted = false;
    const active = this.active;
    try {
      // The active segment's indexes wait for its roll or for close (see the header).
      await Promise.all(segments.map((s) => s.flush(!full && s === active)));
      // fsyncing a file does not make its directory entry durable: after a roll, fsync the
      // partition directory too, or a power loss could lose a whole acknowledged segment.
      if (directoryDirty) await syncDirectory(this.fs, this.dir);
    } catch (err) {
      for (const s of segments) if (this.segments.includes(s)) this.unflushed.add(s);
      if (directoryDirty) this.directoryDirty = true;
      if (full) this.fullFlushWanted = true;
      throw err;
    }
    segments.forEach((s, i) => {
      s.durableSize = Math.max(s.durableSize, Math.min(sizes[i]!, s.size));
    });
    for (const s of this.rolledOut) {
      if (s !== this.active && !this.unflushed.has(s)) {
        s.closeIndexFiles();
        this.rolledOut.delete(s);
      }
    }
    await this.advanceRecoveryPoint();
    return covered;
  }

  /**
   * After a failed flush, when the caller wants to try the disk again: every segment's bytes since
   * its last successful fsync are read back, checked (CRC, dense offsets) and written again in place
   * with its index files (Segment.rewriteUnflushed), then everything is fsynced, the partition
   * directory included. Resolves once that fsync succeeded: from then on the whole log is as durable
   * as if the failed fsync had worked. Rejects with the I/O error if the disk still fails (try again
   * later), or with CorruptBatchError if the page cache no longer holds what was written (then only
   * a restart's recovery can settle the log). The caller must not append meanwhile.
   */
  async rewriteSinceLastFlush(): Promise<number> {
    this.ensureOpen();
    let bytes = 0;
    for (const segment of this.segments) {
      if (segment.durableSize >= segment.size && !this.unflushed.has(segment)) continue;
      bytes += await segment.rewriteUnflushed();
      this.unflushed.add(segment);
    }
    this.directoryDirty = true;
    await this.sharedFlush();
    return bytes;
  }

  /**
   * After a successful flush: moves the recovery point on disk forward to the oldest segment that
   * is still unflushed or active, if that is past it. Never throws: on failure the old value (lower,
   * so still safe) stays and the next flush tries again.
   */
  private async advanceRecoveryPoint(): Promise<void> {
    let point = this.active.baseOffset;
    for (const s of this.unflushed) if (s.baseOffset < point) point = s.baseOffset;
    // No file means "scan every segment", the same as a point at or below the first segment.
    if (point <= (this.recoveryPoint ?? this.logStartOffset) || this.released) return;
    const write = writeRecoveryPoint(this.fs, this.dir, point);
    this.recoveryPointWrite = write;
    try {
      await write;
      this.recoveryPoint = point;
      this.logger.debug({ recoveryPoint: String(point) }, "recovery point moved forward");
    } catch (err) {
      this.logger.warn(
        { err, recoveryPoint: String(point), onDisk: String(this.recoveryPoint) },
        "could not write the recovery point; the next flush retries (recovery scans more meanwhile)",
      );
    } finally {
      this.recoveryPointWrite = null;
    }
  }

  /**
   * Applies retention. A pass deletes files one segment at a time; close() waits for the pass in
   * progress and stops it between segments, so no pass outlives its log (a topic deleted and
   * recreated under the same name must never lose files to the old log's pass).
   */
  applyRetention(): Promise<number> {
    this.ensureOpen();
    if (this.retention !== null) return this.retention;
    const pass = this.runRetention().finally(() => {
      this.retention = null;
    });
    this.retention = pass;
    return pass;
  }

  private async runRetention(): Promise<number> {
    const now = this.clock.now();
    if (activeSegmentExpired(this.active, now, this.config)) {
      const previous = this.active;
      const sealed: Written[] = [];
      this.sealActive(sealed);
      if (sealed.length > 0) this.unflushed.add(previous);
      this.roll(this.logEndOffset);
      // Not inside an append: if a flush already covered it, nothing will write its indexes again.
      if (!this.unflushed.has(previous)) {
        previous.closeIndexFiles();
        this.rolledOut.delete(previous);
      }
    }
    const count = segmentsToDelete(this.segments, now, this.config);
    if (count === 0) return 0;
    const doomed = this.segments.slice(0, count);
    this.segments = this.segments.slice(count);
    for (const s of doomed) {
      this.unflushed.delete(s);
      this.rolledOut.delete(s);
    }
    this.logger.info(
      { segments: count, logStartOffset: String(this.logStartOffset) },
      "retention deleted old segments",
    );
    await deleteSegments(doomed, this.logger, () => this.closed);
    return count;
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.closing = this.shutDown(true);
    }
    return this.closing;
  }

  async destroy(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.closing = this.shutDown(false);
    }
    await this.closing.catch((err) => this.logger.warn({ err }, "error closing a log being destroyed"));
    await this.fs.rm(this.dir);
  }

  private async shutDown(flush: boolean): Promise<void> {
    let error: unknown = null;
    // `closed` is already set, so a running retention pass stops after its current segment.
    await this.retention?.catch(() => {});
    if (flush) {
      try {
        const sealed: Written[] = [];
        this.sealActive(sealed);
        for (const w of sealed) this.unflushed.add(w.segment);
      } catch (err) {
        error = err; // the next open rebuilds the time index
      }
      try {
        this.unflushed.add(this.active); // its indexes too: a clean open trusts them
        await this.sharedFlush(true);
        this.active.cutUncommittedTail();
      } catch (err) {
        error ??= err;
      }
    }
    // A flush still in flight (destroy does not wait for it) must not write once the files go.
    this.released = true;
    await this.recoveryPointWrite?.catch(() => {}); // advanceRecoveryPoint logs the failure
    await Promise.all(this.segments.map((s) => s.retire()));
    if (error !== null) throw error;
  }

  private ensureOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): LogClosedError {
    return new LogClosedError(`log ${this.dir}`);
  }

  /** The error for a segment retired under a reader. */
  private unavailable(offset: bigint): Error {
    if (this.closed) return this.closedError();
    return new OffsetOutOfRangeError(offset, this.logStartOffset, this.logEndOffset);
  }
}

/** Index of the last segment whose base offset is <= offset (0 if none). */
function floorSegment(segments: readonly Segment[], offset: bigint): number {
  let lo = 0;
  let hi = segments.length - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segments[mid]!.baseOffset <= offset) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Checks one input; returns its frame header's size. */
function validateInput(input: AppendInput): number {
  if (!(input.records instanceof Uint8Array)) throw new TypeError("records must be a Uint8Array");
  if (!Number.isInteger(input.recordCount) || input.recordCount < 1 || input.recordCount > 0xffffffff) {
    throw new RangeError(`record count ${input.recordCount} must be an integer in [1, 2^32)`);
  }
  if (!Number.isInteger(input.compression) || input.compression < 0 || input.compression > 127) {
    throw new RangeError(`compression ${input.compression} must be an integer in [0, 127]`);
  }
  const size = frameBytes(input.records.byteLength);
  if (size > MAX_FRAME_BYTES) throw new BatchTooLargeError(size, MAX_FRAME_BYTES);
  return frameHeaderBytes(input.records.byteLength);
}

function validateConfig(config: LogConfig): void {
  const check = (name: keyof LogConfig, min: number, max: number) => {
    const v = config[name];
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw new RangeError(`${name} ${v} must be an integer in [${min}, ${max}]`);
  };
  check("segmentBytes", 1, MAX_FRAME_BYTES);
  check("segmentMs", 1, Number.MAX_SAFE_INTEGER);
  check("retentionMs", -1, Number.MAX_SAFE_INTEGER);
  check("retentionBytes", -1, Number.MAX_SAFE_INTEGER);
  check("indexIntervalBytes", 0, MAX_FRAME_BYTES);
}
