/**
 * A small HTTP server for Prometheus: GET (or HEAD) /metrics answers the registry's text format;
 * every other path is 404 and other methods on /metrics are 405. Nothing else is served.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../logger.js";

export interface MetricsHttpServer {
  /** "host:port" actually bound (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  /** Stops listening and closes open connections (scrapers keep theirs alive). Idempotent. */
  close(): Promise<void>;
}

export async function startMetricsHttpServer(
  registry: Registry,
  host: string,
  port: number,
  logger: Logger,
): Promise<MetricsHttpServer> {
  const server = createServer((req, res) => handle(registry, logger, req, res));
  server.keepAliveTimeout = 65_000; // longer than a usual scrape interval, so connections are reused
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => logger.error({ err }, "metrics server error"));
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    address: host.includes(":") ? `[${host}]:${bound}` : `${host}:${bound}`,
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function handle(registry: Registry, logger: Logger, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? "/").split("?", 1)[0];
  if (path !== "/metrics") {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found: metrics are at /metrics\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
    res.end("use GET\n");
    return;
  }
  registry.metrics().then(
    (body) => {
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    (err: unknown) => {
      logger.error({ err }, "collecting metrics failed");
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("collecting metrics failed\n");
    },
  );
}
