/**
 * The producer: batches records per partition and appends them through client-streaming Produce
 * calls.
 *
 * Flow: `send` normalizes records, reserves their bytes in the buffer (waiting for room if it is
 * full; a send still looking up its topic's partition count holds its bytes too, so `writable`
 * bounds it), picks every record's partition, and only then adds them to the accumulator, so a send
 * whose partitioner throws or answers a partition that does not exist appends none of its records
 * and releases its bytes. It returns a promise for the records' offsets. A batch
 * is sealed when full (`batchBytes`), after `lingerMs`, or on flush. Ready batches, possibly for many
 * partitions, go out together on one Produce stream (up to `maxStreamBytes`); at most `maxInFlight`
 * streams are open at once.
 *
 * Ordering: a partition is in at most one stream at a time, and batches of a partition leave in the
 * order they were sealed; a failed stream is retried (only its unappended batches) before that
 * partition's later batches go out. So per-partition order holds even across retries, whatever
 * `maxInFlight` is (default 1, which also keeps one stream's worth of pipelining per producer).
 *
 * Delivery: when a stream fails, the `rill-appended-batches` trailer says how many of its batches
 * were appended; those are acknowledged (their records get offset -1n: appended, offset unknown,
 * like Kafka's UNKNOWN_OFFSET) and only the rest are resent. Without the trailer (connection lost,
 * deadline) every batch of the stream is resent: at-least-once, a batch may be appended twice.
 * Retriable errors (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) are retried with backoff, bounded by
 * the retry options; a refused batch with a non-retriable status rejects the sends it holds records
 * of, and the stream's later batches are sent again at once. A send whose records span several
 * batches rejects on the first failure while its other batches may still be appended.
 *
 * Unknown topics: partition counts come from ClusterService.GetMetadata and are cached
 * (`metadataMaxAgeMs`, and dropped on NOT_FOUND or an out-of-range partition). For a topic the broker
 * does not know yet, records go to partition 0 (or the partition they name) so the broker can
 * auto-create the topic; once a batch of it is acknowledged the count is looked up again. Keyed
 * records sent before a topic exists therefore all land in partition 0: create topics first when key
 * placement matters.
 */
import { inspect } from "node:util";
import type { Connection } from "../connection.js";
import {
  ClientClosedError,
  fromGrpcError,
  InvalidArgumentError,
  RillError,
  TopicNotFoundError,
} from "../errors.js";
import { Durability, type ProduceResponse } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { type RetryOptions, resolveRetryOptions, retry } from "../retry.js";
import {
  Accumulator,
  partitionKey,
  type RecordMetadata,
  type SealedBatch,
  SendState,
} from "./accumulator.js";
import { PartitionCounts } from "./partition-counts.js";
import { DefaultPartitioner, type Partitioner } from "./partitioner.js";
import { type Prepared, type ProducerRecord, prepare } from "./producer-record.js";

export type { RecordMetadata } from "./accumulator.js";
export type { BytesLike, ProducerHeader, ProducerRecord } from "./producer-record.js";

/** How acknowledged writes must be (the topic's default when undefined). */
export type ProducerDurability = "written" | "fsynced";

/** Producer settings; all optional. */
export interface ProducerOptions {
  /** How long a batch may wait for more records before it is sent (ms, default 5). */
  lingerMs?: number;
  /** A batch is sealed when it reaches this many bytes of records (default 256 KiB). */
  batchBytes?: number;
  /** Produce streams open at once (default 1). */
  maxInFlight?: number;
  /** Encoded batch bytes sent on one Produce stream, at least one batch (default 4 MiB). */
  maxStreamBytes?: number;
  /** Records buffered and not yet acknowledged, in bytes; `send` waits above it (default 32 MiB). */
  bufferBytes?: number;
  /** When the broker acknowledges (default: the topic's setting). */
  durability?: ProducerDurability | undefined;
  /** Batch compression (default "none"). */
  compression?: "none" | "gzip";
  /** Chooses partitions for records without one (default: Kafka's murmur2 + sticky). */
  partitioner?: Partitioner;
  /** Retry policy for retriable failures (defaults from the client). */
  retry?: Partial<RetryOptions>;
  /** Deadline of one Produce stream (ms, default: the client's requestTimeoutMs). */
  requestTimeoutMs?: number;
  /** Re-read a topic's partition count after this long (ms, default 5 min). */
  metadataMaxAgeMs?: number;
}

/** What the producer gets from its client. */
export interface ProducerContext {
  connection: Connection;
  logger: Logger;
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
  /** Called once closed, so the client forgets it. */
  onClose?: () => void;
}

const DEFAULTS = {
  lingerMs: 5,
  batchBytes: 256 * 1024,
  maxInFlight: 1,
  maxStreamBytes: 4 * 1024 * 1024,
  bufferBytes: 32 * 1024 * 1024,
  metadataMaxAgeMs: 5 * 60_000,
};

const APPENDED_TRAILER = "rill-appended-batches";
interface BufferWaiter {
  bytes: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (!(Number.isFinite(v) && v >= min))
    throw new InvalidArgumentError(`${name} must be >= ${min}, got ${v}`);
  return Math.floor(v);
}

function durabilityOf(d: ProducerDurability | undefined): Durability {
  if (d === undefined) return Durability.DURABILITY_UNSPECIFIED;
  if (d === "written") return Durability.DURABILITY_WRITTEN;
  if (d === "fsynced") return Durability.DURABILITY_FSYNCED;
  throw new InvalidArgumentError(`durability must be "written" or "fsynced", got ${String(d)}`);
}

/** Outcome of one Produce stream attempt. */
interface StreamOutcome {
  response?: ProduceResponse;
  error?: RillError;
}

/** Batches records and appends them to partitions. Create it with `client.producer(options)`. */
export class Producer {
  private readonly ctx: ProducerContext;
  private readonly log: Logger;
  private readonly lingerMs: number;
  private readonly maxInFlight: number;
  private readonly maxStreamBytes: number;
  private readonly bufferBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly retryOptions: Partial<RetryOptions>;
  private readonly partitioner: Partitioner;
  private readonly counts: PartitionCounts;
  private readonly acc: Accumulator;
  /** Partition counts as used while partitioning (the accumulator's onSealed needs them). */
  private readonly usedCounts = new Map<string, number>();
  /** Topics sent to before the broker knew them: refresh their count after the next ack. */
  private readonly unknownTopics = new Set<string>();
  /** Sends not yet in the accumulator (looking up metadata, waiting for room). */
  private readonly entering = new Set<Promise<SendState | undefined>>();

  private buffered = 0;
  private readonly waiters: BufferWaiter[] = [];
  private drainWaiters: (() => void)[] = [];
  private lingerTimer: NodeJS.Timeout | undefined;
  private lingerDue = Number.POSITIVE_INFINITY;
  private inFlight = 0;
  private readonly busy = new Set<string>();
  private readonly inFlightBatches = new Set<SealedBatch>();
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(ctx: ProducerContext, options: ProducerOptions = {}) {
    this.ctx = ctx;
    this.log = ctx.logger.child("producer");
    this.lingerMs = positiveInt("lingerMs", options.lingerMs, DEFAULTS.lingerMs, 0);
    const batchBytes = positiveInt("batchBytes", options.batchBytes, DEFAULTS.batchBytes);
    this.maxInFlight = positiveInt("maxInFlight", options.maxInFlight, DEFAULTS.maxInFlight);
    this.maxStreamBytes = positiveInt("maxStreamBytes", options.maxStreamBytes, DEFAULTS.maxStreamBytes);
    this.bufferBytes = positiveInt("bufferBytes", options.bufferBytes, DEFAULTS.bufferBytes);
    this.requestTimeoutMs = positiveInt("requestTimeoutMs", options.requestTimeoutMs, ctx.requestTimeoutMs);
    const compression = options.compression ?? "none";
    if (compression !== "none" && compression !== "gzip") {
      throw new InvalidArgumentError(`compression must be "none" or "gzip", got ${String(compression)}`);
    }
    this.retryOptions = { ...ctx.retry, ...options.retry };
    resolveRetryOptions(this.retryOptions); // validate now, not on the first failure
    this.partitioner = options.partitioner ?? new DefaultPartitioner();
    this.counts = new PartitionCounts(
      { ...ctx, retry: this.retryOptions },
      positiveInt("metadataMaxAgeMs", options.metadataMaxAgeMs, DEFAULTS.metadataMaxAgeMs, 0),
    );
    this.acc = new Accumulator({
      batchBytes,
      compression,
      durability: durabilityOf(options.durability),
      onSealed: (topic, partition) => this.onSealed(topic, partition),
    });
  }

  /**
   * Sends one record or many to `topic`. Resolves, once every record is acknowledged, with
   * `{ topic, partition, offset }` per record in the order given (offset -1n: appended at an unknown
   * offset, see the file header). Waits first while the buffer is full. Rejects with a `RillError` if
   * any of its records could not be appended.
   */
  send(topic: string, records: ProducerRecord | readonly ProducerRecord[]): Promise<RecordMetadata[]> {
    if (this.closing) return Promise.reject(new ClientClosedError("the producer is closed"));
    const entry = this.enter(topic, records);
    this.entering.add(entry);
    const left = (): void => {
      this.entering.delete(entry);
    };
    entry.then(left, left);
    return entry.then((state) => (state === undefined ? [] : state.promise));
  }

  /** Validates, looks up the partition count, waits for room and adds the records to batches. */
  private async enter(
    topic: string,
    records: ProducerRecord | readonly ProducerRecord[],
  ): Promise<SendState | undefined> {
    if (typeof topic !== "string" || topic.length === 0) {
      throw new InvalidArgumentError("topic must be a non-empty string");
    }
    const list: readonly ProducerRecord[] = Array.isArray(records) ? records : [records as ProducerRecord];
    if (list.length === 0) return undefined;
    const prepared = prepare(list);
    // Reserve the bytes before the metadata lookup, so that sends waiting for it count toward the
    // buffer bound (and `writable`) too; every failure below gives them back.
    if (this.waiters.length > 0 || !this.hasRoom(prepared.bytes)) await this.waitForRoom(prepared.bytes);
    else this.buffered += prepared.bytes;
    let partitions: number[];
    let count: number | null | undefined;
    try {
      count = this.counts.cached(topic);
      if (count === undefined) count = await this.counts.fetch(topic);
      const checked = this.checkPartitions(topic, count, prepared.partitions);
      count = checked instanceof Promise ? await checked : checked;
      if (this.closed) throw new ClientClosedError("the producer is closed");
      partitions = this.choosePartitions(topic, count, prepared);
    } catch (e) {
      this.release(prepared.bytes);
      throw e;
    }
    return this.enqueue(topic, count, prepared, partitions);
  }

  /**
   * False while the buffer is full or sends wait for room; see {@link waitWritable}. Sends still
   * looking up their topic's partition count hold their bytes, so they count here too.
   */
  get writable(): boolean {
    return this.waiters.length === 0 && this.buffered < this.bufferBytes;
  }

  /** Resolves when {@link writable} is true (like a stream's 'drain'). */
  waitWritable(): Promise<void> {
    if (this.writable || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Bytes of records buffered and not yet acknowledged or failed. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Sends everything buffered now, without waiting for linger, and resolves when all of it is
   * acknowledged or failed (failures are reported through the sends' promises, not here).
   */
  async flush(): Promise<void> {
    // Sends called before flush but still looking up metadata or waiting for room are part of
    // "everything buffered": wait for them to get in, sending what is batched meanwhile so that
    // room frees up.
    const entering = [...this.entering];
    for (;;) {
      this.sendAllNow();
      const waiting = entering.filter((e) => this.entering.has(e));
      if (waiting.length === 0) break;
      const progress: Promise<unknown>[] = [...this.inFlightBatches].map((b) => b.done);
      for (const e of waiting) progress.push(e.catch(() => {}));
      await Promise.race(progress);
    }
    this.sendAllNow();
    const pending = [...this.acc.readyBatches(), ...this.inFlightBatches].map((b) => b.done);
    await Promise.all(pending);
  }

  /** Seals every open batch and starts sending. */
  private sendAllNow(): void {
    this.acc.sealAll();
    this.clearLinger();
    this.pump();
  }

  /** Stops accepting records, flushes, and releases the producer. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = this.flush().finally(() => {
      this.closed = true;
      this.clearLinger();
      this.abort.abort(new ClientClosedError("the producer is closed"));
      for (const w of this.waiters.splice(0)) w.reject(new ClientClosedError("the producer is closed"));
      for (const d of this.drainWaiters.splice(0)) d();
      this.ctx.onClose?.();
    });
    return this.closePromise;
  }

  // --- internals -------------------------------------------------------------------------------

  /**
   * Validates named partitions, refreshing the count once when one is out of range. Synchronous
   * (no promise) in the common case, so a send with cached metadata and buffer room enters the
   * accumulator before `send` returns and `writable` is up to date right after it.
   */
  private checkPartitions(
    topic: string,
    count: number | null,
    partitions: readonly (number | undefined)[],
  ): number | null | Promise<number | null> {
    let max = -1;
    for (const p of partitions) if (p !== undefined && p > max) max = p;
    if (count === null || max < count) return count;
    this.counts.invalidate(topic);
    return this.counts.fetch(topic).then((fresh) => {
      if (fresh === null || max < fresh) return fresh;
      throw new InvalidArgumentError(`partition ${max} of topic "${topic}" does not exist (it has ${fresh})`);
    });
  }

  private hasRoom(bytes: number): boolean {
    return this.buffered === 0 || this.buffered + bytes <= this.bufferBytes;
  }

  /** Waits (FIFO) until `bytes` fit in the buffer; the bytes are reserved when it resolves. */
  private waitForRoom(bytes: number): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  private release(bytes: number): void {
    this.buffered -= bytes;
    while (this.waiters.length > 0 && this.hasRoom(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      this.buffered += w.bytes;
      w.resolve();
    }
    if (this.drainWaiters.length > 0 && this.writable) {
      const ds = this.drainWaiters;
      this.drainWaiters = [];
      for (const d of ds) d();
    }
  }

  /**
   * Every record's partition, before any is appended (so a send is all-or-nothing): the one it
   * names, else the partitioner's answer, which must be an integer in [0, numPartitions); partition
   * 0 for a topic the broker does not know yet. Throws on the first record it cannot place.
   */
  private choosePartitions(topic: string, count: number | null, prepared: Prepared): number[] {
    const { keys, partitions } = prepared;
    const n = partitions.length;
    const chosen = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const named = partitions[i];
      chosen[i] = named ?? (count === null ? 0 : this.askPartitioner(topic, keys[i]!, count));
    }
    return chosen;
  }

  /** The partitioner's answer for one record, checked; throws a RillError naming what went wrong. */
  private askPartitioner(topic: string, key: Buffer | null, numPartitions: number): number {
    let p: unknown;
    try {
      p = this.partitioner.partition({ topic, key, numPartitions });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new RillError(`the partitioner failed for a record of topic "${topic}": ${why}`, {
        cause: e,
        retriable: false,
      });
    }
    if (typeof p === "number" && Number.isInteger(p) && p >= 0 && p < numPartitions) return p;
    throw new InvalidArgumentError(
      `the partitioner returned ${inspect(p)} for a record of topic "${topic}", which has ` +
        `${numPartitions} partition${numPartitions === 1 ? "" : "s"}: a partition must be an integer ` +
        `from 0 to ${numPartitions - 1}`,
    );
  }

  /** Tells the partitioner a batch was sealed; a partitioner that throws here is only logged. */
  private onSealed(topic: string, partition: number): void {
    this.sealedNow?.add(partition);
    try {
      this.partitioner.onBatchSealed?.(topic, partition, this.usedCounts.get(topic) ?? 1);
    } catch (e) {
      this.log.warn("partitioner.onBatchSealed threw", { topic, partition, error: String(e) });
    }
  }

  /** Partitions of the topic being enqueued whose batch was sealed during the enqueue. */
  private sealedNow: Set<number> | undefined;

  /**
   * Appends a send's records to batches, at the partitions {@link choosePartitions} picked. The
   * bytes were reserved as a whole; each batch releases its own share when it settles.
   */
  private enqueue(topic: string, count: number | null, prepared: Prepared, chosen: number[]): SendState {
    const known = count !== null;
    const numPartitions = count ?? 1;
    if (!known) this.unknownTopics.add(topic);
    this.usedCounts.set(topic, numPartitions);
    const { keys, partitions, sizes } = prepared;
    const n = sizes.length;
    const state = new SendState(n);
    let opened = false;
    const sealed = new Set<number>();
    this.sealedNow = sealed;
    let i = 0;
    try {
      for (; i < n; i++) {
        const size = sizes[i]!;
        const keyless = partitions[i] === undefined && keys[i] === null && known;
        let p = chosen[i]!;
        // A keyless record follows the sticky partitioner to its next partition once this send
        // sealed the batch it was headed for (as if asked only now); failing that, it stays put.
        if (keyless && sealed.has(p)) p = this.askAgain(topic, numPartitions, p);
        if (this.acc.wouldOverflow(topic, p, size)) {
          this.acc.seal(topic, p);
          if (keyless) p = this.askAgain(topic, numPartitions, p);
        }
        if (this.acc.append(topic, p, prepared, i, state)) opened = true;
      }
    } catch (e) {
      // Not expected (every record was checked): never leak the bytes of the records not appended.
      let rest = 0;
      for (let j = i; j < n; j++) rest += sizes[j]!;
      this.release(rest);
      state.fail(fromGrpcError(e));
    } finally {
      this.sealedNow = undefined;
    }
    if (opened) this.armLinger();
    if (this.acc.readyCount > 0) this.pump();
    return state;
  }

  /** The partitioner's new answer for a keyless record, or `fallback` if it fails (logged). */
  private askAgain(topic: string, numPartitions: number, fallback: number): number {
    try {
      return this.askPartitioner(topic, null, numPartitions);
    } catch (e) {
      this.log.warn("partitioner failed after a batch was sealed; keeping its first answer", {
        topic,
        partition: fallback,
        error: (e as Error).message,
      });
      return fallback;
    }
  }

  private armLinger(): void {
    const due = Date.now() + this.lingerMs;
    if (this.lingerTimer !== undefined && this.lingerDue <= due) return;
    this.clearLinger();
    this.lingerDue = due;
    this.lingerTimer = setTimeout(() => this.onLinger(), this.lingerMs);
  }

  private clearLinger(): void {
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.lingerDue = Number.POSITIVE_INFINITY;
  }

  private onLinger(): void {
    this.lingerTimer = undefined;
    this.lingerDue = Number.POSITIVE_INFINITY;
    const next = this.acc.sealExpired(this.lingerMs);
    if (next !== undefined) {
      this.lingerDue = Date.now() + next;
      this.lingerTimer = setTimeout(() => this.onLinger(), next);
    }
    this.pump();
  }

  /** Opens Produce streams for ready batches while fewer than maxInFlight are open. */
  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.acc.readyCount > 0) {
      const batches = this.acc.takeReady(this.maxStreamBytes, this.busy);
      if (batches.length === 0) return;
      this.inFlight++;
      for (const b of batches) {
        this.busy.add(b.key);
        this.inFlightBatches.add(b);
      }
      void this.runStream(batches).finally(() => {
        this.inFlight--;
        for (const b of batches) {
          this.busy.delete(b.key);
          this.inFlightBatches.delete(b);
        }
        this.pump();
      });
    }
  }

  /** Sends `batches` on one stream, retrying the unappended ones; settles every batch. Never rejects. */
  private async runStream(batches: SealedBatch[]): Promise<void> {
    let pending = batches;
    try {
      await retry(
        async (attempt) => {
          while (pending.length > 0) {
            const { response, error } = await this.produceOnce(pending, attempt);
            if (!error) {
              this.acknowledgeAll(pending, response!);
              pending = [];
              return;
            }
            const appended = appendedBatches(error);
            if (appended === undefined) {
              // No trailer: nothing is known to be appended; resend all (at-least-once) if retriable.
              if (error.retriable) throw error;
              this.failBatches(pending, error);
              pending = [];
              return;
            }
            for (const b of pending.slice(0, appended)) this.settleAppended(b, -1n);
            const refused = pending[appended];
            if (refused === undefined || error.retriable) {
              pending = pending.slice(appended);
              if (pending.length === 0) return;
              throw error;
            }
            this.failBatches([refused], error);
            pending = pending.slice(appended + 1);
          }
        },
        this.retryOptions,
        {
          signal: this.abort.signal,
          onRetry: (e, attempt, delayMs) =>
            this.log.warn("produce failed, retrying", {
              attempt,
              delayMs,
              batches: pending.length,
              error: fromGrpcError(e).message,
              code: fromGrpcError(e).codeName,
            }),
        },
      );
    } catch (e) {
      const err = fromGrpcError(e);
      this.log.error("produce failed", { batches: pending.length, error: err.message, code: err.codeName });
      this.failBatches(pending, err);
    }
  }

  /** One Produce call carrying `batches`; resolves with its outcome (never rejects). */
  private produceOnce(batches: readonly SealedBatch[], attempt: number): Promise<StreamOutcome> {
    return new Promise<StreamOutcome>((resolve) => {
      const deadline = new Date(Date.now() + this.requestTimeoutMs);
      let done = false;
      const finish = (o: StreamOutcome): void => {
        if (done) return;
        done = true;
        resolve(o);
      };
      this.log.debug("produce stream", { batches: batches.length, attempt });
      try {
        const call = this.ctx.connection.rawProduce.produce(
          this.ctx.connection.metadata(),
          { deadline },
          (err, response) => {
            if (err) finish({ error: fromGrpcError(err) });
            else finish({ response: response! });
          },
        );
        call.on("error", (e: unknown) => finish({ error: fromGrpcError(e) }));
        for (const b of batches) call.write(b.encoded);
        call.end();
      } catch (e) {
        finish({ error: fromGrpcError(e) });
      }
    });
  }

  private acknowledgeAll(batches: readonly SealedBatch[], response: ProduceResponse): void {
    const results = response.results;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      const r = results[i];
      if (r === undefined) {
        this.failBatches(
          [b],
          new RillError(`broker answered ${results.length} results for ${batches.length} batches`, {
            retriable: false,
          }),
        );
        continue;
      }
      this.settleAppended(b, r.baseOffset);
    }
  }

  private settleAppended(b: SealedBatch, baseOffset: bigint): void {
    if (b.settled) return;
    if (this.unknownTopics.delete(b.topic)) this.counts.invalidate(b.topic);
    b.acknowledge(baseOffset);
    this.release(b.bufferedBytes);
  }

  private failBatches(batches: readonly SealedBatch[], error: RillError): void {
    for (const b of batches) {
      if (b.settled) continue;
      if (error instanceof TopicNotFoundError || error instanceof InvalidArgumentError) {
        this.counts.invalidate(b.topic);
      }
      b.fail(error);
      this.release(b.bufferedBytes);
    }
  }
}

/** The `rill-appended-batches` trailer of a failed Produce, if present and well-formed. */
export function appendedBatches(error: RillError): number | undefined {
  const v = error.metadata?.get(APPENDED_TRAILER)?.[0];
  if (v === undefined) return undefined;
  const n = Number(typeof v === "string" ? v : v.toString("utf8"));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** The key used to group a partition's batches (exported for tests). */
export { partitionKey };
