/**
 * Undecodable requests get INVALID_ARGUMENT, for every service the server registers (ours, health
 * and reflection). grpc-js answers a request whose deserializer throws with INTERNAL ("Error
 * deserializing request"), which tells a client the broker is broken when the client is; and
 * DESIGN §2 promises INVALID_ARGUMENT with a message saying what to do.
 *
 * `guardRequestDecoding(server)` makes every later `addService` register:
 * - a definition whose request deserializers never throw: a decoding error becomes a
 *   `MalformedRequest` value instead of the message;
 * - handlers that answer a MalformedRequest with INVALID_ARGUMENT before the service's handler
 *   sees it: unary and server-streaming calls are answered without calling the handler at all; on
 *   a client-streaming or bidi call the first malformed message ends the call with
 *   INVALID_ARGUMENT and it and every later message are dropped (messages before it were handled
 *   normally, as they would have been with grpc-js's own behaviour).
 * Invariant: no handler ever receives a MalformedRequest, so nothing undecodable reaches state.
 * Deserializers that never throw (the lazy Produce views) are unaffected.
 */
import {
  type Server,
  type ServerDuplexStream,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
  status,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";

const MALFORMED = Symbol("malformed request");

export interface MalformedRequest {
  readonly [MALFORMED]: string;
}

export function isMalformedRequest(value: unknown): value is MalformedRequest {
  return typeof value === "object" && value !== null && MALFORMED in value;
}

/** The status a malformed request gets: what was wrong, and what to do about it. */
export function malformedRequestError(path: string, reason: string): Partial<ServiceError> {
  const message = `the ${path} request is not a valid Protobuf message (${reason}); check that the client encodes the request type of this method from the broker's protos`;
  return { code: status.INVALID_ARGUMENT, details: message, message };
}

function guardDeserializer(deserialize: (b: Buffer) => unknown): (b: Buffer) => unknown {
  return (bytes: Buffer) => {
    try {
      return deserialize(bytes);
    } catch (err) {
      return { [MALFORMED]: err instanceof Error ? err.message : String(err) } satisfies MalformedRequest;
    }
  };
}

type Unary = (call: { request: unknown }, cb: sendUnaryData<unknown>) => void;
type ServerStreaming = (call: ServerWritableStream<unknown, unknown>) => void;
type RequestStreaming = (call: ServerDuplexStream<unknown, unknown>, cb?: sendUnaryData<unknown>) => void;

function guardHandler(
  path: string,
  requestStream: boolean,
  responseStream: boolean,
  handler: UntypedHandleCall,
): UntypedHandleCall {
  if (!requestStream && !responseStream) {
    const inner = handler as unknown as Unary;
    const guarded: Unary = (call, cb) => {
      if (isMalformedRequest(call.request)) cb(malformedRequestError(path, call.request[MALFORMED]), null);
      else inner(call, cb);
    };
    return guarded as unknown as UntypedHandleCall;
  }
  if (!requestStream) {
    const inner = handler as unknown as ServerStreaming;
    const guarded: ServerStreaming = (call) => {
      if (isMalformedRequest(call.request))
        call.emit("error", malformedRequestError(path, call.request[MALFORMED]));
      else inner(call);
    };
    return guarded as unknown as UntypedHandleCall;
  }
  const inner = handler as unknown as RequestStreaming;
  const guarded: RequestStreaming = (call, cb) => {
    // grpc-js hands each decoded message to the stream with push(); intercept it there so the
    // handler never reads a malformed one.
    const push = call.push.bind(call);
    let failed = false;
    call.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (failed) return false;
      if (!isMalformedRequest(chunk)) return push(chunk, encoding);
      failed = true;
      const err = malformedRequestError(path, chunk[MALFORMED]);
      if (cb) cb(err, null);
      else call.emit("error", err);
      return false;
    };
    inner(call, cb);
  };
  return guarded as unknown as UntypedHandleCall;
}

/** `definition` with never-throwing request deserializers, and `impl` with guarded handlers. */
export function guardService(
  definition: ServiceDefinition,
  impl: UntypedServiceImplementation,
): [ServiceDefinition, UntypedServiceImplementation] {
  const guardedDefinition: Record<string, ServiceDefinition[string]> = {};
  const guardedImpl: UntypedServiceImplementation = { ...impl };
  for (const [key, method] of Object.entries(definition)) {
    guardedDefinition[key] = { ...method, requestDeserialize: guardDeserializer(method.requestDeserialize) };
    // grpc-js looks a handler up by the definition's key, then by its originalName.
    const name = impl[key] !== undefined ? key : method.originalName;
    const handler = name === undefined ? undefined : impl[name];
    if (name === undefined || handler === undefined) continue;
    guardedImpl[name] = guardHandler(method.path, method.requestStream, method.responseStream, handler);
  }
  return [guardedDefinition as ServiceDefinition, guardedImpl];
}

/** Makes every later `server.addService` register the guarded definition and handlers. */
export function guardRequestDecoding(server: Server): void {
  const addService = server.addService.bind(server);
  server.addService = (service, implementation) => addService(...guardService(service, implementation));
}
