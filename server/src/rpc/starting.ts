/**
 * The server listens before the broker core is open, so health checks and reflection answer while
 * the logs are recovered (health says NOT_SERVING). Until then every call of the broker's own
 * services is refused here with UNAVAILABLE ("the broker is starting"), which clients retry; the
 * service handlers never run before the core exists.
 */
import type {
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { StartingError } from "../broker/errors.js";
import type { Logger } from "../logger.js";
import { toServiceError } from "./status.js";

type AnyHandler = (call: unknown, callback?: sendUnaryData<unknown>) => void;

/** Wraps every method of `impl` so it is refused with UNAVAILABLE while `isReady()` is false. */
export function refusedWhileStarting(
  definition: ServiceDefinition,
  impl: UntypedServiceImplementation,
  isReady: () => boolean,
  logger: Logger,
): UntypedServiceImplementation {
  const wrapped: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(impl)) {
    const streamsResponses = definition[name]?.responseStream === true;
    wrapped[name] = ((call: unknown, callback?: sendUnaryData<unknown>) => {
      if (isReady()) return (handler as AnyHandler)(call, callback);
      const err = toServiceError(new StartingError(), logger);
      if (streamsResponses) (call as ServerWritableStream<unknown, unknown>).emit("error", err);
      else callback!(err, null);
    }) as UntypedServiceImplementation[string];
  }
  return wrapped;
}
