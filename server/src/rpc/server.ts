/**
 * The gRPC server: binds, registers every service, and drains gracefully.
 *
 * Startup: `startRpcServer` binds before the logs are opened, with health NOT_SERVING and every
 * broker call refused with UNAVAILABLE (starting.ts), so probes can connect during a long recovery;
 * `serve(core)` then lets calls through and turns health SERVING.
 *
 * Slow and vanished clients: keepalive pings (keepalive.time.ms / keepalive.timeout.ms) close the
 * connections of clients that stopped answering; max.concurrent.streams bounds the streams of one
 * connection (HTTP/2: the client queues the rest); max.connection.idle.ms closes connections with no
 * call; the broker-wide max.open.streams and stream.idle.timeout.ms are an interceptor
 * (stream-limits.ts).
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
 * 2. stop accepting connections and calls (tryShutdown), end following Fetch streams with
 *    UNAVAILABLE (they never finish on their own) and stop quota throttling;
 * 3. wait for the calls in progress (produces finishing their appends and fsyncs), up to the
 *    deadline; give sessions a short grace to deliver final statuses, then cancel whatever is
 *    left, such as health Watch streams (forceShutdown).
 * The caller then fsyncs and closes the logs and writes the clean-shutdown marker.
 */
import { Server, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { AdminServiceService } from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { ClusterServiceService } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import { GroupServiceService } from "../../../clients/ts/src/gen/rill/v1/group.js";
import type { BrokerCore } from "../broker/broker.js";
import { StartingError } from "../broker/errors.js";
import { type BrokerConfig, parseListen, SETTINGS } from "../config.js";
import type { Logger } from "../logger.js";
import { adminServiceImplementation } from "./admin-service.js";
import { createAuth, guardServer } from "./auth/guard.js";
import { clusterServiceImplementation } from "./cluster-service.js";
import { guardRequestDecoding } from "./codecs/request-guard.js";
import type { RpcContext } from "./context.js";
import { groupServiceImplementation } from "./group-service.js";
import { Health } from "./health.js";
import { logServiceDefinition, logServiceImplementation } from "./log-service.js";
import { instrumentServer } from "./observe.js";
import { withReceiveWindow } from "./receive-window.js";
import { addReflection } from "./reflection.js";
import { refusedWhileStarting } from "./starting.js";
import { StreamLimits } from "./stream-limits.js";
import { buildServerCredentials } from "./tls.js";

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
  /** Open streaming calls and the calls refused or ended by the broker-wide limits. */
  readonly streamLimits: StreamLimits;
  /** Serves calls on `core` (until then they get UNAVAILABLE) and turns health SERVING. */
  serve(core: BrokerCore): void;
  /** Drains and stops the server; resolves when every call has ended. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Binds and answers health (NOT_SERVING) and reflection; broker calls wait for `serve(core)`. */
export async function startRpcServer(config: BrokerConfig, logger: Logger): Promise<RpcServer> {
  const { host, port: wantedPort } = parseListen(config.listen);
  // Refuses plaintext on a non-loopback address without --insecure and reads the TLS files, all
  // before anything binds (tls.ts).
  const { credentials } = await buildServerCredentials(config, logger);
  const streamLimits = new StreamLimits(config, logger.child({ component: "rpc" }));
  const server = new Server({
    "grpc.max_receive_message_length": config.maxReceiveMessageBytes,
    // A response holds at most fetch.max.bytes of batches, or one batch that is larger (a topic may
    // allow batches up to the max.batch.bytes bound of config.ts).
    "grpc.max_send_message_length": config.fetchMaxBytes + MAX_BATCH_BYTES_BOUND + 64 * 1024,
    // Vanished clients: every connection is pinged; one that does not answer is closed and its
    // calls end. grpc-js servers enforce no minimum ping interval on clients (no too_many_pings
    // GOAWAY), so clients' own keepalive pings (the TS client: every 30 s) are always accepted.
    "grpc.keepalive_time_ms": config.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": config.keepaliveTimeoutMs,
    // Per connection: further streams wait in the client (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    "grpc.max_concurrent_streams": config.maxConcurrentStreams,
    ...(config.maxConnectionIdleMs === -1
      ? {}
      : { "grpc.max_connection_idle_ms": config.maxConnectionIdleMs }),
    ...(config.maxConnectionAgeMs === -1
      ? {}
      : {
          "grpc.max_connection_age_ms": config.maxConnectionAgeMs,
          "grpc.max_connection_age_grace_ms": config.maxConnectionAgeGraceMs,
        }),
    // Broker-wide: max.open.streams and stream.idle.timeout.ms (stream-limits.ts).
    interceptors: [streamLimits.interceptor],
  });
  let core: BrokerCore | undefined;
  // Reads the tokens and ACL files: a bad one fails the start before anything listens.
  const auth = createAuth(config);
  const context: RpcContext = {
    auth,
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
  // Undecodable requests of every service get INVALID_ARGUMENT, not grpc-js's INTERNAL.
  guardRequestDecoding(server);
  // Then authenticated, authorized and throttled (auth/guard.ts), inside the instrumentation.
  if (auth) guardServer(server, auth, context.logger);
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

  // grpc-js has no server option for the HTTP/2 window (receive-window.ts).
  boundPort = await withReceiveWindow(
    config.receiveWindowBytes,
    () =>
      new Promise<number>((resolve, reject) => {
        server.bindAsync(hostPort, credentials, (err, port) => (err ? reject(err) : resolve(port)));
      }),
  );
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
      // Quota waits end (auth/quota.ts): calls finish instead of paying their debt to the deadline.
      context.auth?.quotas?.release();
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

  return { address, port: boundPort, health, context, streamLimits, serve, shutdown };
}
