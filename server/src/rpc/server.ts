/**
 * The gRPC server: binds, registers every service, and drains gracefully.
 *
 * Startup: `startRpcServer` binds before the logs are opened, with health NOT_SERVING and every
 * broker call refused with UNAVAILABLE (starting.ts), so probes can connect during a long recovery;
 * `serve(core)` then lets calls through and turns health SERVING.
 *
 * Connection age (max.connection.age.ms): grpc-js sends each connection a GOAWAY after that age
 * (±10% jitter) and closes it after the grace (max.connection.age.grace.ms); new calls go over a new
 * connection, which a load balancer may route to another replica. Calls still open at the end of
 * the grace, such as following Fetch streams, fail with UNAVAILABLE and clients resume them.
 *
 * Shutdown order (each step bounded by shutdown.timeout.ms in total):
 * 1. health → NOT_SERVING; group members are asked to commit and give up their partitions and get
 *    a bounded time to (new JoinGroups are refused, other calls still work); then new calls are
 *    refused with UNAVAILABLE;
 * 2. stop accepting connections and calls (tryShutdown) and end following Fetch streams with
 *    UNAVAILABLE (they never finish on their own);
 * 3. wait for the calls in progress (produces finishing their appends and fsyncs), up to the
 *    deadline; give sessions a short grace to deliver final statuses, then cancel whatever is
 *    left, such as health Watch streams (forceShutdown).
 * The caller then fsyncs and closes the logs and writes the clean-shutdown marker.
 */
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { AdminServiceService } from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { ClusterServiceService } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import { GroupServiceService } from "../../../clients/ts/src/gen/rill/v1/group.js";
import type { BrokerCore } from "../broker/broker.js";
import { StartingError } from "../broker/errors.js";
import { type BrokerConfig, parseListen, SETTINGS } from "../config.js";
import type { Logger } from "../logger.js";
import { adminServiceImplementation } from "./admin-service.js";
import { clusterServiceImplementation } from "./cluster-service.js";
import type { RpcContext } from "./context.js";
import { groupServiceImplementation } from "./group-service.js";
import { Health } from "./health.js";
import { logServiceDefinition, logServiceImplementation } from "./log-service.js";
import { instrumentServer } from "./observe.js";
import { addReflection } from "./reflection.js";
import { refusedWhileStarting } from "./starting.js";

const MAX_BATCH_BYTES_BOUND = SETTINGS.find((s) => s.key === "max.batch.bytes")!.max!;

/** At most this long of a drain goes to group members committing and releasing their partitions. */
const GROUP_DRAIN_MS = 5000;

/** After in-flight calls ended, how long sessions get to flush final statuses before they are cut. */
const STATUS_GRACE_MS = 1000;

export interface RpcServer {
  /** "host:port" actually bound (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  readonly health: Health;
  readonly context: RpcContext;
  /** Serves calls on `core` (until then they get UNAVAILABLE) and turns health SERVING. */
  serve(core: BrokerCore): void;
  /** Drains and stops the server; resolves when every call has ended. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Binds and answers health (NOT_SERVING) and reflection; broker calls wait for `serve(core)`. */
export async function startRpcServer(config: BrokerConfig, logger: Logger): Promise<RpcServer> {
  const { host, port: wantedPort } = parseListen(config.listen);
  const server = new Server({
    "grpc.max_receive_message_length": config.maxReceiveMessageBytes,
    // A response holds at most fetch.max.bytes of batches, or one batch that is larger (a topic may
    // allow batches up to the max.batch.bytes bound of config.ts).
    "grpc.max_send_message_length": config.fetchMaxBytes + MAX_BATCH_BYTES_BOUND + 64 * 1024,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    ...(config.maxConnectionAgeMs === -1
      ? {}
      : {
          "grpc.max_connection_age_ms": config.maxConnectionAgeMs,
          "grpc.max_connection_age_grace_ms": config.maxConnectionAgeGraceMs,
        }),
  });
  let core: BrokerCore | undefined;
  const context: RpcContext = {
    get core() {
      if (!core) throw new StartingError();
      return core;
    },
    logger: logger.child({ component: "rpc" }),
    draining: false,
    streams: new Set(),
    inflight: new Set(),
  };
  // Every handler added from here on is timed, logged at debug level and reported (observe.ts).
  instrumentServer(server, context);
  const health = new Health();
  const hostPort = host.includes(":") ? `[${host}]:${wantedPort}` : `${host}:${wantedPort}`;
  let boundPort = wantedPort;

  const add = (definition: ServiceDefinition, impl: UntypedServiceImplementation) =>
    server.addService(
      definition,
      refusedWhileStarting(definition, impl, () => core !== undefined, context.logger),
    );
  add(logServiceDefinition, logServiceImplementation(context));
  add(AdminServiceService as unknown as ServiceDefinition, adminServiceImplementation(context));
  add(
    ClusterServiceService as unknown as ServiceDefinition,
    clusterServiceImplementation(context, () => ({ host, port: boundPort })),
  );
  add(GroupServiceService as unknown as ServiceDefinition, groupServiceImplementation(context));
  health.addToServer(server);
  addReflection(server);

  boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort, ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    );
  });
  const address = host.includes(":") ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;

  const serve = (opened: BrokerCore) => {
    if (stopping) return; // a shutdown began: stay NOT_SERVING
    core = opened;
    health.setAll("SERVING");
  };

  let stopping: Promise<void> | undefined;
  const shutdown = (timeoutMs: number): Promise<void> => {
    stopping ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      health.setAll("NOT_SERVING");
      // Group members commit and hand back their partitions while the server still takes every
      // call but JoinGroup (a member's handler may still produce, or fetch, to finish its record).
      await core?.groups.drain(Math.min(GROUP_DRAIN_MS, timeoutMs / 2));
      context.draining = true;
      // No new connections or calls; calls in progress go on. Resolves once every session closed.
      const closed = new Promise<"closed">((resolve) => server.tryShutdown(() => resolve("closed")));
      for (const s of [...context.streams]) s.drain();
      const until = (ms: number) =>
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), Math.max(0, ms)).unref());
      const settled = await Promise.race([
        Promise.allSettled([...context.inflight]),
        until(deadline - Date.now()),
      ]);
      // Statuses of ended calls still have to reach their clients; streams we do not own (health
      // Watch) never end by themselves, so wait for the sessions to close only for a short grace.
      const outcome =
        settled === "timeout"
          ? "timeout"
          : await Promise.race([closed, until(Math.min(STATUS_GRACE_MS, deadline - Date.now()))]);
      if (settled === "timeout")
        logger.warn({ timeoutMs }, "calls still open at the shutdown deadline; cancelling them");
      if (outcome !== "closed") server.forceShutdown();
    })();
    return stopping;
  };

  return { address, port: boundPort, health, context, serve, shutdown };
}
