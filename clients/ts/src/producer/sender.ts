/**
 * The producer's sender: takes sealed batches from the accumulator and appends them through
 * client-streaming Produce calls, retrying failures, and settles every batch it takes.
 *
 * Streams: ready batches, possibly for many partitions, go out together on one Produce stream (up to
 * `maxStreamBytes`, at least one batch); at most `maxInFlight` streams are open at once.
 *
 * Ordering: a partition is in at most one stream at a time, and batches of a partition leave in the
 * order they were sealed; a failed stream is retried (only its unappended batches) before that
 * partition's later batches go out. So per-partition order holds even across retries, whatever
 * `maxInFlight` is.
 *
 * Delivery: when a stream fails, the `rill-appended-batches` trailer says how many of its batches
 * were appended; those are acknowledged (their records get offset -1n: appended, offset unknown,
 * like Kafka's UNKNOWN_OFFSET) and only the rest are resent. Without the trailer (connection lost,
 * deadline) every batch of the stream is resent: at-least-once, a batch may be appended twice.
 * Retriable errors (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) are retried with backoff, bounded by
 * the retry options; a refused batch with a non-retriable status rejects the sends it holds records
 * of, and the stream's later batches are sent again at once.
 *
 * Invariants: every batch taken is settled exactly once (acknowledged or failed), and its buffered
 * bytes are released right after; a stream's promise never rejects.
 */
import type { Connection } from "../connection.js";
import { fromGrpcError, RillError } from "../errors.js";
import type { ProduceResponse } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { type RetryOptions, retry } from "../retry.js";
import type { Accumulator, SealedBatch } from "./accumulator.js";

const APPENDED_TRAILER = "rill-appended-batches";
/**
 * Batches one Produce stream carries at most, well under the broker's default
 * max.batches.per.produce.stream (100,000), which refuses the rest of a stream past it.
 */
export const MAX_BATCHES_PER_STREAM = 10_000;

/** What the sender needs from the producer. */
export interface SenderContext {
  connection: Connection;
  log: Logger;
  acc: Accumulator;
  maxInFlight: number;
  maxStreamBytes: number;
  /** Deadline of one Produce stream (ms). */
  requestTimeoutMs: number;
  retry: Partial<RetryOptions>;
  /** Aborts retry waits (on close). */
  signal: AbortSignal;
  /** Called as a batch settles, before its sends learn the outcome (`error` undefined: appended). */
  onSettle: (batch: SealedBatch, error: RillError | undefined) => void;
  /** Gives a settled batch's bytes back to the buffer. */
  release: (bytes: number) => void;
  /** Called at the start of every pump while the sender has room (see `hasRoom`). */
  onRoom: () => void;
}

/** What the producer needs from a sender (this one, or the per-batch `SessionSender`). */
export interface BatchSender {
  /** Sends ready batches as far as the sender's bounds allow. */
  pump(): void;
  /** Batches taken from the accumulator and not settled yet (or settling). */
  readonly inFlightBatches: ReadonlySet<SealedBatch>;
  /**
   * True if a batch sealed now would be sent now. While false the producer leaves batches whose
   * linger ran out open, so they keep filling (Kafka's accumulator does the same); the sender calls
   * `onRoom` whenever it pumps with room, which it does whenever room opens.
   */
  readonly hasRoom: boolean;
  /**
   * Per-batch sending only: true while the partition has a batch sealed and not settled. Its batch
   * past its linger then keeps filling, and is sealed when the partition settles (`onIdle`).
   */
  holds?(topic: string, partition: number): boolean;
  /** Releases what the sender holds open; called once every batch settled. */
  close(): Promise<void>;
}

/** Outcome of one Produce stream attempt. */
interface StreamOutcome {
  response?: ProduceResponse;
  error?: RillError;
}

/** Sends sealed batches on Produce streams; see the file header. */
export class Sender implements BatchSender {
  private inFlight = 0;
  /** Partitions with a batch in an open stream. */
  private readonly busy = new Set<string>();
  private readonly batches = new Set<SealedBatch>();

  constructor(private readonly ctx: SenderContext) {}

  /** Batches in open streams (not settled yet, or settling). */
  get inFlightBatches(): ReadonlySet<SealedBatch> {
    return this.batches;
  }

  get hasRoom(): boolean {
    return this.inFlight < this.ctx.maxInFlight;
  }

  /**
   * Opens Produce streams for ready batches while fewer than maxInFlight are open; first, if there
   * is room, lets the producer seal what a linger left open (`onRoom`; it may call pump again).
   */
  pump(): void {
    const { acc, maxInFlight, maxStreamBytes } = this.ctx;
    if (this.hasRoom) this.ctx.onRoom();
    while (this.inFlight < maxInFlight && acc.readyCount > 0) {
      const batches = acc.takeReady(maxStreamBytes, this.busy, MAX_BATCHES_PER_STREAM);
      if (batches.length === 0) return;
      this.inFlight++;
      for (const b of batches) {
        this.busy.add(b.key);
        this.batches.add(b);
      }
      void this.runStream(batches).finally(() => {
        this.inFlight--;
        for (const b of batches) {
          this.busy.delete(b.key);
          this.batches.delete(b);
        }
        this.pump();
      });
    }
  }

  /** Sends `batches` on one stream, retrying the unappended ones; settles every batch. Never rejects. */
  private async runStream(batches: SealedBatch[]): Promise<void> {
    const { log } = this.ctx;
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
        this.ctx.retry,
        {
          signal: this.ctx.signal,
          onRetry: (e, attempt, delayMs) =>
            log.warn("produce failed, retrying", {
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
      log.error("produce failed", { batches: pending.length, error: err.message, code: err.codeName });
      this.failBatches(pending, err);
    }
  }

  /** One Produce call carrying `batches`; resolves with its outcome (never rejects). */
  private produceOnce(batches: readonly SealedBatch[], attempt: number): Promise<StreamOutcome> {
    const { connection, log, requestTimeoutMs } = this.ctx;
    return new Promise<StreamOutcome>((resolve) => {
      const deadline = new Date(Date.now() + requestTimeoutMs);
      let done = false;
      const finish = (o: StreamOutcome): void => {
        if (done) return;
        done = true;
        resolve(o);
      };
      log.debug("produce stream", { batches: batches.length, attempt });
      try {
        const call = connection.rawProduce.produce(connection.metadata(), { deadline }, (err, response) => {
          if (err) finish({ error: fromGrpcError(err) });
          else finish({ response: response! });
        });
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

  /** Nothing to release: every stream ends with its batches. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  private settleAppended(b: SealedBatch, baseOffset: bigint): void {
    settleAppended(this.ctx, b, baseOffset);
  }

  private failBatches(batches: readonly SealedBatch[], error: RillError): void {
    for (const b of batches) settleFailed(this.ctx, b, error);
  }
}

/** What settling a batch needs. */
type SettleContext = Pick<SenderContext, "onSettle" | "release">;

/** Acknowledges an appended batch (at `baseOffset`, -1n if unknown) and releases its bytes; once. */
export function settleAppended(ctx: SettleContext, b: SealedBatch, baseOffset: bigint): void {
  if (b.settled) return;
  ctx.onSettle(b, undefined);
  b.acknowledge(baseOffset);
  ctx.release(b.bufferedBytes);
}

/** Fails a batch (its sends reject with `error`) and releases its bytes; once. */
export function settleFailed(ctx: SettleContext, b: SealedBatch, error: RillError): void {
  if (b.settled) return;
  ctx.onSettle(b, error);
  b.fail(error);
  ctx.release(b.bufferedBytes);
}

/** The `rill-appended-batches` trailer of a failed Produce, if present and well-formed. */
export function appendedBatches(error: RillError): number | undefined {
  const v = error.metadata?.get(APPENDED_TRAILER)?.[0];
  if (v === undefined) return undefined;
  const n = Number(typeof v === "string" ? v : v.toString("utf8"));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}
