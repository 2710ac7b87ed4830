/**
 * grpc.health.v1 (Check and Watch) per service: "" (the whole broker), rill.v1.LogService,
 * rill.v1.AdminService, rill.v1.ClusterService and rill.v1.GroupService. NOT_SERVING until the logs are recovered and
 * again as soon as a drain begins, so a mesh stops routing new calls before streams are ended.
 */
import type { Server } from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";

export const HEALTH_SERVICES = [
  "",
  "rill.v1.LogService",
  "rill.v1.AdminService",
  "rill.v1.ClusterService",
  "rill.v1.GroupService",
] as const;

export class Health {
  private readonly impl = new HealthImplementation(
    Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "NOT_SERVING" as ServingStatus])),
  );

  addToServer(server: Server): void {
    this.impl.addToServer(server);
  }

  setAll(status: ServingStatus): void {
    for (const s of HEALTH_SERVICES) this.impl.setStatus(s, status);
  }
}
