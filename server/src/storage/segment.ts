/**
 * One segment of a partition's log: a .log file of frames plus its two sparse indexes.
 *
 *   <base>.log        frames (batch-frame.ts), back to back from position 0; `size` bytes of it are
 *                     committed. Bytes past `size` (a write that failed half-way and could not be
 *                     cut off) are never read and are overwritten by the next append.
 *   <base>.index      offset-index.ts      <base>.timeindex   time-index.ts
 *
 * Invariants: the batches of the segment have dense offsets from `baseOffset` to `nextOffset`
 * (exclusive); `size`, `nextOffset`, the newest append time and the in-memory indexes change
 * together, synchronously, and only after the bytes are in the page cache, so an async reader that
 * captures `size` never sees a partial frame. Every write is positional (at `size`), never O_APPEND.
 *
 * Index entries follow index-rule.ts: both indexes are sparse, and the exact newest append time is
 * kept in memory (`lastAppendTimeMs`). sealTimeIndex() adds the final time entry (the log calls it
 * on roll and on close), so the time index of a non-active segment, and of every segment after a
 * clean close, ends with the newest append time; open() takes it from there, and recovery
 * (takeNewestTime) from its scan.
 *
 * Who may call what: append/restore/roll work is synchronous and done only by the owning log's
 * append path (one partition = one event loop). Reads are async and bracket their file access with
 * acquire()/release(); retire() closes the descriptors only once no read or fsync holds the
 * segment, so retention can delete a segment while a read of it is in flight.
 *
 * Descriptors: the .log descriptor stays open for the segment's life (reads need it). The index
 * descriptors are open while the segment is active or has index bytes not yet fsynced; afterwards
 * the indexes live in memory only.
 */
import type { Logger } from "../logger.js";
import { isFrameProblem, parseFrameHeader, verifyFrameCrc } from "./batch-frame.js";
import { CorruptBatchError } from "./errors.js";
import { DELETED_SUFFIX, filePath } from "./file-names.js";
import { type FileSystem, OPEN_READ_WRITE, OPEN_TRUNCATE, readFully, writeFully } from "./fs.js";
import { addFinalTimeEntry, indexBatch, type NewestTime, newestTimeOf, noNewestTime } from "./index-rule.js";
import { OffsetIndex } from "./offset-index.js";
import { RecentFrames } from "./recent-frames.js";
import { TimeIndex } from "./time-index.js";

/** A frame ready to be written: its header (batch-frame.ts) and the producer's records. */
export interface PendingFrame {
  header: Uint8Array;
  records: Uint8Array;
  baseOffset: bigint;
  recordCount: number;
}

/** What a failed multi-segment append restores. */
export interface SegmentState {
  size: number;
  nextOffset: bigint;
  offsetEntries: number;
  timeEntries: number;
  newest: NewestTime;
}

export class Segment {
  readonly logPath: string;
  readonly indexPath: string;
  readonly timeIndexPath: string;
  /** Committed bytes of the .log file. */
  size: number;
  /** The offset after the segment's last batch (= baseOffset when empty). */
  nextOffset: bigint;
  /**
   * Bytes of the .log a successful fsync covered (the log sets it after each flush). After a failed
   * fsync, [durableSize, size) is of unknown durability: rewriteUnflushed() writes it again.
   */
  durableSize = 0;
  /** Opening found bit rot in it and kept it in place (recovery.ts walkPastDamage). */
  damaged = false;
  offsetIndex = new OffsetIndex();
  timeIndex = new TimeIndex();

  private newest = noNewestTime();
  /** Where the latest appends start (recent-frames.ts); null until the first append, and once rolled and flushed. */
  recentFrames: RecentFrames | null = null;
  private indexFd = -1;
  private timeIndexFd = -1;
  private refs = 0;
  private retiring: Promise<void> | null = null;
  private onIdle: (() => void) | null = null;
  private fdsClosed = false;

  private constructor(
    private readonly fs: FileSystem,
    private readonly logger: Logger,
    dir: string,
    readonly baseOffset: bigint,
    private readonly logFd: number,
    size: number,
  ) {
    this.logPath = filePath(dir, baseOffset, "log");
    this.indexPath = filePath(dir, baseOffset, "index");
    this.timeIndexPath = filePath(dir, baseOffset, "timeindex");
    this.size = size;
    this.nextOffset = baseOffset;
  }

  /** Creates an empty segment (discarding any leftover files of that name). Synchronous: used on roll. */
  static create(fs: FileSystem, logger: Logger, dir: string, baseOffset: bigint): Segment {
    const logFd = fs.openSync(filePath(dir, baseOffset, "log"), OPEN_TRUNCATE);
    const segment = new Segment(fs, logger, dir, baseOffset, logFd, 0);
    try {
      segment.indexFd = fs.openSync(segment.indexPath, OPEN_TRUNCATE);
      segment.timeIndexFd = fs.openSync(segment.timeIndexPath, OPEN_TRUNCATE);
    } catch (err) {
      segment.discard();
      throw err;
    }
    return segment;
  }

  /**
   * Opens an existing segment and loads its index files (creating empty ones if missing). The
   * indexes are not checked here (recovery.ts does it); `problems` holds decoding problems.
   */
  static async open(
    fs: FileSystem,
    logger: Logger,
    dir: string,
    baseOffset: bigint,
  ): Promise<{ segment: Segment; offsetIndexProblem: string | null; timeIndexProblem: string | null }> {
    const logFd = fs.openSync(filePath(dir, baseOffset, "log"), OPEN_READ_WRITE);
    const segment = new Segment(fs, logger, dir, baseOffset, logFd, fs.fstatSync(logFd).size);
    segment.durableSize = segment.size; // the log lowers it for segments it must fsync again
    try {
      segment.indexFd = fs.openSync(segment.indexPath, OPEN_READ_WRITE);
      segment.timeIndexFd = fs.openSync(segment.timeIndexPath, OPEN_READ_WRITE);
      const offsets = OffsetIndex.decode(await readWhole(fs, segment.indexFd));
      const times = TimeIndex.decode(await readWhole(fs, segment.timeIndexFd));
      segment.offsetIndex = offsets.index;
      segment.timeIndex = times.index;
      segment.newest = newestTimeOf(times.index);
      return { segment, offsetIndexProblem: offsets.problem, timeIndexProblem: times.problem };
    } catch (err) {
      segment.closeFds();
      throw err;
    }
  }

  /** The newest append time in the segment (exact), or -1 if empty. */
  get lastAppendTimeMs(): number {
    return this.newest.timeMs;
  }

  /** The oldest append time in the segment, or -1 if empty. */
  get firstAppendTimeMs(): number {
    return this.timeIndex.firstTimestamp;
  }

  snapshot(): SegmentState {
    return {
      size: this.size,
      nextOffset: this.nextOffset,
      offsetEntries: this.offsetIndex.entryCount,
      timeEntries: this.timeIndex.entryCount,
      newest: { ...this.newest },
    };
  }

  /** Sets the newest append time found by a recovery scan (which walked every frame). */
  takeNewestTime(newest: NewestTime): void {
    this.newest = { ...newest };
  }

  /**
   * Writes `frames` (one vectored write) and their index entries at the end of the segment. On any
   * error, cuts the files back, restores the in-memory state and rethrows. Returns the state before
   * the write, for a caller that must undo it later. Synchronous.
   */
  appendFrames(
    frames: readonly PendingFrame[],
    appendTimeMs: number,
    indexIntervalBytes: number,
  ): SegmentState {
    if (this.indexFd < 0 || this.timeIndexFd < 0) throw new Error(`segment ${this.logPath} is not writable`);
    const before = this.snapshot();
    const buffers: Uint8Array[] = [];
    let position = this.size;
    const indexes = { offsetIndex: this.offsetIndex, timeIndex: this.timeIndex, newest: this.newest };
    this.recentFrames ??= new RecentFrames();
    for (const f of frames) {
      buffers.push(f.header, f.records);
      const relative = Number(f.baseOffset - this.baseOffset);
      indexBatch(indexes, indexIntervalBytes, relative, position, appendTimeMs);
      this.recentFrames.add(relative, position); // dropped by restore() if the write fails
      position += f.header.byteLength + f.records.byteLength;
    }
    try {
      writeFully(this.fs, this.logFd, buffers, before.size);
      if (this.offsetIndex.entryCount > before.offsetEntries) {
        const at = before.offsetEntries * OffsetIndex.ENTRY_BYTES;
        writeFully(this.fs, this.indexFd, [this.offsetIndex.encode(before.offsetEntries)], at);
      }
      this.writeTimeEntries(before.timeEntries);
    } catch (err) {
      this.restore(before);
      throw err;
    }
    const last = frames[frames.length - 1]!;
    this.size = position;
    this.nextOffset = last.baseOffset + BigInt(last.recordCount);
    return before;
  }

  /**
   * Adds the final time entry (index-rule.ts) if the time index lacks it, in memory and on disk.
   * Returns the state before, for a caller that must undo it later, or null if nothing was needed.
   * On error, restores the state and rethrows. Synchronous; needs the index descriptors.
   */
  sealTimeIndex(): SegmentState | null {
    const before = this.snapshot();
    if (!addFinalTimeEntry(this.timeIndex, this.newest)) return null;
    try {
      if (this.timeIndexFd < 0) throw new Error(`segment ${this.logPath} is not writable`);
      this.writeTimeEntries(before.timeEntries);
    } catch (err) {
      this.restore(before);
      throw err;
    }
    return before;
  }

  private writeTimeEntries(from: number): void {
    if (this.timeIndex.entryCount > from) {
      const at = from * TimeIndex.ENTRY_BYTES;
      writeFully(this.fs, this.timeIndexFd, [this.timeIndex.encode(from)], at);
    }
  }

  /**
   * Puts the segment back in `state`: in memory always, on disk as far as the file system lets us
   * (a failed cut is logged; the bytes past `size` are then overwritten by the next append, and an
   * unclean restart's recovery scan would cut them).
   */
  restore(state: SegmentState): void {
    this.size = state.size;
    this.durableSize = Math.min(this.durableSize, state.size);
    this.nextOffset = state.nextOffset;
    this.newest = { ...state.newest };
    this.offsetIndex.truncateTo(state.offsetEntries);
    this.timeIndex.truncateTo(state.timeEntries);
    this.recentFrames?.truncate(state.size);
    this.cutFile(this.logFd, state.size, this.logPath);
    if (this.indexFd >= 0)
      this.cutFile(this.indexFd, state.offsetEntries * OffsetIndex.ENTRY_BYTES, this.indexPath);
    if (this.timeIndexFd >= 0) {
      this.cutFile(this.timeIndexFd, state.timeEntries * TimeIndex.ENTRY_BYTES, this.timeIndexPath);
    }
  }

  private cutFile(fd: number, length: number, path: string): void {
    try {
      this.fs.ftruncateSync(fd, length);
    } catch (err) {
      this.logger.error({ err, file: path, length }, "could not cut file back after a failed write");
    }
  }

  /** Cuts the .log to `bytes` (recovery). The caller fixes the indexes. */
  truncateLog(bytes: number): void {
    this.fs.ftruncateSync(this.logFd, bytes);
    this.recentFrames?.truncate(bytes);
    this.size = bytes;
    this.durableSize = Math.min(this.durableSize, bytes);
  }

  /**
   * Replaces both indexes, in memory and on disk (recovery rebuilds; the caller then sets the newest
   * time with takeNewestTime). Needs the index descriptors.
   */
  replaceIndexes(offsetIndex: OffsetIndex | null, timeIndex: TimeIndex | null): void {
    if (offsetIndex !== null) {
      this.fs.ftruncateSync(this.indexFd, 0);
      writeFully(this.fs, this.indexFd, [offsetIndex.encode()], 0);
      this.offsetIndex = offsetIndex;
    }
    if (timeIndex !== null) {
      this.fs.ftruncateSync(this.timeIndexFd, 0);
      writeFully(this.fs, this.timeIndexFd, [timeIndex.encode()], 0);
      this.timeIndex = timeIndex;
    }
  }

  /** Whether the .log on disk is longer than the committed size (a failed cut-back). */
  hasUncommittedTail(): boolean {
    return this.fs.fstatSync(this.logFd).size > this.size;
  }

  /** Cuts any uncommitted tail off the .log (on close). */
  cutUncommittedTail(): void {
    if (this.hasUncommittedTail()) this.fs.ftruncateSync(this.logFd, this.size);
  }

  /** Reads up to `length` committed or uncommitted bytes at `position` (fewer only at end of file). Hold a ref. */
  read(position: number, length: number): Promise<Buffer> {
    return readFully(this.fs, this.logFd, position, length);
  }

  /**
   * fsyncs the .log and any open index file; only the .log when `logOnly` (the active segment's
   * indexes are rebuilt from its .log by an unclean open, see Log.flushSegments).
   */
  async flush(logOnly = false): Promise<void> {
    if (!this.acquire()) return;
    try {
      const all = logOnly ? [this.logFd] : [this.logFd, this.indexFd, this.timeIndexFd];
      const fds = all.filter((fd) => fd >= 0);
      await Promise.all(fds.map((fd) => this.fs.fsync(fd)));
    } finally {
      this.release();
    }
  }

  /**
   * After a failed fsync (the kernel may have dropped the dirty pages, so a later fsync proves
   * nothing about them): reads back the bytes written since the last successful fsync,
   * [durableSize, size), checks every frame in them (framing, CRC, offsets dense up to nextOffset),
   * and writes them again in place — with the whole index files, if open — so the next fsync covers
   * them for real. Throws CorruptBatchError if what the file returns is not what was written (the
   * pages are gone): then only a restart's recovery can settle the log. Returns the bytes rewritten.
   * The caller makes sure no append runs meanwhile (the partition is offline for writes).
   */
  async rewriteUnflushed(): Promise<number> {
    const from = this.durableSize;
    const end = this.size;
    if (!this.acquire()) return 0;
    try {
      if (end > from) {
        const bytes = await this.read(from, end - from);
        let at = 0;
        let expected: bigint | null = null;
        while (at < bytes.length) {
          const header = parseFrameHeader(bytes, at, bytes.length);
          const bad = (why: string) => new CorruptBatchError(this.logPath, from + at, why);
          if (isFrameProblem(header)) throw bad(`re-reading after a failed fsync: ${header.problem}`);
          if (!verifyFrameCrc(bytes, at, header)) throw bad("re-reading after a failed fsync: CRC mismatch");
          if (expected !== null && header.baseOffset !== expected)
            throw bad(
              `re-reading after a failed fsync: base offset ${header.baseOffset}, expected ${expected}`,
            );
          expected = header.baseOffset + BigInt(header.recordCount);
          at += header.frameBytes;
        }
        if (expected !== this.nextOffset)
          throw new CorruptBatchError(
            this.logPath,
            end,
            "re-reading after a failed fsync: the log ends early",
          );
        writeFully(this.fs, this.logFd, [bytes], from);
      }
      if (this.indexFd >= 0) writeFully(this.fs, this.indexFd, [this.offsetIndex.encode()], 0);
      if (this.timeIndexFd >= 0) writeFully(this.fs, this.timeIndexFd, [this.timeIndex.encode()], 0);
      return end - from;
    } finally {
      this.release();
    }
  }

  /** Closes the index descriptors; the indexes stay in memory. For segments no longer appended to. */
  closeIndexFiles(): void {
    for (const fd of [this.indexFd, this.timeIndexFd]) {
      if (fd >= 0) this.closeQuietly(fd);
    }
    this.indexFd = -1;
    this.timeIndexFd = -1;
    this.recentFrames = null; // a rolled segment is rarely read at its very end again
  }

  /** Opens the index descriptors again, for a closed segment that becomes the active one (recovery). */
  openIndexFiles(): void {
    if (this.indexFd < 0) this.indexFd = this.fs.openSync(this.indexPath, OPEN_READ_WRITE);
    if (this.timeIndexFd < 0) this.timeIndexFd = this.fs.openSync(this.timeIndexPath, OPEN_READ_WRITE);
  }

  /** Takes a reference for a read or fsync; false once the segment is retired. */
  acquire(): boolean {
    if (this.retiring !== null) return false;
    this.refs++;
    return true;
  }

  release(): void {
    this.refs--;
    if (this.refs === 0 && this.onIdle !== null) this.onIdle();
  }

  /** No new references; closes every descriptor once the in-flight ones are released. */
  retire(): Promise<void> {
    if (this.retiring === null) {
      this.retiring =
        this.refs === 0
          ? Promise.resolve(this.closeFds())
          : new Promise<void>((resolve) => {
              this.onIdle = () => {
                this.closeFds();
                resolve();
              };
            });
    }
    return this.retiring;
  }

  /** Renames the files to `.deleted` (so a crash mid-delete is recognisable), then unlinks them. */
  async deleteFiles(): Promise<void> {
    const paths = [this.logPath, this.indexPath, this.timeIndexPath];
    for (const p of paths) await ignoreMissing(this.fs.rename(p, p + DELETED_SUFFIX));
    for (const p of paths) await ignoreMissing(this.fs.unlink(p + DELETED_SUFFIX));
  }

  /** Closes and unlinks a segment created by an append that failed. Synchronous; best effort. */
  discard(): void {
    this.retiring = Promise.resolve();
    this.closeFds();
    for (const p of [this.logPath, this.indexPath, this.timeIndexPath]) {
      try {
        this.fs.unlinkSync(p);
      } catch (err) {
        this.logger.warn({ err, file: p }, "could not remove the file of a discarded segment");
      }
    }
  }

  private closeFds(): void {
    if (this.fdsClosed) return;
    this.fdsClosed = true;
    this.closeIndexFiles();
    this.closeQuietly(this.logFd);
  }

  private closeQuietly(fd: number): void {
    try {
      this.fs.closeSync(fd);
    } catch (err) {
      this.logger.warn({ err, file: this.logPath }, "could not close a segment file");
    }
  }
}

async function readWhole(fs: FileSystem, fd: number): Promise<Buffer> {
  return readFully(fs, fd, 0, fs.fstatSync(fd).size);
}

async function ignoreMissing(op: Promise<void>): Promise<void> {
  try {
    await op;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
