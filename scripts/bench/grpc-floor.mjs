#!/usr/bin/env node
// The floor under phase (a): a bare @grpc/grpc-js bidi stream between two node processes on
// 127.0.0.1, ping-pong, no broker logic at all. The server answers each 230-byte request (the
// size of a one-record ProduceSessionRequest) with a 30-byte message (the size of its answer);
// the client sends the next request only after the answer. What this reaches is the most a
// grpc-js broker and client can do at batch 1 on this machine, whatever the broker does.
//
//   node scripts/bench/grpc-floor.mjs [--n 100000] [--size 230]   # --size 10400: a 50-record batch
import { fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
} from "@grpc/grpc-js";

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

if (process.argv[2] === "--server") {
  const server = new Server();
  const answer = Buffer.alloc(30, 1);
  server.addService(service, {
    session: (call) => {
      call.on("data", () => call.write(answer));
      call.on("end", () => call.end());
    },
  });
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send({ port });
  });
} else {
  const i = process.argv.indexOf("--n");
  const n = i > 0 ? Number(process.argv[i + 1]) : 100000;
  const j = process.argv.indexOf("--size");
  const size = j > 0 ? Number(process.argv[j + 1]) : 230;
  const child = fork(fileURLToPath(import.meta.url), ["--server"]);
  try {
    const [{ port }] = await once(child, "message");
    const Client = makeGenericClientConstructor(service, "floor.Floor");
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const call = client.session(new Metadata());
    const request = Buffer.alloc(size, 2);
    let resolveNext;
    call.on("data", () => resolveNext());
    const roundTrip = () =>
      new Promise((r) => {
        resolveNext = r;
        call.write(request);
      });
    for (let k = 0; k < 2000; k++) await roundTrip(); // connect and warm up
    const s0 = cpuOf(child.pid);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < n; k++) await roundTrip();
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const out = {
      n,
      requestBytes: size,
      seconds: +sec.toFixed(3),
      roundTripsPerSec: Math.round(n / sec),
      serverCpuSec: +(cpuOf(child.pid) - s0).toFixed(2),
      clientCpuSec: +((c.user + c.system) / 1e6).toFixed(2),
    };
    console.log(JSON.stringify(out));
    call.on("error", () => {}); // the server going away after the run
    call.end();
    client.close();
  } finally {
    child.kill("SIGTERM");
  }
}
