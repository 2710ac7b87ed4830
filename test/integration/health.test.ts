import { credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { describe, expect, it } from "vitest";
import { startTestBroker } from "./helpers/broker.js";

interface HealthResponse {
  status: string;
}
interface HealthClient {
  check(req: { service: string }, cb: (err: ServiceError | null, res: HealthResponse) => void): void;
  watch(req: { service: string }): NodeJS.EventEmitter & { cancel(): void };
  close(): void;
}
const HealthClientCtor = makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => HealthClient;

describe("integration > health", () => {
  it("reports SERVING per service and NOT_SERVING to watchers as soon as a drain begins", async () => {
    // Ensures a mesh sees the broker leave before its streams are ended (grpc.health.v1 Watch).
    const tb = await startTestBroker();
    const client = new HealthClientCtor(tb.address, credentials.createInsecure());
    try {
      for (const service of [
        "",
        "rill.v1.LogService",
        "rill.v1.AdminService",
        "rill.v1.ClusterService",
        "rill.v1.GroupService",
      ]) {
        const res = await new Promise<HealthResponse>((resolve, reject) =>
          client.check({ service }, (err, r) => (err ? reject(err) : resolve(r))),
        );
        expect(res.status, service).toBe("SERVING");
      }
      const watch = client.watch({ service: "rill.v1.LogService" });
      const seen: string[] = [];
      const notServing = new Promise<void>((resolve) => {
        watch.on("data", (r: HealthResponse) => {
          seen.push(r.status);
          if (r.status === "NOT_SERVING") resolve();
        });
      });
      watch.on("error", () => {}); // the stream is cut when the server stops
      for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const stopping = tb.stop();
      await notServing;
      await stopping;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
    }
  });
});
