/**
 * Consumer-group committed offsets ("the next offset to read" per group/topic/partition), kept in
 * an internal log on the broker's own segment storage (storage/log.ts: CRC per batch, a torn tail
 * cut off after an unclean stop) and replayed into memory on open.
 *
 * Directory (<data>/groups, DESIGN §4):
 *
 *   CURRENT     "log-<n>\n" (n decimal), naming the live log; missing means "log-0". Replaced
 *               durably (temp file, fsync, rename, fsync of the directory: durable-fs.ts), so after
 *               any crash it names either the old or the new log of a compaction, both complete.
 *   log-<n>/    a storage log (segments, indexes, recovery point). Each batch holds one encoded
 *               RecordBatch of offset records, key = group id (format in offset-records.ts).
 *   log-<m>/    m != n: the leftover of an interrupted compaction; removed on open.
 *
 * Invariants:
 * - replaying the live log from its start and applying its records in order gives the in-memory
 *   state. The records of one call go in ONE batch (append is all-or-nothing) and are applied to
 *   memory only once the append succeeded; the call resolves once a log.flush() covers them
 *   (concurrent calls share fsyncs);
 * - mutations run one at a time, in call order: appends are synchronous and run at once when
 *   nothing is queued; a compaction is queued behind the appends made before it, and appends
 *   made while it runs wait and go into the new log after the switch (never lost);
 * - compaction writes the whole state into log-<n+1> (batches of <= 1000 records), fsyncs it, then
 *   switches CURRENT, then closes and removes log-<n>. It runs when the log is larger than
 *   compactAfterBytes and than twice OffsetState.snapshotBytes() (a running upper bound of a fresh
 *   snapshot's size, so checking costs nothing and a compaction never triggers the next one): the
 *   log stays within about max(compactAfterBytes, 2 × snapshot) plus one batch;
 * - a failed fsync (or a failed switch of CURRENT) takes the store offline: that call and every
 *   later mutation reject with OffsetStoreOfflineError until the broker restarts. Reads go on
 *   from memory, which may then hold entries whose fsync failed.
 */
import { dirname, join } from "node:path";
import { readSmallFile, writeFileDurably } from "../broker/durable-fs.js";
import { BrokerError, ShuttingDownError } from "../broker/errors.js";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { type FileSystem, nodeFileSystem, syncDirectory } from "../storage/fs.js";
import { type Log, openLog } from "../storage/log.js";
import type { LogConfig } from "../storage/log-api.js";
import {
  encodeValue,
  type KeyedRecord,
  MAX_OFFSET,
  type OffsetCommitInput,
  OffsetState,
  recordsOfFrames,
  type StoredOffset,
  snapshotInputs,
  toAppendInput,
} from "./offset-records.js";

export type { OffsetCommitInput, StoredOffset } from "./offset-records.js";

export interface OffsetStoreOptions {
  /** <data>/groups; created if missing. */
  dir: string;
  clock: Clock;
  logger: Logger;
  /** false after an unclean stop: the log's tail is checked and a torn one cut (log-api.ts). */
  cleanShutdown: boolean;
  /** The storage seam, passed to openLog (tests inject faults). */
  fs?: FileSystem;
  /** Compact once the log is past this size (and twice a fresh snapshot). Default 16 MiB. */
  compactAfterBytes?: number;
}

/** The store's fsync failed: it refuses writes until the broker restarts and replays the log. */
export class OffsetStoreOfflineError extends BrokerError {
  constructor(cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? String(cause);
    super(
      `the consumer-group offset store is offline for commits after a disk failure (${code}); fix the disk and restart the broker (it replays the offsets log)`,
      { cause },
    );
  }
}

const CURRENT = "CURRENT";
const CURRENT_CONTENT = /^log-(0|[1-9][0-9]{0,14})\n$/;
const LOG_DIR = /^log-(0|[1-9][0-9]*)$/;
const READ_BYTES = 1 << 20;
const LOG_CONFIG: LogConfig = {
  segmentBytes: 16 * 1024 * 1024,
  segmentMs: Number.MAX_SAFE_INTEGER,
  retentionMs: -1,
  retentionBytes: -1,
  indexIntervalBytes: 4096,
};
const noop = () => {};

export class OffsetStore {
  private readonly state = new OffsetState();
  /** The last queued step (settles, never rejects); null when nothing is queued. */
  private tail: Promise<unknown> | null = null;
  private compactionQueued = false;
  /** No compaction below this log size (compactAfterBytes, raised after a failed compaction). */
  private compactAt: number;
  /** Why the store is offline (undefined while online). */
  private failure: unknown = undefined;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly options: OffsetStoreOptions,
    private readonly fs: FileSystem,
    private readonly logger: Logger,
    private readonly compactAfterBytes: number,
    private log: Log,
    private generation: number,
  ) {
    this.compactAt = compactAfterBytes;
  }

  static async open(options: OffsetStoreOptions): Promise<OffsetStore> {
    const fs = options.fs ?? nodeFileSystem;
    const logger = options.logger.child({ component: "offset-store" });
    const compactAfterBytes = options.compactAfterBytes ?? 16 * 1024 * 1024;
    if (!Number.isSafeInteger(compactAfterBytes) || compactAfterBytes < 0)
      throw new RangeError(`compactAfterBytes ${compactAfterBytes} must be a non-negative integer`);
    await fs.mkdir(options.dir);
    const generation = await readCurrent(fs, options.dir);
    for (const name of await fs.readdir(options.dir)) {
      const match = LOG_DIR.exec(name);
      if ((match !== null && Number(match[1]) !== generation) || name === `${CURRENT}.tmp`) {
        logger.warn({ name }, "removing the leftover of an interrupted compaction");
        await fs.rm(join(options.dir, name));
      }
    }
    const log = await openStoreLog(options, fs, logger, generation);
    try {
      // The entries of groups/ and of log-<n>/ must be durable before the first commit is acked.
      await syncDirectory(fs, dirname(options.dir));
      await syncDirectory(fs, options.dir);
    } catch (err) {
      await log.close().catch(noop);
      throw err;
    }
    const store = new OffsetStore(options, fs, logger, compactAfterBytes, log, generation);
    try {
      await store.replay();
    } catch (err) {
      await log.close().catch(noop);
      throw err;
    }
    store.maybeCompact();
    return store;
  }

  commit(group: string, entries: readonly OffsetCommitInput[]): Promise<void> {
    const time = this.now();
    const records: KeyedRecord[] = [];
    for (const { topic, partition, offset, metadata } of entries) {
      if (!Number.isSafeInteger(partition) || partition < 0)
        return Promise.reject(new RangeError(`partition ${partition} must be a non-negative integer`));
      if (typeof offset !== "bigint" || offset < 0n || offset > MAX_OFFSET)
        return Promise.reject(new RangeError(`offset ${offset} must be a bigint in [0, 2^63)`));
      records.push({ group, record: { type: "commit", topic, partition, offset, metadata, time } });
    }
    return this.mutate(() => records);
  }

  deleteGroup(group: string): Promise<void> {
    const time = this.now();
    return this.mutate(() =>
      this.state.hasGroup(group) ? [{ group, record: { type: "delete-group", time } }] : [],
    );
  }

  forgetTopic(topic: string): Promise<void> {
    const time = this.now();
    return this.mutate(() =>
      this.state
        .groupsWithTopic(topic)
        .map((group) => ({ group, record: { type: "forget-topic", topic, time } })),
    );
  }

  get(group: string, topic: string, partition: number): StoredOffset | undefined {
    this.ensureOpen();
    return this.state.get(group, topic, partition);
  }

  offsets(group: string): StoredOffset[] {
    this.ensureOpen();
    return this.state.offsets(group);
  }

  groups(): string[] {
    this.ensureOpen();
    return this.state.groups();
  }

  /** Lets queued work finish, then flushes and closes the log. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.tail !== null) await this.tail;
      await this.log.close();
    })();
    return this.closing;
  }

  private now(): number {
    return Math.max(0, Math.floor(this.options.clock.now()));
  }

  private ensureOpen(): void {
    if (this.closing !== null) throw new ShuttingDownError();
  }

  /**
   * Appends the records `build` returns (called when the append runs, in call order) as one batch,
   * applies them, and resolves once they are fsynced. With no records, it only waits for an fsync
   * covering what earlier calls appended, so "resolved" always means durable.
   */
  private mutate(build: () => KeyedRecord[]): Promise<void> {
    if (this.closing !== null) return Promise.reject(new ShuttingDownError());
    // Wrapped in an object so the queue moves on after the append, not after the fsync.
    const step = () => ({ durable: this.append(build()) });
    if (this.tail === null) {
      try {
        return step().durable;
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const queued = this.tail.then(step);
    this.setTail(queued);
    return queued.then((s) => s.durable);
  }

  private append(records: KeyedRecord[]): Promise<void> {
    if (this.failure !== undefined) throw new OffsetStoreOfflineError(this.failure);
    if (records.length > 0) {
      const values = records.map((r) => ({ group: r.group, value: encodeValue(r.record) }));
      this.log.append([toAppendInput(values)]); // throws (and changes nothing) on an I/O error
      for (let i = 0; i < records.length; i++) this.state.apply(records[i]!, values[i]!.value.byteLength);
      this.maybeCompact();
    }
    return this.log.flush().then(
      () => {
        // An fsync that succeeds after one failed proves nothing (the kernel may have dropped pages).
        if (this.failure !== undefined) throw new OffsetStoreOfflineError(this.failure);
      },
      (err: unknown) => {
        if (this.failure === undefined) {
          this.failure = err;
          this.logger.error(
            { err },
            "fsync of the offsets log failed: commits refused until the broker restarts",
          );
        }
        throw new OffsetStoreOfflineError(this.failure);
      },
    );
  }

  private setTail(step: Promise<unknown>): void {
    const settled = step.then(noop, noop);
    this.tail = settled;
    void settled.then(() => {
      if (this.tail === settled) this.tail = null;
    });
  }

  private async replay(): Promise<void> {
    const skipped: string[] = [];
    let next = this.log.logStartOffset;
    while (next < this.log.logEndOffset) {
      const read = await this.log.read(next, READ_BYTES);
      if (read.batchCount === 0) {
        // The log contract rules it out; never loop forever.
        this.logger.warn({ offset: String(next) }, "empty read inside the offsets log; replay stops there");
        break;
      }
      for (const { valueBytes, ...keyed } of recordsOfFrames(read.data, skipped))
        this.state.apply(keyed, valueBytes);
      next = read.nextOffset;
    }
    if (skipped.length > 0) {
      this.logger.warn(
        { skipped: skipped.length, first: skipped.slice(0, 5) },
        "skipped offset records this broker cannot read (written by a newer version, or damaged)",
      );
    }
    const { groupCount: groups, offsetCount: offsets } = this.state;
    this.logger.info(
      { groups, offsets, bytes: this.log.sizeBytes, generation: this.generation },
      "offsets replayed",
    );
  }

  /** Queues a compaction if the log is due for one (cheap: no snapshot is built here). */
  private maybeCompact(): void {
    if (this.compactionQueued || this.failure !== undefined || this.closing !== null) return;
    const size = this.log.sizeBytes;
    if (size <= this.compactAt || size <= 2 * this.state.snapshotBytes()) return;
    this.compactionQueued = true;
    this.setTail((this.tail ?? Promise.resolve()).then(() => this.compact()));
  }

  private async compact(): Promise<void> {
    this.compactionQueued = false;
    if (this.failure !== undefined || this.closing !== null) return;
    const old = this.log;
    const n = this.generation + 1;
    const dir = join(this.options.dir, `log-${n}`);
    let next: Log | null = null;
    try {
      await this.fs.rm(dir);
      next = await openStoreLog(this.options, this.fs, this.logger, n);
      for (const input of snapshotInputs(this.state.records())) {
        next.append([input]);
        // Mutations wait behind the compaction, so the state cannot change while we yield; a
        // yield per chunk keeps a huge snapshot from stalling heartbeats and fetches.
        await new Promise(setImmediate);
      }
      await next.flush();
    } catch (err) {
      this.compactAt = old.sizeBytes + this.compactAfterBytes; // retry once it has grown again
      this.logger.warn({ err, dir }, "compacting the offsets log failed; the current log stays");
      await (next?.destroy() ?? this.fs.rm(dir)).catch(noop);
      return;
    }
    try {
      await writeFileDurably(this.fs, this.options.dir, CURRENT, `log-${n}\n`);
    } catch (err) {
      // CURRENT may name either log now: both hold every offset, and no more commits are taken.
      this.failure = err;
      this.logger.error(
        { err },
        "switching to the compacted offsets log failed: commits refused until restart",
      );
      await next.close().catch(noop);
      return;
    }
    this.log = next;
    this.generation = n;
    this.compactAt = this.compactAfterBytes;
    const before = old.sizeBytes;
    // Appends still being fsynced in the old log are in the new one too; close waits for them.
    await old
      .close()
      .catch((err: unknown) => this.logger.warn({ err }, "closing the old offsets log failed"));
    await this.fs
      .rm(old.dir)
      .catch((err: unknown) => this.logger.warn({ err }, "removing the old offsets log failed"));
    this.logger.info({ generation: n, before, after: next.sizeBytes }, "offsets log compacted");
  }
}

/** The generation CURRENT names (0 if it is missing). */
async function readCurrent(fs: FileSystem, dir: string): Promise<number> {
  const path = join(dir, CURRENT);
  let text: string;
  try {
    text = await readSmallFile(fs, path, "latin1");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
  const match = CURRENT_CONTENT.exec(text);
  if (match === null) {
    throw new Error(
      `${path} should hold "log-<n>" and a newline, not ${JSON.stringify(text.slice(0, 40))}; write the name of the newest log-<n> directory there, or remove ${dir} to forget every committed offset`,
    );
  }
  return Number(match[1]);
}

function openStoreLog(options: OffsetStoreOptions, fs: FileSystem, logger: Logger, generation: number) {
  return openLog({
    dir: join(options.dir, `log-${generation}`),
    config: LOG_CONFIG,
    clock: options.clock,
    logger,
    fs,
    cleanShutdown: options.cleanShutdown,
  });
}
