/**
 * Broker-wide limits on streaming calls, so slow, silent and vanished clients cost a bounded amount:
 *
 * - max.open.streams: at most this many streaming calls of the broker's own services (Produce,
 *   ProduceSession, Fetch, JoinGroup) are open at once in the whole broker. The next one is refused
 *   with RESOURCE_EXHAUSTED before its handler runs; unary calls are never counted nor refused (they
 *   end by themselves). Streams of the standard services (health Watch, reflection) count in a
 *   separate pool of a tenth of that (at least 1): health may be served without credentials
 *   (auth.public.health), and unauthenticated watchers must not be able to crowd out the data
 *   streams of authenticated clients.
 * - stream.idle.timeout.ms: a call whose requests are a stream (Produce, ProduceSession, reflection)
 *   that stays idle for this long is ended with DEADLINE_EXCEEDED and a message telling the client
 *   to open a new stream. Idle means: the client sent no message, the broker is waiting to read one
 *   (a read is pending: a handler stuck appending with its read-ahead full is not waiting), and, for
 *   a bidi call, the broker owes no answer (as many responses handed to gRPC as requests received:
 *   a ProduceSession batch waiting for a slow fsync is not idle time). A half-closed call is no
 *   longer timed.
 *
 * Per-connection limits (max.concurrent.streams) and vanished clients (keepalive) are grpc-js
 * server options (server.ts); this file is what grpc-js does not offer.
 *
 * How: one grpc-js server interceptor (the public ServerInterceptor API), so it sees every call
 * before any handler and after the last status. Per message it only increments a counter of the
 * call; one coarse timer (a tenth of the timeout, at least 50 ms, at most 5 s), running only while
 * a client-streaming call is open, compares the counters with those of the previous tick. No
 * setTimeout per message or per call.
 *
 * Refusals are logged as a warning at most every 10 s (with how many since the last one), idle
 * ends at debug level; both are counted (`refused`, `idleEnded`).
 *
 * Invariants: `open` counts the streaming calls admitted and not yet over; a call is over exactly
 * once, when grpc-js reports its end to the listener (onCancel: it does so after any status is
 * sent and when the HTTP/2 stream closes), so `open` returns to its baseline when clients vanish.
 * Ending an idle call sends its status; grpc-js then tells the handler the call was cancelled, and
 * the handler's own later status is dropped. The call's request metadata is remembered (weakly) with
 * that status, so observe.ts reports the call with the code its client got (`statusSentHere`), not
 * as CANCELLED.
 */
import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  status as Status,
} from "@grpc/grpc-js";
import type { Logger } from "../logger.js";

/** At most one warning about refused streams per this long (a client in a retry loop would flood). */
const REFUSAL_WARN_INTERVAL_MS = 10_000;

/** Calls ended here (idle) by their request metadata, which handlers see as `call.metadata`. */
const endedHere = new WeakMap<Metadata, Status>();

/** The status this interceptor ended the call of `metadata` with, if it ended it. */
export function statusSentHere(metadata: Metadata | undefined): Status | undefined {
  return metadata === undefined ? undefined : endedHere.get(metadata);
}

export interface StreamLimitsOptions {
  /** max.open.streams */
  maxOpenStreams: number;
  /** stream.idle.timeout.ms; -1 = never. */
  streamIdleTimeoutMs: number;
}

/** One open call whose requests are a stream, as the idle timer sees it. */
interface Timed {
  readonly call: TimedCall;
  /** The request metadata (the handler's `call.metadata`). */
  readonly metadata: Metadata;
  /** "/rill.v1.LogService/Produce" */
  readonly path: string;
  /** Messages received so far (incremented per message: the only per-message work). */
  received: number;
  /** `received` at the last tick. */
  seen: number;
  /** True from a read request until its message (or half-close) arrives. */
  waiting: boolean;
  /** Bidi calls: responses handed to gRPC so far (one increment per response). */
  sent: number;
  /** False for client-streaming calls (one response, at the end: nothing is owed meanwhile). */
  readonly answers: boolean;
  /** Tick time since which the call has been waiting with no message. */
  since: number;
}

/** The interceptor's call: notes when the handler asks for the next message. */
class TimedCall extends ServerInterceptingCall {
  timed: Timed | undefined;

  override startRead(): void {
    if (this.timed) this.timed.waiting = true;
    super.startRead();
  }
}

/** Methods of the standard services (health, reflection), whose streams have their own pool. */
function isStandardService(path: string): boolean {
  return path.startsWith("/grpc.");
}

/** A pool of stream slots. */
interface Pool {
  open: number;
  readonly max: number;
  /** The setting a refusal names. */
  readonly setting: string;
}

export class StreamLimits {
  private readonly broker: Pool;
  private readonly standard: Pool;
  private readonly timed = new Set<Timed>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;
  /** Calls ended by the idle timeout so far. */
  idleEnded = 0;
  /** Calls refused by max.open.streams so far. */
  refused = 0;
  private refusedWarnedAt = Number.NEGATIVE_INFINITY;
  private refusedSinceWarning = 0;

  constructor(
    private readonly options: StreamLimitsOptions,
    private readonly logger: Logger,
  ) {
    this.tickMs = Math.min(5000, Math.max(50, Math.floor(options.streamIdleTimeoutMs / 10)));
    this.broker = { open: 0, max: options.maxOpenStreams, setting: "max.open.streams" };
    this.standard = {
      open: 0,
      max: Math.max(1, Math.floor(options.maxOpenStreams / 10)),
      setting: "max.open.streams / 10, for health Watch and reflection",
    };
  }

  /** Streaming calls open now (both pools). */
  get open(): number {
    return this.broker.open + this.standard.open;
  }

  /** The grpc-js server interceptor (pass in the Server options' `interceptors`). */
  readonly interceptor: ServerInterceptor = (method, call) => {
    if (!method.requestStream && !method.responseStream) return new ServerInterceptingCall(call);
    return this.intercept(method.path, method.requestStream, method.responseStream, call);
  };

  private intercept(
    path: string,
    requestStream: boolean,
    responseStream: boolean,
    call: ServerInterceptingCallInterface,
  ) {
    let admitted = false;
    let over = false;
    let timed: Timed | undefined;
    const pool = isStandardService(path) ? this.standard : this.broker;
    const end = () => {
      if (over) return;
      over = true;
      if (admitted) pool.open--;
      if (timed) this.untime(timed);
    };
    const intercepting: TimedCall = new TimedCall(call, {
      start: (next) => {
        const listener = new ServerListenerBuilder()
          .withOnReceiveMetadata((metadata: Metadata, nextMetadata) => {
            if (over) return;
            if (pool.open >= pool.max) {
              this.refused++;
              this.warnRefused(path, pool);
              intercepting.sendStatus({
                code: Status.RESOURCE_EXHAUSTED,
                details: `the broker has ${pool.open} streams of this kind open, its limit (${pool.setting}): retry later, close streams you do not need, or raise max.open.streams`,
              });
              return;
            }
            admitted = true;
            pool.open++;
            if (requestStream && this.options.streamIdleTimeoutMs !== -1) {
              timed = {
                call: intercepting,
                metadata,
                path,
                received: 0,
                seen: 0,
                waiting: false,
                since: 0,
                sent: 0,
                answers: responseStream,
              };
              intercepting.timed = timed;
              this.time(timed);
            }
            nextMetadata(metadata);
          })
          .withOnReceiveHalfClose((nextHalfClose) => {
            if (timed) this.untime(timed);
            nextHalfClose();
          })
          .withOnCancel(end);
        if (requestStream) {
          listener.withOnReceiveMessage((message, nextMessage) => {
            if (timed) {
              timed.received++;
              timed.waiting = false;
            }
            nextMessage(message);
          });
        }
        next(listener.build());
      },
      ...(requestStream && responseStream
        ? {
            sendMessage: (message: unknown, nextMessage: (message: unknown) => void) => {
              if (timed) timed.sent++;
              nextMessage(message);
            },
          }
        : {}),
    });
    return intercepting;
  }

  private time(t: Timed): void {
    t.since = Date.now();
    this.timed.add(t);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  private untime(t: Timed): void {
    t.call.timed = undefined;
    this.timed.delete(t);
    if (this.timed.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Ends the calls that have waited for a message for stream.idle.timeout.ms or more. */
  private tick(): void {
    const now = Date.now();
    const timeout = this.options.streamIdleTimeoutMs;
    for (const t of this.timed) {
      if (!t.waiting || t.received !== t.seen || (t.answers && t.sent < t.received)) {
        t.seen = t.received;
        t.since = now;
      } else if (now - t.since >= timeout) {
        this.untime(t);
        this.idleEnded++;
        this.logger.debug(
          { method: t.path, peer: t.call.getPeer(), timeoutMs: timeout },
          "idle stream ended",
        );
        endedHere.set(t.metadata, Status.DEADLINE_EXCEEDED);
        t.call.sendStatus({
          code: Status.DEADLINE_EXCEEDED,
          details: `no message on this stream for ${timeout} ms (stream.idle.timeout.ms): the broker ended it; open a new stream and resend what got no answer`,
        });
      }
    }
  }

  private warnRefused(path: string, pool: Pool): void {
    this.refusedSinceWarning++;
    const now = Date.now();
    if (now - this.refusedWarnedAt < REFUSAL_WARN_INTERVAL_MS) return;
    this.logger.warn(
      { method: path, open: pool.open, limit: pool.setting, refused: this.refusedSinceWarning },
      "streams refused: max.open.streams reached",
    );
    this.refusedWarnedAt = now;
    this.refusedSinceWarning = 0;
  }
}
