/**
 * The fetch loop of one partition and the bounded queue between such loops and an iterator, shared
 * by the plain consumer (`consumer.read`) and the group subscription (`consumer.subscribe`).
 *
 * A {@link PartitionFetcher} runs server-streaming Fetch calls for one partition and hands each
 * decoded response to its `deliver` callback, which waits for room (backpressure). Resumption: when
 * a stream breaks with a retriable status (UNAVAILABLE, a lost connection...), the partition is
 * fetched again from the offset after the last record delivered (nothing skipped or repeated),
 * after a backoff delay bounded by `retry.maxDelayMs`. While following (no `end`), attempts are
 * unbounded; with an `end`, the usual bounded retry applies and `run()` then rejects. Receiving a
 * response resets the backoff. OUT_OF_RANGE after a known offset follows `offsetReset`: "error"
 * rejects, "earliest"/"latest" jump there and log a warning. Other non-retriable errors reject.
 * `stop()` cancels the stream at once; `run()` then resolves.
 */
import type { ClientReadableStream } from "@grpc/grpc-js";
import type { Connection } from "../connection.js";
import { fromGrpcError, OffsetOutOfRangeError, type RillError } from "../errors.js";
import { type FetchRequest, OffsetPosition } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { backoffDelay, type RetryOptions, sleep } from "../retry.js";
import type { ConsumedBatch } from "./consumer.js";
import { decodeRawBatches, type RawFetchResponse } from "./fetch-decoder.js";

/** The end marker of a {@link BoundedQueue}. */
export const END = Symbol("end");

/** An error travelling through a {@link BoundedQueue}. */
export interface QueuedError {
  error: RillError;
}

/** A bounded FIFO between fetch loops (producers) and one iterator (the consumer). */
export class BoundedQueue<T extends object> {
  private readonly items: (T | QueuedError | typeof END)[] = [];
  private takers: ((item: T | QueuedError | typeof END) => void)[] = [];
  private putters: (() => void)[] = [];
  /** The errors among `items` (everything else but END is a T). */
  private readonly controls = new WeakSet<object>();
  private closed = false;

  constructor(private readonly capacity: number) {}

  /**
   * Adds an item; waits while the queue is full. Resolves false, without adding it, if the queue
   * was closed or `signal` aborted meanwhile.
   */
  async put(item: T, signal?: AbortSignal): Promise<boolean> {
    while (!this.closed && !signal?.aborted && this.items.length >= this.capacity) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        // An aborted put leaves the line, so the next take() wakes a producer still waiting.
        const onAbort = (): void => {
          const i = this.putters.indexOf(wake);
          if (i >= 0) this.putters.splice(i, 1);
          resolve();
        };
        this.putters.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    if (this.closed || signal?.aborted) return false;
    this.push(item);
    return true;
  }

  /** Adds an error or the end marker, ignoring the bound (there is at most one of each per loop). */
  putControl(item: QueuedError | typeof END): void {
    if (this.closed) return;
    if (item !== END) this.controls.add(item);
    this.push(item);
  }

  private push(item: T | QueuedError | typeof END): void {
    const taker = this.takers.shift();
    if (taker) taker(item);
    else this.items.push(item);
  }

  take(): Promise<T | QueuedError | typeof END> {
    if (this.items.length > 0) {
      const item = this.items.shift()!;
      const putter = this.putters.shift();
      if (putter) putter();
      return Promise.resolve(item);
    }
    if (this.closed) return Promise.resolve(END);
    return new Promise((resolve) => this.takers.push(resolve));
  }

  /** Removes the queued items `drop` picks (errors and the end marker stay); returns how many. */
  drop(drop: (item: T) => boolean): number {
    let kept = 0;
    const before = this.items.length;
    for (const item of this.items) {
      if (item !== END && !this.controls.has(item) && drop(item as T)) continue;
      this.items[kept++] = item;
    }
    this.items.length = kept;
    // Room was made: let every waiting producer look again (each re-checks the bound).
    if (kept < before) for (const p of this.putters.splice(0)) p();
    return before - kept;
  }

  /** Queued items. */
  get size(): number {
    return this.items.length;
  }

  /** Wakes everyone: takers get END, putters give up. */
  close(): void {
    this.closed = true;
    this.items.length = 0;
    for (const t of this.takers.splice(0)) t(END);
    for (const p of this.putters.splice(0)) p();
  }
}

/** How a partition's first fetch starts. */
export type FetchStart = { $case: "offset"; value: bigint } | { $case: "position"; value: OffsetPosition };

/** What one {@link PartitionFetcher} reads and where its batches go. */
export interface PartitionFetchOptions {
  connection: Connection;
  logger: Logger;
  retry: RetryOptions;
  topic: string;
  partition: number;
  start: FetchStart;
  /** Stop before this offset (a non-following read); undefined follows forever. */
  end?: bigint | undefined;
  /** Upper bound on one Fetch response's batch bytes (0: the broker's). */
  maxBytes: number;
  /** What OUT_OF_RANGE after a known offset does (see the file header). */
  offsetReset: "error" | "earliest" | "latest";
  /** Hands a batch on, waiting for room; resolves false to stop the loop. */
  deliver: (batch: ConsumedBatch) => Promise<boolean>;
}

/** Fetches one partition until done (non-follow), stopped, or failed. */
export class PartitionFetcher {
  private stopped = false;
  private readonly controller = new AbortController();
  private call: ClientReadableStream<RawFetchResponse> | undefined;
  /** Offset of the next record to hand out, once known. */
  private next: bigint | undefined;

  constructor(private readonly options: PartitionFetchOptions) {
    this.next = options.start.$case === "offset" ? options.start.value : undefined;
  }

  /** Aborted by {@link stop}. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The offset after the last record delivered (or the start offset), once known. */
  get position(): bigint | undefined {
    return this.next;
  }

  /** Resolves when the end is reached or the fetcher is stopped; rejects with a non-retriable error. */
  async run(): Promise<void> {
    const { topic, partition, end, connection, retry } = this.options;
    const follow = end === undefined;
    let start: FetchStart = this.options.start;
    let failures = 0;
    try {
      while (!this.stopped) {
        const next = this.next;
        if (end !== undefined && next !== undefined && next >= end) return;
        const request: FetchRequest = {
          topic,
          partition,
          start: next !== undefined ? { $case: "offset", value: next } : start,
          maxBytes: this.options.maxBytes,
          follow,
        };
        const call = connection.rawFetch.fetch(request, connection.metadata());
        // A status error can arrive after the iterator let go of the stream; never let it go unhandled.
        call.on("error", () => {});
        this.call = call;
        try {
          for await (const response of call as AsyncIterable<RawFetchResponse>) {
            failures = 0;
            if (this.stopped) return;
            if (response.batches.length === 0) continue; // heartbeat
            let records = decodeRawBatches(response.batches, topic, partition, this.next ?? 0n);
            if (end !== undefined && records.length > 0 && records[records.length - 1]!.offset >= end) {
              records = records.filter((r) => r.offset < end);
            }
            if (records.length === 0) {
              if (end !== undefined && this.next !== undefined && this.next >= end) return;
              continue;
            }
            this.next = records[records.length - 1]!.offset + 1n;
            const ok = await this.options.deliver({
              topic,
              partition,
              records,
              highWatermark: response.highWatermark,
              logStartOffset: response.logStartOffset,
            });
            if (!ok || this.stopped) return;
            if (end !== undefined && this.next >= end) return;
          }
          // A clean end: without follow the broker stopped at its high watermark.
          if (!follow) return;
          failures++;
          await sleep(backoffDelay(failures, retry), this.signal);
        } catch (e) {
          if (this.stopped) return;
          const err = fromGrpcError(e);
          if (err instanceof OffsetOutOfRangeError && this.next !== undefined && this.reset(err)) {
            start = {
              $case: "position",
              value:
                this.options.offsetReset === "latest"
                  ? OffsetPosition.OFFSET_POSITION_LATEST
                  : OffsetPosition.OFFSET_POSITION_EARLIEST,
            };
            this.next = undefined;
            continue;
          }
          failures++;
          if (!err.retriable || (!follow && failures >= retry.maxAttempts)) throw err;
          const delay = backoffDelay(failures, retry);
          this.options.logger.warn("fetch stream broke, resuming", {
            topic,
            partition,
            offset: this.next?.toString(),
            attempt: failures,
            delayMs: delay,
            error: err.message,
            code: err.codeName,
          });
          await sleep(delay, this.signal);
        } finally {
          call.cancel();
          if (this.call === call) this.call = undefined;
        }
      }
    } catch (e) {
      if (this.stopped) return;
      throw fromGrpcError(e);
    }
  }

  /** Whether to jump elsewhere after OUT_OF_RANGE (logged as dropped data). */
  private reset(err: RillError): boolean {
    const policy = this.options.offsetReset;
    if (policy === "error") return false;
    this.options.logger.warn("offset out of range, resetting", {
      topic: this.options.topic,
      partition: this.options.partition,
      offset: this.next?.toString(),
      to: policy,
      error: err.message,
    });
    return true;
  }

  /** Cancels the stream and ends the loop. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.controller.abort();
    this.call?.cancel();
    this.call = undefined;
  }
}
