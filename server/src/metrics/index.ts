/**
 * Starting the metrics endpoint of a broker: when metrics.port is not -1, a BrokerMetrics observes
 * the broker and an HTTP server on the broker's listen host serves it at /metrics.
 */
import type { BrokerCore } from "../broker/broker.js";
import { parseListen } from "../config.js";
import type { Logger } from "../logger.js";
import type { RpcContext } from "../rpc/context.js";
import { startMetricsHttpServer } from "./http.js";
import { BrokerMetrics } from "./metrics.js";

export interface MetricsEndpoint {
  /** "host:port" serving /metrics. */
  readonly address: string;
  readonly metrics: BrokerMetrics;
  /** Stops observing and closes the HTTP server. Idempotent. */
  close(): Promise<void>;
}

/** undefined when metrics are off (metrics.port -1). */
export async function startMetrics(
  core: BrokerCore,
  rpc: RpcContext,
  logger: Logger,
): Promise<MetricsEndpoint | undefined> {
  const { metricsPort, listen } = core.config;
  if (metricsPort < 0) return undefined;
  const metrics = new BrokerMetrics(core, rpc);
  const http = await startMetricsHttpServer(
    metrics.registry,
    parseListen(listen).host,
    metricsPort,
    logger.child({ component: "metrics" }),
  );
  metrics.attach();
  logger.info({ address: http.address, url: `http://${http.address}/metrics` }, "metrics serving");
  return {
    address: http.address,
    metrics,
    async close() {
      metrics.detach();
      await http.close();
    },
  };
}
