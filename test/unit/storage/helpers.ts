/**
 * Shared helpers for storage tests: a temp-dir harness that opens logs with a manual clock, record
 * batches encoded with the generated client code, and readers that walk a log the way Fetch does.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { FetchResponse } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { type Batch, RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import { ManualClock } from "../../../server/src/clock.js";
import { silentLogger } from "../../../server/src/logger.js";
import { isFrameProblem, parseFrameHeader } from "../../../server/src/storage/batch-frame.js";
import {
  filePath,
  RECOVERY_POINT_FILE,
  type SegmentFileKind,
} from "../../../server/src/storage/file-names.js";
import { type FileSystem, nodeFileSystem } from "../../../server/src/storage/fs.js";
import { type Log, openLog } from "../../../server/src/storage/log.js";
import { type AppendInput, CompressionCode, type LogConfig } from "../../../server/src/storage/log-api.js";
import { TrackingFileSystem } from "../../helpers/tracking-fs.js";

export const DEFAULT_TEST_CONFIG: LogConfig = {
  segmentBytes: 1 << 20,
  segmentMs: 7 * 24 * 3600 * 1000,
  retentionMs: -1,
  retentionBytes: -1,
  indexIntervalBytes: 4096,
};

/** A temp directory, a manual clock, and every log opened on them (closed and removed by cleanup). */
export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), "rill-storage-"));
  readonly clock = new ManualClock();
  config: LogConfig;
  fs: FileSystem = nodeFileSystem;
  private readonly logs: Log[] = [];

  constructor(config: Partial<LogConfig> = {}) {
    this.config = { ...DEFAULT_TEST_CONFIG, ...config };
  }

  async open(options: { cleanShutdown?: boolean; config?: Partial<LogConfig> } = {}): Promise<Log> {
    const log = await openLog({
      dir: this.dir,
      config: { ...this.config, ...options.config },
      clock: this.clock,
      logger: silentLogger(),
      fs: this.fs,
      cleanShutdown: options.cleanShutdown ?? true,
    });
    this.logs.push(log);
    return log;
  }

  /** Closes `log` and opens the directory again. */
  async reopen(
    log: Log,
    options: { cleanShutdown?: boolean; config?: Partial<LogConfig> } = {},
  ): Promise<Log> {
    await log.close();
    return this.open(options);
  }

  /**
   * Closes `log` but leaves its files as they were before the close (an unclean stop right now:
   * what close adds, e.g. final time-index entries, is lost), then opens with cleanShutdown false.
   */
  async reopenAfterCrash(
    log: Log,
    options: { config?: Partial<LogConfig>; beforeOpen?: () => void } = {},
  ): Promise<Log> {
    const files = new Map(readdirSync(this.dir).map((n) => [n, readFileSync(join(this.dir, n))] as const));
    await log.close();
    for (const name of readdirSync(this.dir)) if (!files.has(name)) rmSync(join(this.dir, name));
    for (const [name, bytes] of files) writeFileSync(join(this.dir, name), bytes);
    // What the crash did to files that were not fsynced yet (torn tails and the like).
    options.beforeOpen?.();
    return this.open({ config: options.config, cleanShutdown: false });
  }

  /** The recovery point on disk (storage/recovery-point.ts), or null if the file is missing. */
  recoveryPoint(): bigint | null {
    const path = join(this.dir, RECOVERY_POINT_FILE);
    if (!existsSync(path)) return null;
    const text = readFileSync(path, "latin1");
    if (!/^[0-9]+\n$/.test(text)) throw new Error(`bad recovery-point file: ${JSON.stringify(text)}`);
    return BigInt(text.trim());
  }

  path(baseOffset: bigint, kind: SegmentFileKind): string {
    return filePath(this.dir, baseOffset, kind);
  }

  async cleanup(): Promise<void> {
    for (const log of this.logs) await log.close().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An encoded rill.v1.RecordBatch holding one record per value. */
export function recordBatch(values: readonly string[]): Uint8Array {
  return RecordBatch.encode({
    records: values.map((v) => ({
      key: Buffer.alloc(0),
      value: Buffer.from(v),
      headers: [],
      timestampMs: undefined,
    })),
  }).finish();
}

/** An uncompressed append input with `count` records named `${tag}-${i}`. */
export function batchOf(count: number, tag = "r"): AppendInput {
  const values = Array.from({ length: count }, (_, i) => `${tag}-${i}`);
  return { records: recordBatch(values), recordCount: count, compression: CompressionCode.None };
}

/** An input whose records are `size` opaque bytes (as if compressed). */
export function opaqueBatch(size: number, count = 1, fill = 0x5a): AppendInput {
  return { records: Buffer.alloc(size, fill), recordCount: count, compression: CompressionCode.Zstd };
}

/** Reads the whole log from `from` the way Fetch does, decoding every response with the generated decoder. */
export async function readAll(log: Log, from = log.logStartOffset, maxBytes = 1 << 20): Promise<Batch[]> {
  const batches: Batch[] = [];
  let next = from;
  while (next < log.logEndOffset) {
    const read = await log.read(next, maxBytes);
    if (read.batchCount === 0) throw new Error(`empty read at ${next}`);
    const decoded = FetchResponse.decode(read.data).batches;
    if (decoded.length !== read.batchCount) throw new Error("batchCount disagrees with the data");
    batches.push(...decoded);
    next = read.nextOffset;
  }
  return batches;
}

/** [baseOffset, recordCount] of every batch, for compact assertions. */
export function shape(batches: readonly Batch[]): Array<[number, number]> {
  return batches.map((b) => [Number(b.baseOffset), b.recordCount]);
}

/** The [timestamp, relativeOffset] entries of a .timeindex file. */
export function timeIndexEntries(path: string): Array<[number, number]> {
  const bytes = readFileSync(path);
  const entries: Array<[number, number]> = [];
  for (let at = 0; at + 12 <= bytes.length; at += 12)
    entries.push([Number(bytes.readBigInt64BE(at)), bytes.readUInt32BE(at + 8)]);
  return entries;
}

/** Byte positions of the frames in a .log file (parsed from the file itself). */
export function framePositions(path: string): number[] {
  const bytes = readFileSync(path);
  const positions: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    const header = parseFrameHeader(bytes, at, bytes.length);
    if (isFrameProblem(header)) break;
    positions.push(at);
    at += header.frameBytes;
  }
  return positions;
}

/** An errno-style error like the ones node:fs throws. */
export function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall, errno: -28 });
}

/**
 * node:fs with hooks: counts calls and lets a test inject a fault into the next call of a kind.
 * A writev fault may first write part of the data (a torn write), as a nearly full disk does.
 */
export class FaultyFileSystem extends TrackingFileSystem {
  readonly calls = { writev: 0, fsync: 0, ftruncate: 0, read: 0, rename: 0 };
  /** Bytes returned by reads. */
  readBytes = 0;
  /** File names of the descriptors fsynced, in call order ("" for one not opened here). */
  readonly fsynced: string[] = [];
  /** The next writev (optionally only one on a path matching `pathIncludes`) writes `partialBytes` then throws. */
  writevFault: { code: string; partialBytes: number; pathIncludes?: string; skip?: number } | null = null;
  fsyncFault: string | null = null;
  ftruncateFault: string | null = null;
  renameFault: string | null = null;
  /** Called before each async read resolves; lets a test interleave work with a read. */
  beforeReadResolves: (() => Promise<void>) | null = null;

  override writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number): number {
    this.calls.writev++;
    const fault = this.writevFault;
    if (
      fault !== null &&
      (fault.pathIncludes === undefined || this.pathOf(fd).includes(fault.pathIncludes))
    ) {
      if ((fault.skip ?? 0) > 0) {
        fault.skip!--;
      } else {
        this.writevFault = null;
        if (fault.partialBytes > 0) {
          const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
          super.writevSync(fd, [all.subarray(0, fault.partialBytes)], position);
        }
        throw errnoError(fault.code, "writev");
      }
    }
    return super.writevSync(fd, buffers, position);
  }

  override ftruncateSync(fd: number, length: number): void {
    this.calls.ftruncate++;
    if (this.ftruncateFault !== null) {
      const code = this.ftruncateFault;
      this.ftruncateFault = null;
      throw errnoError(code, "ftruncate");
    }
    super.ftruncateSync(fd, length);
  }

  override async read(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    this.calls.read++;
    const n = await super.read(fd, buffer, offset, length, position);
    this.readBytes += n;
    if (this.beforeReadResolves !== null) await this.beforeReadResolves();
    return n;
  }

  override async fsync(fd: number): Promise<void> {
    this.calls.fsync++;
    this.fsynced.push(basename(this.pathOf(fd)));
    if (this.fsyncFault !== null) {
      const code = this.fsyncFault;
      this.fsyncFault = null;
      throw errnoError(code, "fsync");
    }
    return super.fsync(fd);
  }

  override async rename(from: string, to: string): Promise<void> {
    this.calls.rename++;
    if (this.renameFault !== null) {
      const code = this.renameFault;
      this.renameFault = null;
      throw errnoError(code, "rename");
    }
    return super.rename(from, to);
  }
}
