import type { BrokerCore } from "../broker/broker.js";
import type { Logger } from "../logger.js";
import type { Auth } from "./auth/guard.js";
import type { RpcObserver } from "./observe.js";

/** An open server stream the broker may have to end (on drain or topic deletion). */
export interface OpenStream {
  /** Ends the stream with UNAVAILABLE because the broker is draining. */
  drain(): void;
  /** Bytes handed to grpc-js so far (batches and heartbeats). */
  sentBytes: number;
  /** True while the stream waits for the client to read (grpc-js said no more: backpressure). */
  blocked: boolean;
}

/** What every service handler needs; one per server. */
export interface RpcContext {
  /**
   * The broker core. The server listens before it is open; until then calls are refused before
   * they reach a handler (starting.ts), and reading this throws StartingError (UNAVAILABLE).
   */
  readonly core: BrokerCore;
  logger: Logger;
  /** True once a graceful shutdown began: new work is refused with UNAVAILABLE. */
  draining: boolean;
  /** Open Fetch streams, ended with UNAVAILABLE on drain. */
  readonly streams: Set<OpenStream>;
  /** Calls in progress; a drain waits for them before cancelling what is left (e.g. health Watch). */
  readonly inflight: Set<Promise<unknown>>;
  /** Told of every call and of records in and out (metrics/); see observe.ts. */
  observer?: RpcObserver | undefined;
  /** Authentication, ACLs and quotas (auth/guard.ts); undefined when none is configured. */
  readonly auth?: Auth | undefined;
}

/** Runs a handler's work, registered in ctx.inflight until it settles. */
export function track<T>(ctx: RpcContext, work: Promise<T>): Promise<T> {
  ctx.inflight.add(work);
  const done = () => ctx.inflight.delete(work);
  work.then(done, done);
  return work;
}
