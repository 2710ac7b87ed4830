/** A grpc.health.v1 client for tests: Check as a promise, Watch as a list of statuses seen. */
import { credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

interface HealthResponse {
  status: string;
}
interface RawHealthClient {
  check(req: { service: string }, cb: (err: ServiceError | null, res: HealthResponse) => void): void;
  watch(req: { service: string }): NodeJS.EventEmitter & { cancel(): void };
  close(): void;
}
const HealthClientCtor = makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => RawHealthClient;

export interface HealthClient {
  /** The status of `service` ("" = the whole broker), e.g. "SERVING". */
  check(service: string): Promise<string>;
  /** Watches `service`; `seen` grows with every status the broker sends. */
  watch(service: string): { seen: string[]; cancel(): void };
  close(): void;
}

export function healthClient(address: string): HealthClient {
  const client = new HealthClientCtor(address, credentials.createInsecure());
  return {
    check: (service) =>
      new Promise((resolve, reject) =>
        client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
      ),
    watch(service) {
      const call = client.watch({ service });
      const seen: string[] = [];
      call.on("data", (r: HealthResponse) => seen.push(r.status));
      call.on("error", () => {}); // cancelled, or cut when the server stops
      return { seen, cancel: () => call.cancel() };
    },
    close: () => client.close(),
  };
}
