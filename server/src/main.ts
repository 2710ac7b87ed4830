/**
 * Starting and stopping a broker: `startBroker` for embedding and tests, `runBroker` for the
 * `rill broker` command (what `npm start` runs), which adds signal handling and exit codes.
 */
import { resolve } from "node:path";
import { BrokerCore } from "./broker/broker.js";
import { type Clock, systemClock } from "./clock.js";
import { type BrokerConfig, loadConfig } from "./config.js";
import { tuneGarbageCollector } from "./gc-tuning.js";
import { createLogger, type Logger, silentLogger } from "./logger.js";
import { type MetricsEndpoint, startMetrics } from "./metrics/index.js";
import { type RpcServer, startRpcServer } from "./rpc/server.js";
import type { FileSystem } from "./storage/fs.js";

export interface Broker {
  /** host:port the broker serves on. */
  readonly address: string;
  readonly port: number;
  readonly dataDir: string;
  readonly config: BrokerConfig;
  readonly core: BrokerCore;
  readonly server: RpcServer;
  /** host:port serving Prometheus metrics at /metrics; undefined when metrics.port is -1. */
  readonly metricsAddress: string | undefined;
  /** Graceful: drain calls, fsync and close logs, write the clean-shutdown marker. Idempotent. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  clock?: Clock;
  /** The file-system seam of the topic logs (default node:fs); tests slow or break storage with it. */
  fs?: FileSystem;
  /** Called once the server listens, before the logs are opened (health is NOT_SERVING until then). */
  onListening?: (address: string) => void;
}

export type ConfigOverrides = Parameters<typeof loadConfig>[2];

/** Starts a broker from typed overrides on top of the defaults (no flags, no env). */
export function startBroker(overrides: ConfigOverrides = {}, options: StartOptions = {}): Promise<Broker> {
  return startBrokerWithConfig(loadConfig({}, {}, overrides), options);
}

export async function startBrokerWithConfig(
  config: BrokerConfig,
  options: StartOptions = {},
): Promise<Broker> {
  const logger = options.logger ?? silentLogger();
  const started = performance.now();
  // Listen first: during a long log recovery a health probe connects and sees NOT_SERVING, and
  // calls get UNAVAILABLE ("the broker is starting") rather than a refused connection.
  const server = await startRpcServer(config, logger);
  logger.info(
    { address: server.address, dataDir: resolve(config.dataDir) },
    "broker listening; opening logs",
  );
  options.onListening?.(server.address);
  let core: BrokerCore;
  try {
    core = await BrokerCore.open(config, logger, options.clock ?? systemClock, options.fs);
  } catch (err) {
    await server.shutdown(0);
    throw err;
  }
  let metrics: MetricsEndpoint | undefined;
  try {
    metrics = await startMetrics(core, server.context, logger);
  } catch (err) {
    await server.shutdown(0);
    await core.close();
    throw err;
  }
  server.serve(core);
  logger.info(
    {
      address: server.address,
      dataDir: resolve(config.dataDir),
      ms: Math.round(performance.now() - started),
    },
    "broker serving",
  );
  let stopping: Promise<void> | undefined;
  return {
    address: server.address,
    port: server.port,
    dataDir: resolve(config.dataDir),
    config,
    core,
    server,
    metricsAddress: metrics?.address,
    shutdown() {
      stopping ??= (async () => {
        logger.info("shutting down: draining calls");
        await server.shutdown(config.shutdownTimeoutMs);
        await core.close();
        await metrics?.close();
        logger.info("stopped cleanly");
      })();
      return stopping;
    },
  };
}

/**
 * Runs a broker until SIGINT/SIGTERM, then shuts down gracefully and exits 0 (1 if the shutdown
 * failed, after a bounded time even if it hangs). A second signal exits at once. A signal while the
 * logs are still being opened exits at once too (1): nothing was served, and the next start
 * recovers again. The handlers are installed first because as PID 1 (in a container) a signal
 * without a handler is ignored, so a long recovery could not be stopped.
 */
export async function runBroker(config: BrokerConfig): Promise<void> {
  const logger = createLogger({ level: config.logLevel, pretty: config.logPretty });
  const gcFlags = tuneGarbageCollector();
  if (gcFlags.length > 0) logger.debug({ flags: gcFlags }, "V8 garbage-collection flags set (gc-tuning.ts)");
  let broker: Broker | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (!broker) {
      logger.warn({ signal }, "signal received while opening the logs: exiting");
      void flushLogger(logger).then(() => process.exit(1));
      return;
    }
    if (signals > 1) {
      logger.warn({ signal }, "second signal: exiting without a clean shutdown");
      process.exit(130);
    }
    logger.info({ signal }, "signal received");
    const hardStop = setTimeout(() => {
      logger.error("shutdown did not finish in time; exiting");
      process.exit(1);
    }, config.shutdownTimeoutMs + 10_000);
    hardStop.unref();
    broker.shutdown().then(
      async () => {
        await flushLogger(logger);
        process.exit(0);
      },
      async (err) => {
        logger.error({ err }, "shutdown failed");
        await flushLogger(logger);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    broker = await startBrokerWithConfig(config, { logger });
  } catch (err) {
    logger.fatal({ err }, "could not start the broker");
    await flushLogger(logger);
    process.exit(1);
  }
}

function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
