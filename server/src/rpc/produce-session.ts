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
 *   (handed to gRPC). Past it the handler stops reading, so grpc-js stops reading the HTTP/2 stream
 *   and flow control holds the client back; answers are written only while gRPC takes them
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
import { appendBatch } from "./produce-append.js";
import { toServiceError } from "./status.js";

export type SessionCall = ServerDuplexStream<ProduceSessionRequestView, Buffer>;

/** One request read and not yet answered. */
interface Pending {
  sequence: bigint;
  /** The encoded answer, once known (a FSYNCED batch's after its fsync). */
  answer: Buffer | undefined;
}

/** What a wait for the next request got instead of one: the stream is to stop reading. */
const STOP = Symbol("stop");

type Next = IteratorResult<ProduceSessionRequestView> | typeof STOP;

/** Serves one ProduceSession call; resolves once the call has ended (never rejects). */
export function produceSession(ctx: RpcContext, call: SessionCall): Promise<void> {
  return new Session(ctx, call).run();
}

class Session {
  /** max.inflight.batches.per.session */
  private max = 1;
  /** Requests read, in order; answered ones before `head` are cleared. */
  private queue: (Pending | undefined)[] = [];
  private head = 0;
  /** Set once the stream is to stop reading: why it will end (undefined cause: half-closed). */
  private stopped = false;
  private cause: unknown;
  /** The call is over (status handed to gRPC, or cancelled): nothing more is written. */
  private ended = false;
  /** gRPC's write buffer is full: answers wait for `drain`. */
  private blocked = false;
  /** Ends a wait for the next request (on drain or cancel). */
  private interruptRead: (() => void) | undefined;
  /** Ends a wait for room or for the last answer. */
  private wake: (() => void) | undefined;
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

  async run(): Promise<void> {
    const { ctx, call } = this;
    const onCancel = () => {
      this.ended = true;
      this.stop(undefined);
      call.destroy();
    };
    call.once("cancelled", onCancel);
    // Registered before the first await, so a drain that begins meanwhile still ends this stream.
    ctx.streams.add(this.stream);
    try {
      this.max = ctx.core.config.maxInflightBatchesPerSession;
      if (ctx.draining) this.stop(new ShuttingDownError());
      await this.readAll();
      // Every request read gets its answer before the status.
      while (!this.ended && this.unanswered > 0) await this.waitForProgress();
      this.end(this.cause);
    } catch (err) {
      this.end(err);
    } finally {
      call.off("cancelled", onCancel);
      ctx.streams.delete(this.stream);
    }
  }

  /** Requests read and not yet handed to gRPC. */
  private get unanswered(): number {
    return this.queue.length - this.head;
  }

  /** Reads and appends requests one at a time until the client half-closes or the stream stops. */
  private async readAll(): Promise<void> {
    const requests = this.call.iterator({
      destroyOnReturn: false,
    }) as AsyncIterator<ProduceSessionRequestView>;
    for (;;) {
      while (!this.stopped && this.unanswered >= this.max) await this.waitForProgress();
      if (this.stopped) return;
      const next = await this.nextRequest(requests);
      if (next === STOP || next.done) return;
      if (this.stopped) return; // read during a drain: left unanswered, the client resends it
      const req = next.value;
      if (req.malformed) {
        this.stop(new InvalidRequestError(req.malformed));
        return;
      }
      await this.handle(req);
    }
  }

  /** The next request, or STOP if the stream stops reading first. */
  private nextRequest(requests: AsyncIterator<ProduceSessionRequestView>): Promise<Next> {
    const next = requests.next();
    return new Promise<Next>((resolve, reject) => {
      this.interruptRead = () => resolve(STOP);
      next.then(resolve, reject);
    }).finally(() => {
      this.interruptRead = undefined;
    });
  }

  /** Appends one batch and queues its answer. */
  private async handle(req: ProduceSessionRequestView): Promise<void> {
    const pending: Pending = { sequence: req.sequence, answer: undefined };
    this.queue.push(pending);
    try {
      const { partition, appended, fsync } = await appendBatch(this.ctx, req.produce, this.access);
      if (fsync) this.answerAfterSync(pending, req, partition, appended);
      else pending.answer = this.result(pending.sequence, req, appended);
    } catch (err) {
      pending.answer = this.error(pending.sequence, err);
    }
    this.flush();
  }

  private answerAfterSync(
    pending: Pending,
    req: ProduceSessionRequestView,
    partition: Partition,
    appended: AppendResult,
  ): void {
    partition.sync().then(
      () => {
        pending.answer = this.result(pending.sequence, req, appended);
        this.flush();
      },
      (err: unknown) => {
        pending.answer = this.error(pending.sequence, err);
        this.flush();
      },
    );
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
    const before = this.unanswered;
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
          this.flush();
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
    if (this.unanswered < before) this.notify();
  }

  /** Stops reading; the stream ends with `cause` (UNAVAILABLE on drain) once every answer is out. */
  private stop(cause: unknown): void {
    if (!this.stopped) {
      this.stopped = true;
      this.cause = cause;
    }
    this.interruptRead?.();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private waitForProgress(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Ends the call: OK, or the status of `err` (after the answers already handed to gRPC). */
  private end(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (err === undefined) this.call.end();
    else this.call.emit("error", toServiceError(err, this.ctx.logger));
  }
}
