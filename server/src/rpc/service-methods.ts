/**
 * Wrapping every method of a service implementation before `server.addService` registers it, as
 * the RPC layer's interceptors (observe.ts, auth/guard.ts) do.
 *
 * Invariants: a method's handler is looked up the way grpc-js's addService does (the definition's
 * key, else its `originalName`); a method with no handler is left out (grpc-js then answers
 * UNIMPLEMENTED, as without the wrapper); every other property of the implementation is kept.
 */
import type {
  MethodDefinition,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";

/** `implementation` with the handler of each method of `service` replaced by `wrap(def, handler)`. */
export function wrapMethods(
  service: ServiceDefinition,
  implementation: UntypedServiceImplementation,
  wrap: (def: MethodDefinition<unknown, unknown>, handler: UntypedHandleCall) => UntypedHandleCall,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = { ...implementation };
  for (const [key, def] of Object.entries(service)) {
    const name = implementation[key] !== undefined ? key : def.originalName;
    const handler = name === undefined ? undefined : implementation[name];
    if (name === undefined || handler === undefined) continue;
    out[name] = wrap(def, handler);
  }
  return out;
}

/** "/rill.v1.LogService/Produce" → ["rill.v1.LogService", "Produce"]. */
export function splitMethodPath(path: string): [service: string, method: string] {
  const slash = path.lastIndexOf("/");
  return [path.slice(1, slash), path.slice(slash + 1)];
}
