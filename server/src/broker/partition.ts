/**
 * One partition of a topic: its log plus what the broker layers on top of it.
 *
 * - High watermark: the offset the next record will get. In single-node mode every record
 *   written to the page cache is readable, so the high watermark is the log end offset; with
 *   replication it will become the replicated offset (DESIGN §1).
 * - Tail waiters: following Fetch streams park here and are woken by the next append, without
 *   polling.
 * - Flush policy and group commit (DESIGN §3.4): appends go to the page cache at once; an fsync
 *   runs when flush.messages records are unflushed, flush.ms after the first unflushed append, or
 *   when a FSYNCED produce asks. Requests that arrive while an fsync runs share the next one, so
 *   concurrent FSYNCED producers pay one fsync per round, not one each.
 * - Disk faults: a failed write (ENOSPC, EIO) is undone by the log and fails only that append. A
 *   failed fsync takes the partition offline for writes (see startFlush): after an fsync error the
 *   kernel may have dropped the dirty pages, so a later fsync that succeeds proves nothing. Every
 *   `storage.fault.retry.ms` a probe reads back what was written since the last good fsync, checks
 *   its CRCs, writes it again and fsyncs (PartitionLog.rewriteSinceLastFlush); when that succeeds the
 *   log is durable again and writes resume. Records appended between the last good fsync and the
 *   failure stay readable throughout and are durable once the probe succeeds; FSYNCED produces
 *   waiting on the failed fsync were refused, so their producers resend (at-least-once). If the
 *   data cannot be read back intact, the partition stays offline until a restart recovers the log.
 *
 * Everything here runs on the event loop; append is synchronous, so batches of one partition are
 * ordered by the order their requests were handled.
 */

import type { TopicSettings } from "../config.js";
import type { Logger } from "../logger.js";
import type { AppendInput, AppendResult, PartitionLog } from "../storage/log-api.js";
import { PartitionOfflineError } from "./errors.js";

type Waiter = () => void;

/**
 * Lets an observer (metrics/) watch partitions without the broker knowing who it is: one object
 * shared by every partition of a registry (TopicRegistry.hooks), read at each event.
 */
export interface PartitionHooks {
  /** An fsync of the partition's log settled after `seconds` (ok false: it failed). */
  flushed?: ((partition: Partition, seconds: number, ok: boolean) => void) | undefined;
}

export class Partition {
  private readonly waiters = new Set<Waiter>();
  private unflushedRecords = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private nextFlush: Promise<void> | undefined;
  private closed = false;
  /** The fsync error that took this partition offline for writes, if any. */
  private failedSync: unknown;
  /** The next probe of the disk while offline (see probe()). */
  private probeTimer: NodeJS.Timeout | undefined;
  /** The read-back found the data gone: no probe can help, only a restart's recovery. */
  private needsRestart = false;
  /** The probe in progress, if any (close waits for it). */
  private probing: Promise<void> | undefined;

  constructor(
    readonly topic: string,
    readonly index: number,
    readonly log: PartitionLog,
    private settings: TopicSettings,
    private readonly logger: Logger,
    private readonly hooks: PartitionHooks = {},
    /** How long to wait between two probes of the disk after a failed fsync (storage.fault.retry.ms). */
    private readonly faultRetryMs = 5000,
  ) {}

  get highWatermark(): bigint {
    return this.log.logEndOffset;
  }

  get logStartOffset(): bigint {
    return this.log.logStartOffset;
  }

  get maxBatchBytes(): number {
    return this.settings.maxBatchBytes;
  }

  get defaultDurability(): TopicSettings["durability"] {
    return this.settings.durability;
  }

  /** Appends synchronously, wakes tail waiters and applies the flush policy. */
  append(inputs: readonly AppendInput[]): AppendResult[] {
    if (this.failedSync) throw this.offlineError();
    const results = this.log.append(inputs);
    let records = 0;
    for (const r of results) records += r.recordCount;
    this.unflushedRecords += records;
    this.wakeWaiters();
    this.applyFlushPolicy();
    return results;
  }

  /**
   * Resolves once an fsync that started after this call has completed, i.e. every append made
   * before the call is on disk. Shares fsyncs between concurrent callers (group commit).
   */
  sync(): Promise<void> {
    if (this.failedSync) return Promise.reject(this.offlineError());
    if (!this.flushing) return this.startFlush();
    if (!this.nextFlush) {
      const next = this.flushing.then(
        () => this.startFlushAfterCurrent(),
        () => this.startFlushAfterCurrent(),
      );
      // Callers attach their own handlers; this one keeps a failure nobody awaits yet from
      // becoming an unhandled rejection (which would end the process).
      next.catch(() => {});
      this.nextFlush = next;
    }
    return this.nextFlush;
  }

  private startFlushAfterCurrent(): Promise<void> {
    this.nextFlush = undefined;
    return this.startFlush();
  }

  private startFlush(): Promise<void> {
    if (this.failedSync) return Promise.reject(this.offlineError());
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const covered = this.unflushedRecords;
    this.unflushedRecords = 0;
    const started = performance.now();
    const flushing = this.log.flush().then(
      () => {
        const ms = performance.now() - started;
        this.hooks.flushed?.(this, ms / 1000, true);
        this.logger.debug({ ms, records: covered }, "fsync");
      },
      (err: unknown) => {
        this.hooks.flushed?.(this, (performance.now() - started) / 1000, false);
        // After a failed fsync the kernel may have dropped the dirty pages, so a later fsync that
        // "succeeds" would prove nothing: take the partition offline for writes (as Kafka marks a
        // log dir offline) and let probe() rewrite and fsync the unproven bytes. Reads go on.
        if (this.failedSync === undefined) {
          this.failedSync = err;
          this.logger.error(
            { err, retryMs: this.faultRetryMs },
            "fsync failed: partition offline for writes until a probe rewrites and fsyncs the unflushed data",
          );
          this.scheduleProbe();
        }
        throw this.offlineError();
      },
    );
    this.flushing = flushing;
    flushing.catch(() => {}); // see sync(): callers handle the failure
    const clear = () => {
      if (this.flushing === flushing) this.flushing = undefined;
    };
    flushing.then(clear, clear);
    return flushing;
  }

  private offlineError(): PartitionOfflineError {
    return new PartitionOfflineError(this.topic, this.index, this.failedSync, {
      retryMs: this.needsRestart ? null : this.faultRetryMs,
    });
  }

  private scheduleProbe(): void {
    if (this.closed || this.needsRestart || this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      const run = this.probe().finally(() => {
        if (this.probing === run) this.probing = undefined;
      });
      this.probing = run;
    }, this.faultRetryMs);
    this.probeTimer.unref();
  }

  /**
   * One try at leaving the offline state: rewrite and fsync what the failed fsync may have lost.
   * Success: writes resume. An I/O error: try again after faultRetryMs. The data no longer reads
   * back intact: stay offline until a restart (recovery cuts the log at the damage).
   */
  private async probe(): Promise<void> {
    if (this.closed || this.failedSync === undefined) return;
    await this.flushing?.catch(() => {});
    try {
      const bytes = await this.log.rewriteSinceLastFlush();
      if (this.closed) return;
      this.failedSync = undefined;
      this.unflushedRecords = 0;
      this.logger.warn(
        { rewrittenBytes: bytes },
        "fsync works again: unflushed data rewritten and fsynced; partition writable",
      );
    } catch (err) {
      if (this.closed) return;
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (code === undefined) {
        this.needsRestart = true;
        this.failedSync = err;
        this.logger.error(
          { err },
          "data written before the failed fsync does not read back intact: partition offline for writes until the broker restarts",
        );
        return;
      }
      this.logger.warn(
        { err: (err as Error).message, retryMs: this.faultRetryMs },
        "disk still failing: partition stays offline for writes",
      );
      this.scheduleProbe();
    }
  }

  private applyFlushPolicy(): void {
    if (this.closed || this.unflushedRecords === 0) return;
    const { flushMessages, flushMs } = this.settings;
    if (flushMessages > 0 && this.unflushedRecords >= flushMessages) {
      this.sync().catch(() => {}); // logged in startFlush; the next append or timer retries
      return;
    }
    if (flushMs >= 0 && !this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.sync().catch(() => {});
      }, flushMs);
      this.flushTimer.unref();
    }
  }

  /**
   * Resolves true when the high watermark passes `offset`, false after `timeoutMs` or when the
   * signal aborts. Never polls: the next append wakes it.
   */
  waitForData(offset: bigint, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.highWatermark > offset || this.closed) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        signal?.removeEventListener("abort", onAbort);
        resolve(value);
      };
      const waiter: Waiter = () => {
        if (this.highWatermark > offset || this.closed) done(true);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private wakeWaiters(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Applies retention; returns the number of segments deleted. */
  applyRetention(): Promise<number> {
    return this.log.applyRetention();
  }

  /** Stops the flush timer, wakes waiters, fsyncs and closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.wakeWaiters();
    await this.probing;
    await this.flushing?.catch(() => {});
    await this.log.close();
  }

  /** Closes and removes the log's files. */
  async destroy(): Promise<void> {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.wakeWaiters();
    await this.probing;
    await this.flushing?.catch(() => {});
    await this.log.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
