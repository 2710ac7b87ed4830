import { describe, expect, it } from "vitest";
import { startTestBroker } from "./helpers/broker.js";
import { healthClient } from "./helpers/health.js";

describe("integration > health", () => {
  it("reports SERVING per service and NOT_SERVING to watchers as soon as a drain begins", async () => {
    // Ensures a mesh sees the broker leave before its streams are ended (grpc.health.v1 Watch).
    const tb = await startTestBroker();
    const client = healthClient(tb.address);
    try {
      for (const service of [
        "",
        "rill.v1.LogService",
        "rill.v1.AdminService",
        "rill.v1.ClusterService",
        "rill.v1.GroupService",
      ]) {
        expect(await client.check(service), service).toBe("SERVING");
      }
      const { seen } = client.watch("rill.v1.LogService");
      for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const stopping = tb.stop();
      while (!seen.includes("NOT_SERVING")) await new Promise((r) => setTimeout(r, 5));
      await stopping;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
    }
  });
});
