/**
 * The HTTP/2 receive window the broker advertises (`receive.window.bytes`), per stream and per
 * connection.
 *
 * Why: grpc-js servers keep Node's default 64 KiB windows and have no option to change them (the
 * client side has `grpc-node.flow_control_window`; grpc-node PR #3058, open, adds it to servers;
 * 1.14.7 has nothing). With 64 KiB a producer can have at most 64 KiB in the broker not yet read,
 * so while the event loop appends the previous batches the client's next writes stall, and a
 * 16 MiB Produce stream crawls in 64 KiB steps. 1 MiB (gRPC Java's default) measured +14–19 %
 * Producer throughput (BENCHMARKS.md). Bound: per stream. A stream the broker is not reading (a
 * ProduceSession past max.inflight.batches.per.session, a Produce waiting out a quota) holds at most
 * the window of bytes sent and unread (64 KiB before); Node hands the connection-level window back
 * as data arrives, so per connection that is up to max.concurrent.streams windows, and broker-wide
 * up to max.open.streams windows, on top of what those handlers already hold.
 *
 * How: grpc-js creates its http2 server inside `bindAsync`. While a bind runs, `http2.createServer`
 * and `createSecureServer` are wrapped to add `settings.initialWindowSize` (the per-stream window
 * in the server's SETTINGS) and to raise each new session's connection window
 * (`session.setLocalWindowSize`). The wrappers are removed once no bind is running. Binds that
 * overlap in one process share the window of the latest, and any other http2 server created during
 * a bind gets it too (a broker process binds once).
 */
import http2 from "node:http2";

/** HTTP/2's initial window (RFC 9113 §6.9.2): the advertised value when nothing is changed. */
export const HTTP2_DEFAULT_WINDOW = 65_535;

type CreateServer = (options?: http2.ServerOptions, ...rest: unknown[]) => http2.Http2Server;

let binds = 0;
let window = HTTP2_DEFAULT_WINDOW;
let originals: { createServer: CreateServer; createSecureServer: CreateServer } | undefined;

/** Runs `bind` (a grpc-js `bindAsync`) so that the servers it creates advertise `windowBytes`. */
export async function withReceiveWindow<T>(windowBytes: number, bind: () => Promise<T>): Promise<T> {
  window = windowBytes;
  if (binds++ === 0) install();
  try {
    return await bind();
  } finally {
    if (--binds === 0) uninstall();
  }
}

function install(): void {
  const module = http2 as unknown as Record<"createServer" | "createSecureServer", CreateServer>;
  originals = { createServer: module.createServer, createSecureServer: module.createSecureServer };
  module.createServer = widened(originals.createServer);
  module.createSecureServer = widened(originals.createSecureServer);
}

function uninstall(): void {
  if (originals === undefined) return;
  const module = http2 as unknown as Record<"createServer" | "createSecureServer", CreateServer>;
  module.createServer = originals.createServer;
  module.createSecureServer = originals.createSecureServer;
  originals = undefined;
}

function widened(create: CreateServer): CreateServer {
  return function (this: unknown, options?: http2.ServerOptions, ...rest: unknown[]) {
    const size = window;
    const server = create.call(
      this,
      { ...options, settings: { ...options?.settings, initialWindowSize: size } },
      ...rest,
    );
    server.on("session", (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(size);
      } catch {
        // a session already closing: nothing to widen
      }
    });
    return server;
  };
}
