/**
 * The one instrumentation point of every RPC. `instrumentServer` wraps each handler registered on
 * the server (ours, health and reflection alike) so that when a call ends, its method, final
 * status code, duration and peer are logged at debug level and reported to the context's observer
 * (metrics/, when enabled; nothing else here knows about metrics).
 *
 * When a call ends:
 * - unary and client-streaming (Produce): when the handler replies through its callback, with the
 *   status it replies with;
 * - server-streaming (Fetch, JoinGroup, health Watch) and bidi (reflection): when the stream
 *   finishes, with the status of the error that ended it, else OK;
 * - either kind: when the client cancels first (CANCELLED; the handler's later reply is not
 *   counted again), or when stream-limits.ts ended an idle stream before its handler did (grpc-js
 *   reports that to the handler as a cancel too; it is counted with the status the client got,
 *   DEADLINE_EXCEEDED).
 *
 * What only a handler knows (records appended or sent) it reports to `ctx.observer` itself
 * (log-service.ts). The observer is read when a call starts, so one set later sees later calls.
 */
import {
  type Metadata,
  type Server,
  type ServiceDefinition,
  status as Status,
  type sendUnaryData,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { RpcContext } from "./context.js";
import { splitMethodPath, wrapMethods } from "./service-methods.js";
import { statusSentHere } from "./stream-limits.js";

/** What the RPC layer reports; implemented by metrics/. Every method must be cheap and never throw. */
export interface RpcObserver {
  /** A call began. */
  started(service: string, method: string): void;
  /** The call that began with the same service and method ended with `code` after `seconds`. */
  ended(service: string, method: string, code: Status, seconds: number): void;
  /** Produce appended one batch of `records` records whose record bytes are `recordsBytes` long. */
  produced(topic: string, records: number, recordsBytes: number): void;
  /** Fetch handed `frames` (whole stored frames, `batches` of them) of `topic` to gRPC. */
  fetched(topic: string, frames: Buffer, batches: number): void;
}

/** Makes every later `server.addService` register instrumented handlers. */
export function instrumentServer(server: Server, ctx: RpcContext): void {
  const addService = server.addService.bind(server);
  server.addService = (service, implementation) =>
    addService(service, instrumentService(ctx, service, implementation));
}

/** The implementation with each method of `service` wrapped (looked up as grpc-js does). */
export function instrumentService(
  ctx: RpcContext,
  service: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): UntypedServiceImplementation {
  return wrapMethods(service, implementation, (def, handler) => {
    const [serviceName, methodName] = splitMethodPath(def.path);
    return def.responseStream
      ? wrapStreaming(ctx, serviceName, methodName, handler)
      : wrapReplying(ctx, serviceName, methodName, handler);
  });
}

interface Call {
  readonly metadata?: Metadata;
  getPeer(): string;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
}

type Replying = (call: Call, callback: sendUnaryData<unknown>) => void;
type Streaming = (call: Call) => void;

/** Unary and client-streaming handlers: the call ends with the handler's reply. */
function wrapReplying(ctx: RpcContext, service: string, method: string, handler: UntypedHandleCall) {
  const inner = handler as unknown as Replying;
  const wrapped: Replying = (call, callback) => {
    const end = begin(ctx, service, method, call);
    call.once("cancelled", () => end(cancelledCode(call)));
    inner(call, (err, ...rest) => {
      end(err ? codeOf(err) : Status.OK);
      callback(err, ...rest);
    });
  };
  return wrapped as unknown as UntypedHandleCall;
}

/** Server-streaming and bidi handlers: the call ends when its stream does. */
function wrapStreaming(ctx: RpcContext, service: string, method: string, handler: UntypedHandleCall) {
  const inner = handler as unknown as Streaming;
  const wrapped: Streaming = (call) => {
    const end = begin(ctx, service, method, call);
    let code: Status | undefined;
    // Handlers end a stream with an error status by emitting "error" (grpc-js then sends it).
    call.once("error", (err) => {
      code ??= codeOf(err);
    });
    call.once("cancelled", () => end(cancelledCode(call)));
    call.once("finish", () => end(code ?? Status.OK));
    // Destroyed without finishing: the client did not get a status from us.
    call.once("close", () => end(code ?? Status.CANCELLED));
    inner(call);
  };
  return wrapped as unknown as UntypedHandleCall;
}

/** Starts timing a call; returns its idempotent end. */
function begin(ctx: RpcContext, service: string, method: string, call: Call): (code: Status) => void {
  const started = performance.now();
  const observer = ctx.observer;
  observer?.started(service, method);
  let ended = false;
  return (code) => {
    if (ended) return;
    ended = true;
    const ms = performance.now() - started;
    observer?.ended(service, method, code, ms / 1000);
    if (ctx.logger.isLevelEnabled("debug")) {
      ctx.logger.debug(
        {
          method: `${service}/${method}`,
          code: Status[code],
          ms: Math.round(ms * 1000) / 1000,
          peer: peerOf(call),
        },
        "rpc",
      );
    }
  };
}

/** A call grpc-js reports as cancelled: ended by the client, or idle-ended by stream-limits.ts. */
function cancelledCode(call: Call): Status {
  return statusSentHere(call.metadata) ?? Status.CANCELLED;
}

function codeOf(err: unknown): Status {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" && Number.isInteger(code) && code >= 0 && code <= 16
    ? (code as Status)
    : Status.UNKNOWN;
}

function peerOf(call: Call): string {
  try {
    return call.getPeer();
  } catch {
    return "unknown";
  }
}
