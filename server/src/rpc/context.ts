import type { BrokerCore } from "../broker/broker.js";
import type { Logger } from "../logger.js";

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
  core: BrokerCore;
  logger: Logger;
  /** True once a graceful shutdown began: new work is refused with UNAVAILABLE. */
  draining: boolean;
  /** Open Fetch streams, ended with UNAVAILABLE on drain. */
  readonly streams: Set<OpenStream>;
  /** Calls in progress; a drain waits for them before cancelling what is left (e.g. health Watch). */
  readonly inflight: Set<Promise<unknown>>;
}

/** Runs a handler's work, registered in ctx.inflight until it settles. */
export function track<T>(ctx: RpcContext, work: Promise<T>): Promise<T> {
  ctx.inflight.add(work);
  const done = () => ctx.inflight.delete(work);
  work.then(done, done);
  return work;
}
