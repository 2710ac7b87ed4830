/**
 * The broker advertises `receive.window.bytes` as its HTTP/2 receive window, per stream (SETTINGS
 * initial window) and per connection (WINDOW_UPDATE), although grpc-js servers have no option for
 * it (server/src/rpc/receive-window.ts). Checked with a raw node:http2 client over 127.0.0.1.
 */
import http2 from "node:http2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeTestPki, type TestPki } from "../helpers/certs.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki();
});
afterAll(async () => {
  await pki?.cleanup();
});

const brokers: TestBroker[] = [];
const sessions: http2.ClientHttp2Session[] = [];

afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const b of brokers.splice(0)) await b.stop();
});

/** The broker's SETTINGS initial window, and the connection window it grants once settled. */
async function windowsOf(address: string, ca?: Buffer): Promise<{ stream: number; connection: number }> {
  const session = ca ? http2.connect(`https://${address}`, { ca }) : http2.connect(`http://${address}`);
  sessions.push(session);
  const settings = await new Promise<http2.Settings>((resolve, reject) => {
    session.once("remoteSettings", resolve);
    session.once("error", reject);
  });
  // The connection-level WINDOW_UPDATE follows the SETTINGS frame; a ping round trip covers it.
  await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
  return { stream: settings.initialWindowSize!, connection: session.state.remoteWindowSize! };
}

describe("integration > HTTP/2 receive window", () => {
  it("advertises receive.window.bytes per stream and per connection, 1 MiB by default", async () => {
    const broker = await startTestBroker();
    brokers.push(broker);
    expect(await windowsOf(broker.address)).toEqual({ stream: 1_048_576, connection: 1_048_576 });
    // The wrappers are gone once the bind is done: other http2 servers of the process keep Node's.
    expect(http2.createServer.name).toBe("createServer");
  });

  it("advertises it over TLS too", async () => {
    const broker = await startTestBroker({
      tlsCert: pki.server.certPath,
      tlsKey: pki.server.keyPath,
      receiveWindowBytes: 2_000_000,
    });
    brokers.push(broker);
    expect(await windowsOf(broker.address, pki.ca.cert)).toEqual({
      stream: 2_000_000,
      connection: 2_000_000,
    });
  });

  it("keeps HTTP/2's default windows when told 65535", async () => {
    const broker = await startTestBroker({ receiveWindowBytes: 65_535 });
    brokers.push(broker);
    expect(await windowsOf(broker.address)).toEqual({ stream: 65_535, connection: 65_535 });
  });
});
