/**
 * The one entry point of authentication, authorization and quotas: `guardServer` wraps every
 * handler later registered on the server (like observe.ts's `instrumentServer`, and registered
 * after it, so instrumentation stays outermost and counts refused calls with their status).
 *
 * Per call, before the handler runs: the principal is resolved once (principal.ts), an Access is
 * kept for the call (access.ts, found again by produce handlers), the method's rule is checked
 * (rules.ts) and, for list methods, the response is filtered. A refused call gets UNAUTHENTICATED or
 * PERMISSION_DENIED and never reaches its handler.
 * - Health and reflection: served without credentials when auth.public.health /
 *   auth.public.reflection is true; otherwise any authenticated principal may call them (no ACL).
 * - A method with no rule is refused when ACLs are on (closed by default).
 * `createAuth` returns undefined when nothing is configured, and the server then installs no
 * wrapper at all: the broker behaves and performs exactly as without this module.
 */
import type {
  Server,
  ServiceDefinition,
  sendUnaryData,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { BrokerConfig } from "../../config.js";
import type { Logger } from "../../logger.js";
import { splitMethodPath, wrapMethods } from "../service-methods.js";
import { toServiceError } from "../status.js";
import { Access, setAccess } from "./access.js";
import { AclTable } from "./acl.js";
import { PermissionDeniedError } from "./errors.js";
import { type CallWithCredentials, type PrincipalSource, resolvePrincipal } from "./principal.js";
import { Quotas } from "./quota.js";
import { HEALTH_SERVICES, REFLECTION_SERVICES, RULES } from "./rules.js";
import { TokenTable } from "./tokens.js";

export type AuthConfig = Pick<
  BrokerConfig,
  | "authTokensFile"
  | "authAclFile"
  | "authPublicHealth"
  | "authPublicReflection"
  | "quotaProduceBytesPerSecond"
  | "quotaFetchBytesPerSecond"
  | "requireClientCert"
  | "tlsClientCa"
>;

export interface Auth {
  source: PrincipalSource;
  acl: AclTable | undefined;
  quotas: Quotas | undefined;
  publicHealth: boolean;
  publicReflection: boolean;
}

/** Reads the tokens and ACL files (throws AuthFileError); undefined when nothing is configured. */
export function createAuth(config: AuthConfig): Auth | undefined {
  const tokens = config.authTokensFile === undefined ? undefined : TokenTable.load(config.authTokensFile);
  const acl = config.authAclFile === undefined ? undefined : AclTable.load(config.authAclFile);
  const quotas = new Quotas(
    {
      produceBytesPerSecond: config.quotaProduceBytesPerSecond,
      fetchBytesPerSecond: config.quotaFetchBytesPerSecond,
    },
    acl?.quotas,
  );
  const required = tokens !== undefined || config.requireClientCert === true;
  if (!required && acl === undefined && !quotas.active) return undefined;
  return {
    source: { tokens, required, certificates: config.tlsClientCa !== undefined },
    acl,
    quotas: quotas.active ? quotas : undefined,
    publicHealth: config.authPublicHealth,
    publicReflection: config.authPublicReflection,
  };
}

/** Makes every later `server.addService` register guarded handlers. */
export function guardServer(server: Server, auth: Auth, logger: Logger): void {
  const addService = server.addService.bind(server);
  server.addService = (service, implementation) =>
    addService(service, guardService(auth, logger, service, implementation));
}

type Call = CallWithCredentials & {
  request?: unknown;
  emit(event: string, ...args: unknown[]): boolean;
  once(event: string, listener: () => void): unknown;
};

/** Aborts when the client cancels the call or its stream closes (quota waits end with it). */
function endSignal(call: Call): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort();
  call.once("cancelled", abort);
  call.once("close", abort);
  return controller.signal;
}
type Handler = (call: Call, callback?: sendUnaryData<unknown>) => void;

export function guardService(
  auth: Auth,
  logger: Logger,
  service: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): UntypedServiceImplementation {
  return wrapMethods(
    service,
    implementation,
    (def, handler) => guardMethod(auth, logger, def.path, handler as unknown as Handler) as UntypedHandleCall,
  );
}

function guardMethod(auth: Auth, logger: Logger, path: string, inner: Handler): Handler {
  const [serviceName] = splitMethodPath(path);
  const isHealth = HEALTH_SERVICES.includes(serviceName);
  const isReflection = REFLECTION_SERVICES.includes(serviceName);
  if ((isHealth && auth.publicHealth) || (isReflection && auth.publicReflection)) return inner;
  const rule = isHealth || isReflection ? {} : RULES[path];
  return (call, callback) => {
    let access: Access;
    try {
      access = new Access(
        resolvePrincipal(call, auth.source),
        auth.acl,
        auth.quotas,
        auth.quotas && endSignal(call),
      );
      if (rule === undefined) {
        if (auth.acl !== undefined) {
          throw new PermissionDeniedError(
            `${path} has no authorization rule and ACLs are on, so it is refused; report this as a broker bug`,
          );
        }
      } else {
        rule.check?.(call.request, access);
      }
    } catch (err) {
      const status = toServiceError(err, logger);
      if (callback) callback(status, null);
      else call.emit("error", status);
      return;
    }
    setAccess(call, access);
    const filter = rule?.filter;
    if (filter === undefined || callback === undefined || auth.acl === undefined) {
      inner(call, callback);
      return;
    }
    inner(call, (err, res, ...rest) => callback(err, err ? res : (filter(res, access) as never), ...rest));
  };
}
