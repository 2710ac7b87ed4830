/**
 * The producer's per-batch sender (`acks: "per-batch"`): one long-lived ProduceSession stream per
 * producer, batches pipelined on it, each settled by its own answer, so a `send` resolves as soon
 * as its batches are acknowledged, without a stream per send.
 *
 * Stream: opened on the first batch and kept open (an idle session costs the broker nothing);
 * half-closed on `close()`. Each batch goes out as a ProduceSessionRequest carrying the batch's kept
 * ProduceRequest bytes and a new sequence number; the broker answers every request, in order, so
 * answers are matched against the oldest unanswered batch (a mismatch is a broken broker: the
 * session's unanswered batches fail).
 *
 * Bounds: at most `maxInFlightBatches` batches sent and unanswered; no more are taken from the
 * accumulator while gRPC's write buffer is full (`write()` → false, until `drain`). The broker has
 * its own bound (max.inflight.batches.per.session) and stops reading past it.
 *
 * Batch size: a partition with a batch sealed and not settled is "held" (`holds`): its batch past its
 * linger keeps filling (up to batchBytes) and is sealed once the partition settles (`onIdle`). So
 * under load a partition's records wait at most one answer and go out together.
 *
 * Ordering: the broker appends a session's batches in the order sent, and batches of a partition
 * are sent in seal order, so per-partition order holds while the session lasts. A broken session's
 * unanswered batches are resent (below) before any later batch of their partitions: order of first
 * appearance holds across reconnects too. The one exception is a batch refused with a retriable
 * status while later batches of its partition were already in flight: those may be appended before
 * its resend (as with Kafka's max.in.flight > 1 without idempotence). Brokers answer such per-batch
 * UNAVAILABLEs only when a partition is closing or a disk fails.
 *
 * Delivery (at-least-once, as with Produce streams):
 * - an answered batch is settled by its answer: acknowledged at its base offset, or, refused with a
 *   non-retriable status, failed (rejecting the sends with records in it) while the session goes on;
 * - a batch refused with a retriable status (UNAVAILABLE...) is resent after a backoff;
 * - when the session breaks (connection lost, broker drained, no answer within `requestTimeoutMs`
 *   of the oldest unanswered batch), every unanswered batch is resent on a new session after a
 *   backoff, if the status is retriable; some may have been appended already (duplicates), none is
 *   lost. A non-retriable status fails every unanswered batch.
 * - Each batch has the retry budget of the retry options (attempts, elapsed time since its first
 *   failure); past it the batch fails with the last error.
 *
 * Invariants: every batch taken is settled exactly once and its buffered bytes released right
 * after; a batch is in `inFlightBatches` from the moment it is taken until it settles.
 */
import { type ClientDuplexStream, Metadata, status } from "@grpc/grpc-js";
import type { Connection } from "../connection.js";
import { ClientClosedError, fromGrpcError, RequestTimeoutError, RillError } from "../errors.js";
import type { ProduceError, ProduceSessionResponse } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { backoffDelay, type RetryOptions, resolveRetryOptions } from "../retry.js";
import { type Accumulator, partitionKey, type SealedBatch } from "./accumulator.js";
import { KeyCounts } from "./key-counts.js";
import { type BatchSender, settleAppended, settleFailed } from "./sender.js";

/** What the session sender needs from the producer. */
export interface SessionSenderContext {
  connection: Connection;
  log: Logger;
  acc: Accumulator;
  /** Batches sent and not answered yet, at most. */
  maxInFlightBatches: number;
  /** How long the oldest unanswered batch may wait for its answer before the session is given up (ms). */
  requestTimeoutMs: number;
  retry: Partial<RetryOptions>;
  /** Called as a batch settles, before its sends learn the outcome (`error` undefined: appended). */
  onSettle: (batch: SealedBatch, error: RillError | undefined) => void;
  /** Gives a settled batch's bytes back to the buffer. */
  release: (bytes: number) => void;
  /** Called at the start of every pump while the sender has room. */
  onRoom: () => void;
  /** A partition's last batch taken has settled (see `holds`); the sender pumps right after. */
  onIdle: (topic: string, partition: number) => void;
}

/** A batch written to a session and not answered yet. */
interface Sent {
  batch: SealedBatch;
  sequence: number;
  /** When it was written (ms since the epoch). */
  sentAt: number;
}

/** One ProduceSession call and its unanswered batches, oldest first. */
class Session {
  private sent: (Sent | undefined)[] = [];
  private head = 0;
  /** False while gRPC's write buffer is full (until `drain`). */
  writable = true;
  ackTimer: NodeJS.Timeout | undefined;
  /** Resolves once the call has its status. */
  readonly ended: Promise<void>;
  markEnded!: () => void;

  constructor(readonly call: ClientDuplexStream<Buffer, ProduceSessionResponse>) {
    this.ended = new Promise((resolve) => {
      this.markEnded = resolve;
    });
  }

  get unanswered(): number {
    return this.sent.length - this.head;
  }

  push(s: Sent): void {
    this.sent.push(s);
  }

  peek(): Sent | undefined {
    return this.sent[this.head];
  }

  shift(): Sent | undefined {
    const s = this.sent[this.head];
    if (s === undefined) return undefined;
    this.sent[this.head++] = undefined;
    if (this.head === this.sent.length) {
      this.sent = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.sent.length) {
      this.sent = this.sent.slice(this.head);
      this.head = 0;
    }
    return s;
  }

  /** Every unanswered batch, oldest first, forgetting them. */
  takeAll(): SealedBatch[] {
    const out: SealedBatch[] = [];
    for (let i = this.head; i < this.sent.length; i++) out.push(this.sent[i]!.batch);
    this.sent = [];
    this.head = 0;
    return out;
  }
}

/** Sends sealed batches on one pipelined ProduceSession; see the file header. */
export class SessionSender implements BatchSender {
  private session: Session | undefined;
  /** Every batch taken and not settled. */
  private readonly batches = new Set<SealedBatch>();
  /** How many of `batches` each partition has. */
  private readonly perPartition = new KeyCounts();
  /** Batches to send again, in seal order. */
  private resend: SealedBatch[] = [];
  /** Partitions with a batch in `resend` (how many): their later batches wait behind it. */
  private readonly held = new KeyCounts();
  private sequence = 0;
  /** Sessions broken in a row with batches unanswered. */
  private failures = 0;
  /** No session is opened before this (ms since the epoch): the backoff after a broken one. */
  private openAfter = 0;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private closed = false;
  private readonly retryOptions: RetryOptions;

  constructor(private readonly ctx: SessionSenderContext) {
    this.retryOptions = resolveRetryOptions(ctx.retry);
  }

  get inFlightBatches(): ReadonlySet<SealedBatch> {
    return this.batches;
  }

  get hasRoom(): boolean {
    const s = this.session;
    return s === undefined || (s.writable && s.unanswered < this.ctx.maxInFlightBatches);
  }

  /**
   * True while the partition has a batch taken and not settled. The producer then leaves its batch
   * past its linger open, so it keeps filling, and seals it once the partition settles (`onIdle`):
   * one batch short of `batchBytes` in flight per partition, as a Produce stream holds a partition
   * once. Without this, a producer writing to 1,000 partitions sealed each partition's batch at
   * every linger, with a record or two in it, and sent them all: in `rill bench` phase 9, 20k–28k
   * records/s against ~400k with `acks: "per-stream"`; with it, 430k–524k, level (BENCHMARKS.md).
   */
  holds(topic: string, partition: number): boolean {
    // A sealed batch not taken yet (more partitions than maxInFlightBatches) holds it too.
    return this.perPartition.has(partitionKey(topic, partition)) || this.ctx.acc.hasReady(topic, partition);
  }

  /**
   * Writes ready batches (resends first) while the bounds allow; first, if there is room, lets the
   * producer seal what a linger left open (`onRoom`; it may call pump again).
   */
  pump(): void {
    if (this.closed) return;
    if (this.hasRoom) this.ctx.onRoom();
    const { acc, maxInFlightBatches } = this.ctx;
    const now = Date.now();
    for (;;) {
      const session = this.session;
      if (session !== undefined && !session.writable) break;
      const room = maxInFlightBatches - (session?.unanswered ?? 0);
      if (room <= 0) break;
      const resendReady = this.resend.length > 0 && this.resend[0]!.notBefore <= now;
      if (!resendReady && acc.readyCount === 0) break;
      if (session === undefined && now < this.openAfter) break;
      // Resends first: each was sealed before anything of its partition still in the accumulator.
      const next = resendReady
        ? this.takeResends(room, now)
        : acc.takeReady(Number.POSITIVE_INFINITY, this.held, room);
      if (next.length === 0) break;
      const s = session ?? this.open();
      for (const b of next) this.write(s, b, now);
    }
    this.scheduleWake(now);
  }

  /** Half-closes the session (every batch has settled by now) and waits, bounded, for its end. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearWake();
    const closed = new ClientClosedError("the producer is closed");
    for (const b of this.resend) this.fail(b, closed);
    this.resend = [];
    this.held.clear();
    const s = this.session;
    this.session = undefined;
    if (s === undefined) return;
    for (const b of s.takeAll()) this.fail(b, closed);
    clearTimeout(s.ackTimer);
    s.call.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.ctx.requestTimeoutMs);
    });
    await Promise.race([s.ended, timeout]);
    clearTimeout(timer);
    s.call.cancel();
  }

  // --- internals -------------------------------------------------------------------------------

  private open(): Session {
    const { connection, log } = this.ctx;
    const call = connection.rawProduceSession.produceSession(connection.metadata());
    const s = new Session(call);
    log.debug("produce session opened");
    call.on("data", (answer: ProduceSessionResponse) => this.onAnswer(s, answer));
    call.on("error", (e: unknown) => this.onBroken(s, fromGrpcError(e)));
    call.on("status", (st: { code: number }) => {
      s.markEnded();
      if (st.code === status.OK)
        this.onBroken(s, new RillError("the broker ended the produce session", { code: status.UNAVAILABLE }));
    });
    call.on("drain", () => {
      s.writable = true;
      this.pump();
    });
    this.session = s;
    return s;
  }

  /** `b` is taken (a resend is already). */
  private track(b: SealedBatch): void {
    if (this.batches.has(b)) return;
    this.batches.add(b);
    this.perPartition.add(b.key);
  }

  /** `b` settled: if it was its partition's last one taken, the partition is idle again. */
  private untrack(b: SealedBatch): void {
    if (!this.batches.delete(b)) return;
    if (this.perPartition.remove(b.key) && !this.closed) this.ctx.onIdle(b.topic, b.partition);
  }

  private write(s: Session, b: SealedBatch, now: number): void {
    const sequence = ++this.sequence;
    this.track(b);
    s.push({ batch: b, sequence, sentAt: now });
    if (!s.call.write(encodeSessionRequest(sequence, b.encoded))) s.writable = false;
    this.armAckTimer(s);
  }

  /** Takes up to `max` resends that are due, in order (a batch not due holds back those after it). */
  private takeResends(max: number, now: number): SealedBatch[] {
    let n = 0;
    while (n < max && n < this.resend.length && this.resend[n]!.notBefore <= now) n++;
    const taken = this.resend.splice(0, n);
    for (const b of taken) {
      this.held.remove(b.key);
    }
    return taken;
  }

  private onAnswer(s: Session, answer: ProduceSessionResponse): void {
    if (s !== this.session) return;
    const sent = s.peek();
    if (sent === undefined || BigInt(sent.sequence) !== answer.sequence) {
      const expected = sent === undefined ? "none" : String(sent.sequence);
      this.onBroken(
        s,
        new RillError(`the broker answered sequence ${answer.sequence}, expected ${expected}`, {
          code: status.INTERNAL,
          retriable: false,
        }),
      );
      return;
    }
    s.shift();
    const b = sent.batch;
    const outcome = answer.outcome;
    if (outcome?.$case === "result") {
      this.failures = 0;
      settleAppended(this.ctx, b, outcome.value.baseOffset);
      this.untrack(b);
    } else {
      const error =
        outcome?.$case === "error"
          ? answerError(outcome.value)
          : new RillError("the broker answered without an outcome", {
              code: status.INTERNAL,
              retriable: false,
            });
      if (error.retriable) this.retryLater([b], error);
      else this.fail(b, error);
    }
    this.armAckTimer(s);
    this.pump();
  }

  /** The session is over: its unanswered batches are resent (retriable `error`) or failed. */
  private onBroken(s: Session, error: RillError): void {
    if (s !== this.session) return;
    this.session = undefined;
    clearTimeout(s.ackTimer);
    s.call.cancel(); // no-op if it already ended
    const unanswered = s.takeAll();
    if (unanswered.length === 0) {
      this.ctx.log.debug("idle produce session ended", { error: error.message, code: error.codeName });
    } else if (!error.retriable) {
      this.ctx.log.error("produce session failed", {
        batches: unanswered.length,
        error: error.message,
        code: error.codeName,
      });
      for (const b of unanswered) this.fail(b, error);
    } else {
      this.failures++;
      const delayMs = backoffDelay(this.failures, this.retryOptions);
      this.openAfter = Date.now() + delayMs;
      this.ctx.log.warn("produce session broken, resending its unanswered batches", {
        batches: unanswered.length,
        delayMs,
        error: error.message,
        code: error.codeName,
      });
      this.retryLater(unanswered, error);
    }
    this.pump();
  }

  /** Queues `batches` for a resend after a backoff, or fails those past their retry budget. */
  private retryLater(batches: readonly SealedBatch[], error: RillError): void {
    const now = Date.now();
    const { maxAttempts, maxElapsedMs } = this.retryOptions;
    for (const b of batches) {
      b.failedAttempts++;
      b.firstFailureAt ??= now;
      const delayMs = backoffDelay(b.failedAttempts, this.retryOptions);
      if (b.failedAttempts >= maxAttempts || now - b.firstFailureAt + delayMs > maxElapsedMs) {
        this.ctx.log.error("produce failed", {
          topic: b.topic,
          partition: b.partition,
          attempts: b.failedAttempts,
          error: error.message,
          code: error.codeName,
        });
        this.fail(b, error);
        continue;
      }
      b.notBefore = now + delayMs;
      this.resend.push(b);
      this.held.add(b.key);
    }
    this.resend.sort((x, y) => x.order - y.order);
  }

  private fail(b: SealedBatch, error: RillError): void {
    settleFailed(this.ctx, b, error);
    this.untrack(b);
  }

  /** Gives up the session when its oldest unanswered batch waited `requestTimeoutMs`. */
  private armAckTimer(s: Session): void {
    if (s.ackTimer !== undefined) return;
    const oldest = s.peek();
    if (oldest === undefined) return;
    const { requestTimeoutMs } = this.ctx;
    s.ackTimer = setTimeout(
      () => {
        s.ackTimer = undefined;
        const head = s.peek();
        if (s !== this.session || head === undefined) return;
        if (Date.now() - head.sentAt >= requestTimeoutMs) {
          this.onBroken(
            s,
            new RequestTimeoutError(`no answer to a produced batch within ${requestTimeoutMs} ms`),
          );
        } else {
          this.armAckTimer(s);
        }
      },
      Math.max(0, oldest.sentAt + requestTimeoutMs - Date.now()),
    );
    s.ackTimer.unref();
  }

  /** Wakes `pump` when the next resend or session is due (the timer keeps the process alive). */
  private scheduleWake(now: number): void {
    let at = Number.POSITIVE_INFINITY;
    if (this.resend.length > 0) at = Math.max(this.resend[0]!.notBefore, this.session ? 0 : this.openAfter);
    else if (this.session === undefined && this.ctx.acc.readyCount > 0) at = this.openAfter;
    if (at <= now || at === Number.POSITIVE_INFINITY) return;
    if (this.wakeTimer !== undefined && this.wakeAt <= at) return;
    this.clearWake();
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Number.POSITIVE_INFINITY;
      this.pump();
    }, at - now);
  }

  private clearWake(): void {
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
  }
}

/** The client error for a ProduceError answer (the class its status maps to, e.g. TopicNotFoundError). */
function answerError(e: ProduceError): RillError {
  const err = Object.assign(new Error(e.message), {
    code: e.code,
    details: e.message,
    metadata: new Metadata(),
  });
  return fromGrpcError(err);
}

function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/**
 * A ProduceSessionRequest around an encoded ProduceRequest: `sequence` (field 1, varint; a safe
 * integer) and `produce` (field 2, the bytes as they are), as the generated encoder writes it.
 */
export function encodeSessionRequest(sequence: number, produce: Uint8Array): Buffer {
  const seq = sequence === 0 ? 0 : 1 + varintLength(sequence);
  const out = Buffer.allocUnsafe(seq + 1 + varintLength(produce.length) + produce.length);
  let at = 0;
  if (sequence !== 0) {
    out[at++] = 0x08;
    at = writeVarint(out, at, sequence);
  }
  out[at++] = 0x12;
  at = writeVarint(out, at, produce.length);
  out.set(produce, at);
  return out;
}
