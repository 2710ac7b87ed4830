#!/usr/bin/env node
// The floors under phases (a) and (b): two node processes on 127.0.0.1 playing ping-pong with no
// broker logic at all. The server answers each request (230 bytes by default, the size of a
// one-record ProduceSessionRequest) with 30 bytes (the size of its answer); the client sends the
// next request only after the answer, as phase (a) does. Three transports, each a layer of what
// a Rill client and broker speak:
//
//   tcp    node:net sockets (setNoDelay), length-counted: the least two node processes can do
//   http2  one node:http2 stream, DATA frames both ways (what grpc-js is built on)
//   grpc   a bare @grpc/grpc-js bidi stream with pass-through serializers (Rill's transport)
//
// What `grpc` reaches is the most a grpc-js broker and client can do at batch 1 on this machine,
// whatever the broker does; what `tcp` reaches bounds any node client against any node server.
//
//   node scripts/bench/grpc-floor.mjs [--transport grpc|http2|tcp] [--n 100000] [--size 230]
//                                     [--max-seconds 300]   # --size 10400: a 50-record batch
//
// Prints one JSON line: round trips/s, and the CPU seconds of each process over the timed part.
// A run that has not finished after --max-seconds (or whose server exits) fails with exit code 1.
import { fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { fileURLToPath } from "node:url";
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
} from "@grpc/grpc-js";

const ANSWER_BYTES = 30;
const WARM_UP = 2000;
const pass = (b) => b;
const service = {
  session: {
    path: "/floor.Floor/Session",
    requestStream: true,
    responseStream: true,
    requestSerialize: pass,
    requestDeserialize: pass,
    responseSerialize: pass,
    responseDeserialize: pass,
  },
};
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const s = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(s[11]) + Number(s[12])) / 100; // CLK_TCK 100
};
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const transport = arg("--transport", "grpc");
if (!["grpc", "http2", "tcp"].includes(transport)) {
  throw new Error(`--transport must be grpc, http2 or tcp, not ${transport}`);
}
const size = Number(arg("--size", 230));

/**
 * Calls `onMessage` once per `bytes` bytes received: a byte stream (tcp, an http2 stream) may cut
 * a message in two or join two, so messages are counted, not chunks. Ping-pong never joins two.
 */
function counted(bytes, onMessage) {
  let have = 0;
  return (chunk) => {
    have += chunk.length;
    while (have >= bytes) {
      have -= bytes;
      onMessage();
    }
  };
}

/** Starts this process as the server of `transport`; resolves with its port. */
function serve() {
  const answer = Buffer.alloc(ANSWER_BYTES, 1);
  if (transport === "grpc") {
    const server = new Server();
    server.addService(service, {
      session: (call) => {
        call.on("data", () => call.write(answer));
        call.on("end", () => call.end());
      },
    });
    return new Promise((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  }
  const server =
    transport === "http2"
      ? http2.createServer().on("stream", (stream) => {
          stream.respond({ ":status": 200 });
          stream.on(
            "data",
            counted(size, () => stream.write(answer)),
          );
          stream.on("error", () => {}); // the client going away after the run
        })
      : net.createServer((socket) => {
          socket.setNoDelay(true);
          socket.on(
            "data",
            counted(size, () => socket.write(answer)),
          );
          socket.on("error", () => {});
        });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

/** Connects to the server; returns `send` (one request) and `close`. `onAnswer` runs per answer. */
async function connect(port, onAnswer) {
  const request = Buffer.alloc(size, 2);
  if (transport === "grpc") {
    const Client = makeGenericClientConstructor(service, "floor.Floor");
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const call = client.session(new Metadata());
    call.on("data", onAnswer);
    call.on("error", () => {}); // the server going away after the run
    return {
      send: () => call.write(request),
      close: () => {
        call.end();
        client.close();
      },
    };
  }
  if (transport === "http2") {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": "/floor" }, { endStream: false });
    stream.on("data", counted(ANSWER_BYTES, onAnswer));
    stream.on("error", () => {});
    return { send: () => stream.write(request), close: () => session.destroy() };
  }
  const socket = net.connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.setNoDelay(true);
  socket.on("data", counted(ANSWER_BYTES, onAnswer));
  socket.on("error", () => {});
  return { send: () => socket.write(request), close: () => socket.destroy() };
}

if (process.argv.includes("--server")) {
  process.send({ port: await serve() });
} else {
  const n = Number(arg("--n", 100000));
  const maxSeconds = Number(arg("--max-seconds", 300));
  const child = fork(fileURLToPath(import.meta.url), [
    "--server",
    "--transport",
    transport,
    "--size",
    String(size),
  ]);
  const fail = (why) => {
    console.error(`grpc-floor (${transport}): ${why}`);
    child.kill("SIGTERM");
    process.exit(1);
  };
  setTimeout(() => fail(`not finished after ${maxSeconds} s`), maxSeconds * 1000).unref();
  try {
    const [{ port }] = await Promise.race([
      once(child, "message"),
      once(child, "exit").then(() => {
        throw new Error("the floor server exited before it listened");
      }),
    ]);
    child.once("exit", () => fail("the floor server exited during the run"));
    let resolveNext;
    const conn = await connect(port, () => resolveNext());
    const roundTrip = () =>
      new Promise((r) => {
        resolveNext = r;
        conn.send();
      });
    for (let k = 0; k < WARM_UP; k++) await roundTrip(); // connect and warm up
    const s0 = cpuOf(child.pid);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < n; k++) await roundTrip();
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const out = {
      transport,
      n,
      requestBytes: size,
      seconds: +sec.toFixed(3),
      roundTripsPerSec: Math.round(n / sec),
      serverCpuSec: +(cpuOf(child.pid) - s0).toFixed(2),
      clientCpuSec: +((c.user + c.system) / 1e6).toFixed(2),
    };
    console.log(JSON.stringify(out));
    child.removeAllListeners("exit");
    conn.close();
  } finally {
    child.kill("SIGTERM");
  }
}
