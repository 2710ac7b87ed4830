/**
 * The phase-7 ceiling server: bare grpc-js with an identity codec and no storage. Run as its own
 * process (`node ceiling-server.js`), it listens on 127.0.0.1 (any free port), prints
 * "ceiling listening PORT" and serves until SIGTERM:
 * - Upload (client streaming): counts the messages and bytes it receives and answers them (two
 *   float64s, big-endian);
 * - Download (server streaming): the request holds a count and a size (two uint32s, big-endian);
 *   it sends `count` messages of `size` bytes, waiting for 'drain' when grpc-js's buffer is full
 *   (as the broker's Fetch does).
 * It advertises the broker's default HTTP/2 receive window (`receive.window.bytes`,
 * server/src/rpc/receive-window.ts), so the ceiling and the broker use the same transport.
 */
import { fileURLToPath } from "node:url";
import {
  Server,
  ServerCredentials,
  type ServerReadableStream,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { SETTINGS } from "../../../../server/src/config.js";
import { withReceiveWindow } from "../../../../server/src/rpc/receive-window.js";

const identity = (b: Buffer): Buffer => b;
const codec = {
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};

/** The two methods, for the server and for makeGenericClientConstructor. */
export const CEILING_SERVICE = {
  upload: { path: "/rill.bench.Ceiling/Upload", requestStream: true, responseStream: false, ...codec },
  download: { path: "/rill.bench.Ceiling/Download", requestStream: false, responseStream: true, ...codec },
} as const satisfies ServiceDefinition;

function upload(call: ServerReadableStream<Buffer, Buffer>, cb: sendUnaryData<Buffer>): void {
  let messages = 0;
  let bytes = 0;
  call.on("data", (b: Buffer) => {
    messages++;
    bytes += b.length;
  });
  call.on("end", () => {
    const res = Buffer.alloc(16);
    res.writeDoubleBE(messages, 0);
    res.writeDoubleBE(bytes, 8);
    cb(null, res);
  });
  call.on("error", () => {});
}

function download(call: ServerWritableStream<Buffer, Buffer>): void {
  const count = call.request.readUInt32BE(0);
  const size = call.request.readUInt32BE(4);
  const message = Buffer.alloc(size, 0x5a);
  let sent = 0;
  let cancelled = false;
  call.on("cancelled", () => {
    cancelled = true;
  });
  const pump = (): void => {
    while (sent < count && !cancelled) {
      sent++;
      if (!call.write(message)) {
        call.once("drain", pump);
        return;
      }
    }
    if (!cancelled) call.end();
  };
  pump();
}

export function startCeilingServer(): Promise<{ server: Server; port: number }> {
  const server = new Server({
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });
  server.addService(CEILING_SERVICE, { upload, download });
  const window = Number(SETTINGS.find((s) => s.key === "receive.window.bytes")!.default);
  return withReceiveWindow(
    window,
    () =>
      new Promise((resolve, reject) => {
        server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
          if (err) reject(err);
          else resolve({ server, port });
        });
      }),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { server, port } = await startCeilingServer();
  process.stdout.write(`ceiling listening ${port}\n`);
  process.once("SIGTERM", () => {
    server.forceShutdown();
    process.exit(0);
  });
}
