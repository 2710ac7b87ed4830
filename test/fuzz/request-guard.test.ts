/**
 * rpc/codecs/request-guard.ts on a real grpc-js server (127.0.0.1, port 0) with one method of each
 * kind whose deserializer throws on a 0xff byte: a malformed request gets INVALID_ARGUMENT (not
 * grpc-js's INTERNAL) on unary, server-streaming, client-streaming and bidi calls, and the handler
 * never sees it; the messages before it on a stream are handled as usual.
 */
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guardRequestDecoding, isMalformedRequest } from "../../server/src/rpc/codecs/request-guard.js";
import { RawClient, type RawMethod } from "./helpers/raw-client.js";

const decode = (b: Buffer) => {
  if (b.includes(0xff)) throw new Error("0xff is not allowed");
  return b.toString();
};
const kinds = {
  Unary: [false, false],
  ServerStream: [false, true],
  ClientStream: [true, false],
  Bidi: [true, true],
} as const;

const definition: ServiceDefinition = Object.fromEntries(
  Object.entries(kinds).map(([name, [requestStream, responseStream]]) => [
    name,
    {
      path: `/test.Guarded/${name}`,
      requestStream,
      responseStream,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: decode,
      responseSerialize: (s: string) => Buffer.from(s),
      responseDeserialize: (b: Buffer) => b,
    },
  ]),
);
const methods: RawMethod[] = Object.entries(kinds).map(([name, [requestStream, responseStream]]) => ({
  key: `test.Guarded/${name}`,
  service: "test.Guarded",
  name,
  path: `/test.Guarded/${name}`,
  requestStream,
  responseStream,
}));

/** Every request any handler received, in order. */
const received: unknown[] = [];
let server: Server;
let client: RawClient;

type Stream = NodeJS.EventEmitter & { write(s: string): void; end(): void };

beforeAll(async () => {
  server = new Server();
  guardRequestDecoding(server);
  const impl: Record<string, unknown> = {
    Unary: (call: { request: unknown }, cb: (e: null, r: string) => void) => {
      received.push(call.request);
      cb(null, `got ${call.request}`);
    },
    ServerStream: (call: Stream & { request: unknown }) => {
      received.push(call.request);
      call.write(`got ${call.request}`);
      call.end();
    },
    ClientStream: (call: Stream, cb: (e: null, r: string) => void) => {
      const got: unknown[] = [];
      call.on("data", (m) => {
        received.push(m);
        got.push(m);
      });
      call.on("end", () => cb(null, `got ${got.join(",")}`));
    },
    Bidi: (call: Stream) => {
      call.on("data", (m) => {
        received.push(m);
        call.write(`got ${m}`);
      });
      call.on("end", () => call.end());
    },
  };
  server.addService(definition, impl as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  client = new RawClient(`127.0.0.1:${port}`, methods);
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
});

const ok = Buffer.from("ok");
const bad = Buffer.from([0x61, 0xff]);

describe("request guard", () => {
  for (const m of methods) {
    it(`${m.name}: valid requests reach the handler; a malformed one gets INVALID_ARGUMENT and does not`, async () => {
      const fine = await client.send(m.key, m.requestStream ? [ok, ok] : [ok], 5000);
      expect(status[fine.code]).toBe("OK");
      expect(fine.messages.map(String).join("|")).toMatch(/got ok/);

      received.length = 0;
      const requests = m.requestStream ? [ok, bad, ok] : [bad];
      const refused = await client.send(m.key, requests, 5000);
      expect(status[refused.code]).toBe("INVALID_ARGUMENT");
      expect(refused.details).toMatch(/not a valid Protobuf message \(0xff is not allowed\)/);
      expect(refused.details).toContain(`/test.Guarded/${m.name}`);
      // Only the messages before the malformed one were handled.
      expect(received).toEqual(m.requestStream ? ["ok"] : []);
      expect(received.some(isMalformedRequest)).toBe(false);
    });
  }
});
