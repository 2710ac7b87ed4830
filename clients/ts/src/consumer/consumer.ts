/**
 * The consumer: reads partitions of a topic through server-streaming Fetch calls and merges them
 * into one async iterable.
 *
 * ```ts
 * for await (const r of consumer.read({ topic: "orders", from: "earliest", follow: false })) { ... }
 * ```
 *
 * Start (`from`): "earliest" (default), "latest", an offset (bigint, applied to every chosen
 * partition) or a Date (the first record appended at or after it). A ListOffsets call first checks
 * the topic and partitions, turns "latest" and a Date into offsets, and, without `follow`, records
 * each partition's high watermark: the read ends once every partition has reached the high watermark
 * it had at start.
 *
 * Resumption: when a stream breaks with a retriable status (UNAVAILABLE, a lost connection...), the
 * partition is fetched again from the offset after the last record handed to the iterator's queue
 * (so no record is skipped or repeated), after a backoff delay. Each delay is bounded
 * (`retry.maxDelayMs`); while following, attempts are unbounded (a tail outlives broker restarts);
 * without `follow`, the usual bounded retry applies and the iterator then throws. Receiving a
 * response resets the backoff. Non-retriable errors (e.g. NOT_FOUND, OUT_OF_RANGE, an unsupported
 * compression) are thrown by the iterator after the records queued before them.
 *
 * Backpressure: decoded responses go through a bounded queue (`maxQueuedBatches`, default 16). A
 * partition's fetch loop awaits room before it pulls its next response, so grpc-js stops reading
 * (its own buffer holds at most 16 responses per stream) and HTTP/2 flow control holds the broker
 * back. Nothing buffers without a bound.
 *
 * Leaving the loop (`break`, `return()`, an exception) or aborting `signal` cancels the streams;
 * aborting ends the iteration quietly.
 *
 * The per-partition fetch loop and the bounded queue live in partition-fetcher.ts, shared with
 * group consumption (`consumer.subscribe`, group-subscription.ts).
 */
import { type Connection, unaryCall } from "../connection.js";
import { ClientClosedError, fromGrpcError, InvalidArgumentError, TopicNotFoundError } from "../errors.js";
import {
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  OffsetPosition,
  type PartitionOffsets,
} from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import type { ConsumedRecord } from "../records.js";
import { type RetryOptions, resolveRetryOptions, retry } from "../retry.js";
import { GroupSubscription, type SubscribeOptions } from "./group-subscription.js";
import { BoundedQueue, END, type FetchStart, PartitionFetcher } from "./partition-fetcher.js";

/** Where a read starts. */
export type StartPosition = "earliest" | "latest" | bigint | Date;

/** What to read. */
export interface ReadOptions {
  topic: string;
  /** Partitions to read (default: all of the topic's). */
  partitions?: readonly number[] | undefined;
  /** Where to start (default "earliest"). */
  from?: StartPosition | undefined;
  /** Keep reading at the end of the log (default true). */
  follow?: boolean | undefined;
  /** Upper bound on one Fetch response's batch bytes (default: the broker's). */
  maxBytes?: number | undefined;
  /** Aborting ends the iteration quietly and cancels the streams. */
  signal?: AbortSignal | undefined;
}

/** The records of one Fetch response of one partition. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  /** At least one record, in offset order. */
  records: ConsumedRecord[];
  /** The partition's high watermark when the broker sent them. */
  highWatermark: bigint;
  /** The partition's log start offset when the broker sent them. */
  logStartOffset: bigint;
}

/** Consumer settings; all optional. */
export interface ConsumerOptions {
  /** Default `maxBytes` of reads. */
  maxBytes?: number;
  /** Decoded responses buffered ahead of the application (default 16). */
  maxQueuedBatches?: number;
  /** Backoff for resuming broken streams and for ListOffsets (defaults from the client). */
  retry?: Partial<RetryOptions>;
  /**
   * When a resumed fetch finds its offset gone (deleted by retention): "error" (default) throws the
   * OffsetOutOfRangeError, "earliest"/"latest" jump there and log a warning.
   */
  offsetReset?: "error" | "earliest" | "latest";
}

/** What the consumer gets from its client. */
export interface ConsumerContext {
  connection: Connection;
  logger: Logger;
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
  onClose?: () => void;
}

/** How one partition's first fetch starts. */
type Start = FetchStart;

/** One `read` call: its partition loops and their shared queue. */
class ReadSession {
  readonly queue: BoundedQueue<ConsumedBatch>;
  private stopped = false;
  private readonly fetchers = new Set<PartitionFetcher>();
  private readonly stopController = new AbortController();
  private running = 0;
  private readonly log: Logger;
  private readonly retryOptions: RetryOptions;

  constructor(
    private readonly ctx: ConsumerContext,
    private readonly options: ReadOptions,
    private readonly consumerOptions: ConsumerOptions,
  ) {
    this.queue = new BoundedQueue(consumerOptions.maxQueuedBatches ?? 16);
    this.log = ctx.logger.child("consumer");
    this.retryOptions = resolveRetryOptions({ ...ctx.retry, ...consumerOptions.retry });
  }

  get signal(): AbortSignal {
    return this.stopController.signal;
  }

  /** Resolves partitions and start/end offsets, then starts one loop per partition. */
  async start(): Promise<void> {
    const { topic } = this.options;
    const follow = this.options.follow ?? true;
    const from = this.options.from ?? "earliest";
    const offsets = await this.listOffsets(from instanceof Date ? BigInt(from.getTime()) : undefined);
    if (this.stopped) return;
    for (const po of offsets) {
      const start = startOf(from, po);
      const end = follow ? undefined : po.latest;
      const first = start.$case === "offset" ? start.value : po.earliest;
      if (end !== undefined && first >= end) continue;
      this.runPartition(po.partition, start, end);
    }
    if (this.running === 0) this.queue.putControl(END);
    this.log.debug("reading", { topic, partitions: offsets.map((o) => o.partition), follow });
  }

  private async listOffsets(timestampMs: bigint | undefined): Promise<PartitionOffsets[]> {
    const { topic, partitions } = this.options;
    const { connection, requestTimeoutMs } = this.ctx;
    const request: ListOffsetsRequest = { topic, partitions: partitions ? [...partitions] : [], timestampMs };
    const res = await retry(
      () =>
        unaryCall<ListOffsetsRequest, ListOffsetsResponse>(
          (req, md, opts, cb) => connection.log.listOffsets(req, md, opts, cb),
          request,
          connection.metadata(),
          requestTimeoutMs,
        ),
      this.retryOptions,
      { signal: this.signal },
    );
    if (partitions) {
      for (const p of partitions) {
        if (!res.partitions.some((x) => x.partition === p)) {
          throw new TopicNotFoundError(`partition ${p} of topic "${topic}" does not exist`);
        }
      }
    }
    return res.partitions;
  }

  /** Starts one partition's fetch loop (see partition-fetcher.ts). */
  private runPartition(partition: number, start: Start, end: bigint | undefined): void {
    const fetcher = new PartitionFetcher({
      connection: this.ctx.connection,
      logger: this.log,
      retry: this.retryOptions,
      topic: this.options.topic,
      partition,
      start,
      end,
      maxBytes: this.options.maxBytes ?? this.consumerOptions.maxBytes ?? 0,
      offsetReset: this.consumerOptions.offsetReset ?? "error",
      deliver: (batch) => this.queue.put(batch),
    });
    this.fetchers.add(fetcher);
    this.running++;
    fetcher
      .run()
      .catch((e: unknown) => {
        if (!this.stopped) this.queue.putControl({ error: fromGrpcError(e) });
      })
      .finally(() => {
        this.fetchers.delete(fetcher);
        if (--this.running === 0 && !this.stopped) this.queue.putControl(END);
      });
  }

  /** Cancels every stream and wakes the iterator. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopController.abort();
    for (const f of this.fetchers) f.stop();
    this.fetchers.clear();
    this.queue.close();
  }
}

function startOf(from: StartPosition, po: PartitionOffsets): Start {
  if (from === "earliest") return { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST };
  if (from === "latest") return { $case: "offset", value: po.latest };
  if (from instanceof Date) return { $case: "offset", value: po.timestampOffset ?? po.latest };
  if (typeof from === "bigint") return { $case: "offset", value: from };
  throw new InvalidArgumentError(`from must be "earliest", "latest", a bigint offset or a Date`);
}

/** Reads partitions. Create it with `client.consumer(options)`. */
export class Consumer {
  private readonly sessions = new Set<ReadSession>();
  private readonly subscriptions = new Set<GroupSubscription>();
  private closed = false;

  constructor(
    private readonly ctx: ConsumerContext,
    private readonly options: ConsumerOptions = {},
  ) {
    const q = options.maxQueuedBatches;
    if (q !== undefined && !(Number.isInteger(q) && q >= 1)) {
      throw new InvalidArgumentError(`maxQueuedBatches must be a positive integer, got ${q}`);
    }
    resolveRetryOptions({ ...ctx.retry, ...options.retry });
  }

  /** Every record of the chosen partitions, one at a time (see the file header). */
  async *read(options: ReadOptions): AsyncGenerator<ConsumedRecord, void, undefined> {
    for await (const batch of this.readBatches(options)) {
      for (const r of batch.records) yield r;
    }
  }

  /**
   * The same records as {@link read}, a Fetch response's worth at a time: cheaper per record, and
   * what a writer that flushes once per batch wants.
   */
  async *readBatches(options: ReadOptions): AsyncGenerator<ConsumedBatch, void, undefined> {
    validateRead(options);
    if (this.closed) return;
    const session = new ReadSession(this.ctx, options, this.options);
    this.sessions.add(session);
    const onAbort = (): void => session.stop();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (options.signal?.aborted) return;
      await session.start();
      for (;;) {
        const item = await session.queue.take();
        if (item === END) return;
        if ("error" in item) throw item.error;
        yield item;
      }
    } catch (e) {
      // Stopped (signal, consumer.close()) while starting: end quietly like a stop at any other time.
      if (session.signal.aborted) return;
      throw fromGrpcError(e);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      session.stop();
      this.sessions.delete(session);
    }
  }

  /**
   * Joins a consumer group and reads its share of the topics' partitions (see
   * group-subscription.ts for the API, the membership protocol and the commit semantics).
   */
  subscribe(options: SubscribeOptions): GroupSubscription {
    if (this.closed) throw new ClientClosedError("the consumer is closed");
    const sub: GroupSubscription = new GroupSubscription(this.ctx, options, this.options, () =>
      this.subscriptions.delete(sub),
    );
    this.subscriptions.add(sub);
    return sub;
  }

  /**
   * Ends every open read (their iterators finish), closes every group subscription (commit, leave)
   * and releases the consumer.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions) s.stop();
    this.sessions.clear();
    await Promise.allSettled([...this.subscriptions].map((s) => s.close()));
    this.subscriptions.clear();
    this.ctx.onClose?.();
  }
}

function validateRead(options: ReadOptions): void {
  if (typeof options?.topic !== "string" || options.topic.length === 0) {
    throw new InvalidArgumentError("read: topic must be a non-empty string");
  }
  if (options.partitions) {
    for (const p of options.partitions) {
      if (!(Number.isInteger(p) && p >= 0)) throw new InvalidArgumentError(`read: invalid partition ${p}`);
    }
  }
  const from = options.from;
  if (
    from !== undefined &&
    from !== "earliest" &&
    from !== "latest" &&
    typeof from !== "bigint" &&
    !(from instanceof Date && !Number.isNaN(from.getTime()))
  ) {
    throw new InvalidArgumentError(
      `read: from must be "earliest", "latest", a bigint offset or a valid Date`,
    );
  }
  if (typeof from === "bigint" && from < 0n) throw new InvalidArgumentError("read: from offset must be >= 0");
  const mb = options.maxBytes;
  if (mb !== undefined && !(Number.isInteger(mb) && mb >= 0 && mb <= 0xffffffff)) {
    throw new InvalidArgumentError(`read: maxBytes must be a non-negative integer, got ${mb}`);
  }
}
