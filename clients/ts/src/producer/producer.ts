/**
 * The producer: batches records per partition and appends them through client-streaming Produce
 * calls, or through one pipelined ProduceSession (`acks: "per-batch"`). This file orchestrates; the
 * parts live beside it:
 * - `producer-options.ts`: settings, defaults and validation;
 * - `buffer-bound.ts`: the buffer bound (`bufferBytes`, `writable`, sends waiting for room);
 * - `partition-choice.ts`: partition validation and the partitioner (sticky re-asks included);
 * - `accumulator.ts`: open and sealed batches;
 * - `sender.ts`: Produce streams, the `rill-appended-batches` trailer, retries, ordering, delivery;
 * - `session-sender.ts`: the same for the per-batch ProduceSession;
 * - `partition-counts.ts`: the partition-count cache.
 *
 * Acknowledgements (`acks`):
 * - "per-stream" (default): ready batches go out together on a client-streaming Produce call (up to
 *   `maxStreamBytes`, `maxInFlight` calls at once, a partition in one call at a time); the broker
 *   answers once, when the call ends, so every batch of a call is acknowledged together and a send
 *   costs at least one call.
 * - "per-batch": one long-lived ProduceSession per producer; every batch is written to it as soon as
 *   it is sealed, with a sequence number, up to `maxInFlightBatches` unanswered, and each is
 *   acknowledged by its own answer, so a `send` resolves as soon as its own batches are appended and
 *   a partition's batches are pipelined (no call per send, no waiting for a previous call). The
 *   lowest latency for small sends (e.g. each record awaited before the next) and the least
 *   per-send overhead. Same delivery guarantees (at-least-once; per-partition order, with one
 *   exception described in `session-sender.ts`). Needs a broker with ProduceSession.
 *
 * Flow: `send` normalizes records, reserves their bytes in the buffer (waiting for room if it is
 * full; a send still looking up its topic's partition count holds its bytes too, so `writable`
 * bounds it), picks every record's partition, and only then adds them to the accumulator, so a send
 * whose partitioner throws or answers a partition that does not exist appends none of its records
 * and releases its bytes. It returns a promise for the records' offsets. A batch is sealed when full
 * (`batchBytes`), on flush, or after `lingerMs` once the sender has room for it (see `sealDue`) and,
 * with per-batch acks, once its partition has no batch in flight (`BatchSender.holds`); the sender
 * then sends it (see `sender.ts` for per-partition ordering and at-least-once delivery). A send
 * whose records span several batches rejects on the first failure while its other batches may still
 * be appended.
 *
 * Unknown topics: partition counts come from ClusterService.GetMetadata and are cached
 * (`metadataMaxAgeMs`, and dropped on NOT_FOUND or an out-of-range partition). For a topic the broker
 * does not know yet, records go to partition 0 (or the partition they name) so the broker can
 * auto-create the topic; once a batch of it is acknowledged the count is looked up again. Keyed
 * records sent before a topic exists therefore all land in partition 0: create topics first when key
 * placement matters.
 */
import type { Connection } from "../connection.js";
import {
  ClientClosedError,
  fromGrpcError,
  InvalidArgumentError,
  type RillError,
  TopicNotFoundError,
} from "../errors.js";
import type { Logger } from "../logger.js";
import type { RetryOptions } from "../retry.js";
import {
  Accumulator,
  partitionKey,
  type RecordMetadata,
  type SealedBatch,
  SendState,
} from "./accumulator.js";
import { BufferBound } from "./buffer-bound.js";
import { PartitionChoice } from "./partition-choice.js";
import { PartitionCounts } from "./partition-counts.js";
import { type ProducerOptions, resolveProducerOptions } from "./producer-options.js";
import { type Prepared, type ProducerRecord, prepare } from "./producer-record.js";
import { type BatchSender, Sender } from "./sender.js";
import { SessionSender } from "./session-sender.js";

export type { RecordMetadata } from "./accumulator.js";
export type { ProducerAcks, ProducerDurability, ProducerOptions } from "./producer-options.js";
export type { BytesLike, ProducerHeader, ProducerRecord } from "./producer-record.js";
/** The `rill-appended-batches` trailer reader (exported for tests). */
export { appendedBatches } from "./sender.js";

/** What the producer gets from its client. */
export interface ProducerContext {
  connection: Connection;
  logger: Logger;
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
  /** Called once closed, so the client forgets it. */
  onClose?: () => void;
}

/** Batches records and appends them to partitions. Create it with `client.producer(options)`. */
export class Producer {
  private readonly ctx: ProducerContext;
  private readonly lingerMs: number;
  private readonly counts: PartitionCounts;
  private readonly bound: BufferBound;
  private readonly choice: PartitionChoice;
  private readonly acc: Accumulator;
  private readonly sender: BatchSender;
  /** Topics sent to before the broker knew them: refresh their count after the next ack. */
  private readonly unknownTopics = new Set<string>();
  /** Sends not yet in the accumulator (looking up metadata, waiting for room). */
  private readonly entering = new Set<Promise<SendState | undefined>>();

  private lingerTimer: NodeJS.Timeout | undefined;
  private lingerImmediate: NodeJS.Immediate | undefined;
  private lingerDue = Number.POSITIVE_INFINITY;
  /** A linger ran out while the sender had no room: seal what is due once it has. */
  private lingerDeferred = false;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(ctx: ProducerContext, options: ProducerOptions = {}) {
    this.ctx = ctx;
    const log = ctx.logger.child("producer");
    const o = resolveProducerOptions(options, ctx);
    this.lingerMs = o.lingerMs;
    this.bound = new BufferBound(o.bufferBytes);
    this.counts = new PartitionCounts({ ...ctx, retry: o.retry }, o.metadataMaxAgeMs);
    this.choice = new PartitionChoice(o.partitioner, this.counts, log);
    this.acc = new Accumulator({
      batchBytes: o.batchBytes,
      compression: o.compression,
      durability: o.durability,
      onSealed: (topic, partition) => this.choice.onSealed(topic, partition),
    });
    const settle = {
      onSettle: (batch: SealedBatch, error: RillError | undefined) => {
        // Appended: an auto-created topic now has a count. Refused for its topic or partition: the
        // cached count may be stale.
        const stale =
          error === undefined
            ? this.unknownTopics.delete(batch.topic)
            : error instanceof TopicNotFoundError || error instanceof InvalidArgumentError;
        if (stale) this.counts.invalidate(batch.topic);
      },
      release: (bytes: number) => this.bound.release(bytes),
      onRoom: () => this.onRoom(),
    };
    this.sender =
      o.acks === "per-batch"
        ? new SessionSender({
            connection: ctx.connection,
            log,
            acc: this.acc,
            maxInFlightBatches: o.maxInFlightBatches,
            requestTimeoutMs: o.requestTimeoutMs,
            retry: o.retry,
            onIdle: (topic, partition) => this.onIdle(topic, partition),
            ...settle,
          })
        : new Sender({
            connection: ctx.connection,
            log,
            acc: this.acc,
            maxInFlight: o.maxInFlight,
            maxStreamBytes: o.maxStreamBytes,
            requestTimeoutMs: o.requestTimeoutMs,
            retry: o.retry,
            signal: this.abort.signal,
            ...settle,
          });
  }

  /**
   * Sends one record or many to `topic`. Resolves, once every record is acknowledged, with
   * `{ topic, partition, offset }` per record in the order given (offset -1n: appended at an unknown
   * offset, see `sender.ts`). Waits first while the buffer is full. Rejects with a `RillError` if
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
    // buffer bound (and `writable`) too; every failure below gives them back. No await when there
    // is room, so the common case enters the accumulator before `send` returns.
    const room = this.bound.reserve(prepared.bytes);
    if (room !== undefined) await room;
    let partitions: number[];
    let count: number | null | undefined;
    try {
      count = this.counts.cached(topic);
      if (count === undefined) count = await this.counts.fetch(topic);
      const checked = this.choice.check(topic, count, prepared.partitions);
      count = checked instanceof Promise ? await checked : checked;
      if (this.closed) throw new ClientClosedError("the producer is closed");
      partitions = this.choice.choose(topic, count, prepared);
    } catch (e) {
      this.bound.release(prepared.bytes);
      throw e;
    }
    return this.enqueue(topic, count, prepared, partitions);
  }

  /**
   * False while the buffer is full or sends wait for room; see {@link waitWritable}. Sends still
   * looking up their topic's partition count hold their bytes, so they count here too.
   */
  get writable(): boolean {
    return this.bound.writable;
  }

  /** Resolves when {@link writable} is true (like a stream's 'drain'). */
  waitWritable(): Promise<void> {
    return this.bound.waitWritable();
  }

  /** Bytes of records buffered and not yet acknowledged or failed. */
  get bufferedBytes(): number {
    return this.bound.bytes;
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
      const progress: Promise<unknown>[] = [...this.sender.inFlightBatches].map((b) => b.done);
      for (const e of waiting) progress.push(e.catch(() => {}));
      await Promise.race(progress);
    }
    this.sendAllNow();
    const pending = [...this.acc.readyBatches(), ...this.sender.inFlightBatches].map((b) => b.done);
    await Promise.all(pending);
  }

  /** Seals every open batch and starts sending. */
  private sendAllNow(): void {
    this.acc.sealAll();
    this.clearLinger();
    this.sender.pump();
  }

  /** Stops accepting records, flushes, and releases the producer. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = this.flush().finally(async () => {
      this.closed = true;
      this.clearLinger();
      this.abort.abort(new ClientClosedError("the producer is closed"));
      this.bound.close();
      await this.sender.close();
      this.ctx.onClose?.();
    });
    return this.closePromise;
  }

  // --- internals -------------------------------------------------------------------------------

  /**
   * Appends a send's records to batches, at the partitions `choice.choose` picked. The bytes were
   * reserved as a whole; each batch releases its own share when it settles.
   */
  private enqueue(topic: string, count: number | null, prepared: Prepared, chosen: number[]): SendState {
    const known = count !== null;
    const numPartitions = count ?? 1;
    if (!known) this.unknownTopics.add(topic);
    const { keys, partitions, sizes } = prepared;
    const n = sizes.length;
    const state = new SendState(n);
    let opened = false;
    const sealed = this.choice.beginAppend(topic, numPartitions);
    // One time for every batch this send opens: they linger, and are sealed, together.
    const now = this.acc.time();
    let i = 0;
    try {
      for (; i < n; i++) {
        const size = sizes[i]!;
        const keyless = partitions[i] === undefined && keys[i] === null && known;
        let p = chosen[i]!;
        // A keyless record follows the sticky partitioner to its next partition once this send
        // sealed the batch it was headed for (as if asked only now); failing that, it stays put.
        if (keyless && sealed.has(p)) p = this.choice.askAgain(topic, numPartitions, p);
        if (this.acc.wouldOverflow(topic, p, size)) {
          this.acc.seal(topic, p);
          if (keyless) p = this.choice.askAgain(topic, numPartitions, p);
        }
        if (this.acc.append(topic, p, prepared, i, state, now)) opened = true;
      }
    } catch (e) {
      // Not expected (every record was checked): never leak the bytes of the records not appended.
      let rest = 0;
      for (let j = i; j < n; j++) rest += sizes[j]!;
      this.bound.release(rest);
      state.fail(fromGrpcError(e));
    } finally {
      this.choice.endAppend();
    }
    if (opened) this.armLinger();
    if (this.acc.readyCount > 0) this.sender.pump();
    return state;
  }

  private armLinger(): void {
    if (this.lingerMs === 0) {
      // Seal once the sends of this turn of the event loop are in (a 0 ms timer waits about 1 ms).
      this.lingerImmediate ??= setImmediate(() => {
        this.lingerImmediate = undefined;
        this.sealDue();
      });
      return;
    }
    const due = Date.now() + this.lingerMs;
    if (this.lingerTimer !== undefined && this.lingerDue <= due) return;
    this.clearTimer();
    this.lingerDue = due;
    this.lingerTimer = setTimeout(() => this.onLinger(), this.lingerMs);
  }

  private clearLinger(): void {
    if (this.lingerImmediate !== undefined) clearImmediate(this.lingerImmediate);
    this.lingerImmediate = undefined;
    this.lingerDeferred = false;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.lingerDue = Number.POSITIVE_INFINITY;
  }

  private onLinger(): void {
    this.lingerTimer = undefined;
    this.lingerDue = Number.POSITIVE_INFINITY;
    this.sealDue();
  }

  /**
   * Seals the batches whose linger ran out and sends them, if the sender has room. Without room they
   * stay open and keep filling until it has (`onRoom`): under load batches grow with the backlog
   * instead of piling up small (with 1,000 partitions, 2–5 records each), as in Kafka's accumulator,
   * where a batch past its linger is only closed when the sender drains it.
   */
  private sealDue(): void {
    if (!this.sender.hasRoom) {
      this.lingerDeferred = true;
      return;
    }
    this.lingerDeferred = false;
    if (this.lingerMs === 0) this.acc.sealAll();
    else {
      const holds = this.sender.holds?.bind(this.sender);
      const next = this.acc.sealExpired(this.lingerMs, holds);
      const due = next === undefined ? Number.POSITIVE_INFINITY : Date.now() + next;
      // The timer may be armed for a later batch (armed while sealing waited for room): move it up.
      if (next !== undefined && due < this.lingerDue) {
        this.clearTimer();
        this.lingerDue = due;
        this.lingerTimer = setTimeout(() => this.onLinger(), next);
      }
    }
    this.sender.pump();
  }

  /** The sender may take batches again: seal what a linger left open for it. */
  private onRoom(): void {
    if (this.lingerDeferred && !this.closed) this.sealDue();
  }

  /**
   * Per-batch sending: the partition's batches taken have all settled; its open batch, if past its
   * linger and not held by a batch still waiting to be taken, was left filling meanwhile
   * (`BatchSender.holds`) and is sealed now (the sender pumps next).
   */
  private onIdle(topic: string, partition: number): void {
    if (this.lingerMs === 0 || this.closed || this.sender.holds?.(topic, partition)) return;
    // Without room the batch stays open, as any other past its linger (sealDue, once there is room).
    if (!this.sender.hasRoom) this.lingerDeferred = true;
    else this.acc.sealIfExpired(topic, partition, this.lingerMs);
  }
}

/** The key used to group a partition's batches (exported for tests). */
export { partitionKey };
