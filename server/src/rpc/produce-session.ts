/**
 * LogService.ProduceSession: one long-lived bidirectional stream per producer, one batch per
 * request, one answer per request, pipelined.
 *
 * - Requests arrive as lazy views (codecs/produce-session.ts); each batch is validated and appended
 *   by produce-append.ts exactly as Produce appends it (same limits, auto-creation, durability),
 *   one at a time and in stream order.
 * - Answers go out strictly in request order, each with its request's sequence number: a FSYNCED
 *   batch's answer waits for the group fsync that covers it, and the answers of later batches, even
 *   WRITTEN ones, wait behind it. A refused batch is answered with a ProduceError carrying the
 *   status statusOf() gives for the same failure in Produce, and the stream goes on. A batch whose
 *   fsync failed is answered with that failure (it may be on disk, unacknowledged: the producer
 *   resends it, at least once).
 * - Bounded: at most `max.inflight.batches.per.session` requests are read and not yet answered
 *   (handed to gRPC). Past it the handler stops reading (pause()); grpc-js fills the call's buffer
 *   of 16 requests, then stops reading the HTTP/2 stream and flow control holds the client back; answers are written only while gRPC takes them
 *   (`write()` → false: wait for `drain`). A client that never reads its answers therefore stalls
 *   its own stream, at a bounded cost to the broker.
 * - The stream ends with a status only for what concerns the stream: OK once the client
 *   half-closed and every answer is out; UNAVAILABLE when the broker drains (registered as an
 *   OpenStream like Fetch: it stops reading, answers every batch it read, then ends);
 *   INVALID_ARGUMENT for a request whose envelope cannot be read (no sequence to answer with),
 *   also after answering the batches before it. Requests the broker did not read are not appended:
 *   the client resends whatever has no answer.
 */
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { InvalidRequestError, ShuttingDownError } from "../broker/errors.js";
import type { Partition } from "../broker/partition.js";
import type { AppendResult } from "../storage/log-api.js";
import { type Access, accessOf } from "./auth/access.js";
import {
  encodeSessionError,
  encodeSessionResult,
  type ProduceSessionRequestView,
} from "./codecs/produce-session.js";
import type { OpenStream, RpcContext } from "./context.js";
import { type AppendedBatch, appendBatch } from "./produce-append.js";
import { toServiceError } from "./status.js";

export type SessionCall = ServerDuplexStream<ProduceSessionRequestView, Buffer>;

/** One request read and not yet answered. */
interface Pending {
  sequence: bigint;
  /** The encoded answer, once known (a FSYNCED batch's after its fsync). */
  answer: Buffer | undefined;
}

/** Serves one ProduceSession call; resolves once the call has ended (never rejects). */
export function produceSession(ctx: RpcContext, call: SessionCall): Promise<void> {
  return new Session(ctx, call).run();
}

/**
 * Event-driven rather than an async loop over the call's iterator: a request that can be appended
 * at once (the topic exists, no quota wait) is validated, appended and answered inside grpc-js's
 * 'data' event, with no promise in between. The iterator, plus awaits per request, cost ~10 µs of
 * server CPU per round trip in a throw-away variant of scripts/bench/grpc-floor.mjs (BENCHMARKS.md,
 * "ProduceSession without promise hops"). Reading is throttled with pause()/resume(): `updateFlow`.
 */
class Session {
  /** max.inflight.batches.per.session */
  private max = 1;
  /** Requests read, in order; answered ones before `head` are cleared. */
  private queue: (Pending | undefined)[] = [];
  private head = 0;
  /** Set once the stream is to stop reading: why it will end (undefined cause: cancelled). */
  private stopped = false;
  private cause: unknown;
  /** The client half-closed: no more requests will come. */
  private halfClosed = false;
  /** A request is waiting to be appended (quota, topic creation): the next one waits for it. */
  private appending = false;
  /** Reading is paused (call.pause()). */
  private paused = false;
  /** The call is over (status handed to gRPC, or cancelled): nothing more is written. */
  private ended = false;
  /** gRPC's write buffer is full: answers wait for `drain`. */
  private blocked = false;
  /** run() has resolved and let go of the call. */
  private finished = false;
  private resolveRun: (() => void) | undefined;
  private readonly stream: OpenStream;
  /** Who is calling (auth/): ACLs and quota per batch; undefined when auth is off. */
  private readonly access: Access | undefined;

  constructor(
    private readonly ctx: RpcContext,
    private readonly call: SessionCall,
  ) {
    this.access = accessOf(call);
    this.stream = {
      drain: () => this.stop(new ShuttingDownError()),
      sentBytes: 0,
      blocked: false,
    };
  }

  private readonly onData = (req: ProduceSessionRequestView): void => {
    // Runs inside grpc-js's push(): a throw here would escape as an unhandled rejection.
    try {
      // Read during a drain (or after a broken envelope): left unanswered, the client resends it.
      if (this.stopped) return;
      if (req.malformed) {
        this.stop(new InvalidRequestError(req.malformed));
        return;
      }
      this.handle(req);
    } catch (err) {
      this.crash(err);
    }
  };

  private readonly onEnd = (): void => {
    this.halfClosed = true;
    this.maybeFinish();
  };

  /** Cancelled by the client (or its deadline), or the stream went away: nothing more is written. */
  private readonly onGone = (): void => {
    if (this.ended) return;
    this.ended = true;
    this.stop(undefined);
    this.call.destroy();
  };

  run(): Promise<void> {
    const { ctx, call } = this;
    const done = new Promise<void>((resolve) => {
      this.resolveRun = resolve;
    });
    // Registered before anything is read, so a drain that begins meanwhile still ends this stream.
    ctx.streams.add(this.stream);
    call.once("cancelled", this.onGone);
    call.once("close", this.onGone);
    call.once("end", this.onEnd);
    this.max = ctx.core.config.maxInflightBatchesPerSession;
    if (ctx.draining) this.stop(new ShuttingDownError());
    else call.on("data", this.onData);
    return done;
  }

  /** Requests read and not yet handed to gRPC. */
  private get unanswered(): number {
    return this.queue.length - this.head;
  }

  /** Appends one batch and queues its answer; synchronously when nothing has to be waited for. */
  private handle(req: ProduceSessionRequestView): void {
    const pending: Pending = { sequence: req.sequence, answer: undefined };
    this.queue.push(pending);
    let appended: AppendedBatch | Promise<AppendedBatch> | undefined;
    try {
      appended = appendBatch(this.ctx, req.produce, this.access);
      if (!(appended instanceof Promise)) this.answer(pending, req, appended);
    } catch (err) {
      pending.answer = this.error(pending.sequence, err);
    }
    if (!(appended instanceof Promise)) {
      this.progress();
      return;
    }
    // Waiting (quota, topic creation): stop reading until this batch is in, to keep stream order.
    this.appending = true;
    this.updateFlow();
    appended
      .then((a) => this.answer(pending, req, a))
      .catch((err: unknown) => {
        pending.answer = this.error(pending.sequence, err);
      })
      .catch((err: unknown) => this.crash(err))
      .finally(() => {
        this.appending = false;
        this.progress();
      });
  }

  /** Sets the answer of an appended batch, or arranges it after the fsync the batch asked for. */
  private answer(pending: Pending, req: ProduceSessionRequestView, a: AppendedBatch): void {
    if (a.fsync) this.answerAfterSync(pending, req, a.partition, a.appended);
    else pending.answer = this.result(pending.sequence, req, a.appended);
  }

  /** Writes what is ready, then reads on (or not), and ends the call once it is over. */
  private progress(): void {
    try {
      this.flush();
      this.updateFlow();
      this.maybeFinish();
    } catch (err) {
      this.crash(err);
    }
  }

  /**
   * Something threw that never should (a bug): end the call with it (INTERNAL, logged by
   * toServiceError) instead of letting it escape from a grpc-js event or a promise callback.
   */
  private crash(err: unknown): void {
    if (!this.stopped) {
      this.stopped = true;
      this.cause = err;
    }
    this.updateFlow();
    this.end(err);
    this.maybeFinish();
  }

  private answerAfterSync(
    pending: Pending,
    req: ProduceSessionRequestView,
    partition: Partition,
    appended: AppendResult,
  ): void {
    partition
      .sync()
      .then(
        () => {
          pending.answer = this.result(pending.sequence, req, appended);
        },
        (err: unknown) => {
          pending.answer = this.error(pending.sequence, err);
        },
      )
      .catch((err: unknown) => this.crash(err))
      .finally(() => this.progress());
  }

  private result(sequence: bigint, req: ProduceSessionRequestView, appended: AppendResult): Buffer {
    return encodeSessionResult(sequence, {
      topic: req.produce.topic,
      partition: req.produce.partition,
      baseOffset: appended.baseOffset,
      recordCount: appended.recordCount,
      appendTimeMs: appended.appendTimeMs,
    });
  }

  private error(sequence: bigint, err: unknown): Buffer {
    const status = toServiceError(err, this.ctx.logger);
    return encodeSessionError(sequence, status.code!, status.details!);
  }

  /** Writes the answers that are ready, in order, while gRPC takes them. */
  private flush(): void {
    const { call, stream } = this;
    while (!this.ended && !this.blocked && this.head < this.queue.length) {
      const p = this.queue[this.head]!;
      if (p.answer === undefined) break;
      this.queue[this.head++] = undefined;
      stream.sentBytes += p.answer.length;
      if (!call.write(p.answer)) {
        this.blocked = true;
        stream.blocked = true;
        call.once("drain", () => {
          this.blocked = false;
          stream.blocked = false;
          this.progress();
        });
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Reads while fewer than `max` requests are unanswered and none waits to be appended; pauses
   * otherwise, so grpc-js stops reading the HTTP/2 stream (once the call's buffer of 16 requests
   * is full) and flow control holds the client back.
   * (resume() takes effect on the next tick: no request is handled inside this call.)
   */
  private updateFlow(): void {
    const read = !this.stopped && !this.appending && this.unanswered < this.max;
    if (read && this.paused) {
      this.paused = false;
      this.call.resume();
    } else if (!read && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
  }

  /** Stops reading; the stream ends with `cause` (UNAVAILABLE on drain) once every answer is out. */
  private stop(cause: unknown): void {
    if (!this.stopped) {
      this.stopped = true;
      this.cause = cause;
    }
    this.updateFlow();
    this.maybeFinish();
  }

  /**
   * Once no more requests will be handled (half-closed or stopped) and every answer is out, ends
   * the call with its status; once the call is over and no append is in progress, lets go of it.
   */
  private maybeFinish(): void {
    if (this.finished || this.appending) return;
    if (!this.ended) {
      if (!(this.halfClosed || this.stopped) || this.unanswered > 0) return;
      this.end(this.cause);
    }
    this.finished = true;
    const { call } = this;
    call.off("data", this.onData);
    call.off("end", this.onEnd);
    call.off("cancelled", this.onGone);
    call.off("close", this.onGone);
    this.ctx.streams.delete(this.stream);
    this.resolveRun?.();
  }

  /** Ends the call: OK, or the status of `err` (after the answers already handed to gRPC). */
  private end(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    try {
      if (err === undefined) this.call.end();
      else this.call.emit("error", toServiceError(err, this.ctx.logger));
    } catch {
      // The status could not be handed over (a bug): reset the stream rather than leave it open.
      this.call.destroy();
    }
  }
}
