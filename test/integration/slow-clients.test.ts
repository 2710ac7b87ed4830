/**
 * Slow and vanished clients (issue 5, "Faults"): a consumer that stops reading, a producer that
 * opens a stream and never sends, a client that vanishes without closing, and the per-connection
 * and broker-wide stream limits. Every wait is a bounded poll; no assertion is about timing. Child
 * processes are stopped by PID in afterEach.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connectivityState, credentials, type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  Durability,
  FetchRequest,
  type FetchResponse,
  LogServiceClient,
  type ProduceSessionResponse,
} from "../../clients/ts/src/gen/rill/v1/log.js";
import { createClient } from "../../clients/ts/src/index.js";
import { type ConfigOverrides, startBroker } from "../../server/src/main.js";
import type { RpcContext } from "../../server/src/rpc/context.js";
import { type FileSystem, nodeFileSystem } from "../../server/src/storage/fs.js";
import { brokerArgs, killAll, ROOT, startBrokerProcess } from "../helpers/broker-process.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { api, follow, produce, produceRequest, record, type Stubs, stubs } from "./helpers/grpc.js";

const MiB = 1024 * 1024;

const children: ChildProcess[] = [];
const brokers: TestBroker[] = [];
const clients: Stubs[] = [];
const dirs: string[] = [];
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
    try {
      process.kill(c.pid, "SIGKILL");
    } catch {
      // already gone (killed by the test and reaped)
    }
  }
  for (const f of cleanups.splice(0)) await f();
  await killAll(); // after the cleanups: they stop the RSS sampler that reads the broker's /proc
  for (const s of clients.splice(0)) s.close();
  for (const b of brokers.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function broker(overrides: ConfigOverrides): Promise<TestBroker> {
  const tb = await startTestBroker(overrides);
  brokers.push(tb);
  return tb;
}

function connect(address: string): Stubs {
  const s = stubs(address);
  clients.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 25 ms until it holds, for at most `ms`; returns whether it held. */
async function until(check: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** The codes calls of `method` end with, as the broker's metrics see them (rpc/observe.ts). */
function observeEnds(ctx: RpcContext, method: string): status[] {
  const codes: status[] = [];
  ctx.observer = {
    started() {},
    ended(_service, m, code) {
      if (m === method) codes.push(code);
    },
    produced() {},
    fetched() {},
  };
  return codes;
}

/** The status a following Fetch ends with, or its first response, whichever comes first. */
function firstEvent(call: ReturnType<typeof follow>): Promise<FetchResponse | ServiceError> {
  return new Promise((resolve) => {
    call.once("data", resolve);
    call.once("error", resolve);
  });
}

describe("integration > slow clients > idle client streams (stream.idle.timeout.ms)", () => {
  it("ends a Produce stream that never sends with DEADLINE_EXCEEDED and frees its slot", async () => {
    // Ensures a producer that opens Produce and goes silent does not hold a stream (and its
    // handler) for ever: it is ended with a status telling the client to reopen.
    const tb = await broker({ streamIdleTimeoutMs: 500 });
    const s = connect(tb.address);
    const limits = tb.broker.server.streamLimits;
    const observed = observeEnds(tb.broker.server.context, "Produce");
    const ended = new Promise<ServiceError | null>((resolve) => {
      s.log.produce((err) => resolve(err));
    });
    expect(await until(() => limits.open === 1)).toBe(true);
    const err = await ended;
    expect(err?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(err?.details).toMatch(/stream\.idle\.timeout\.ms.*open a new stream/);
    expect(await until(() => limits.open === 0 && tb.broker.server.context.inflight.size === 0)).toBe(true);
    expect(limits.idleEnded).toBe(1);
    // Metrics count it with the code the client got, not as a client's cancel.
    expect(await until(() => observed.length === 1)).toBe(true);
    expect(observed).toEqual([status.DEADLINE_EXCEEDED]);
  });

  it("does not end a Produce stream that keeps sending, however long it lasts", async () => {
    // Ensures the timeout is about silence, not about the age of a stream: 16 batches 100 ms apart
    // (1.6 s in all) on a stream with a 600 ms idle timeout all get appended, then OK.
    const tb = await broker({ streamIdleTimeoutMs: 600 });
    const s = connect(tb.address);
    const topic = randomTopic();
    const outcome = new Promise<{ err: ServiceError | null; batches: number }>((resolve) => {
      const call = s.log.produce((err, res) => resolve({ err, batches: res?.results.length ?? 0 }));
      void (async () => {
        for (let i = 0; i < 16; i++) {
          call.write(produceRequest(topic, 0, [record(`r${i}`)]));
          await sleep(100);
        }
        call.end();
      })();
    });
    const { err, batches } = await outcome;
    expect(err).toBeNull();
    expect(batches).toBe(16);
    expect(tb.broker.server.streamLimits.idleEnded).toBe(0);
  });

  it("a per-batch producer whose idle session was ended opens a new one on its next send", async () => {
    // Ensures DEADLINE_EXCEEDED is a status the TS client reopens on: the next record still goes out.
    const tb = await broker({ streamIdleTimeoutMs: 300 });
    const client = createClient({ brokers: tb.address });
    cleanups.push(() => client.close());
    const topic = randomTopic();
    await client.admin().createTopic(topic, { partitions: 1 });
    const producer = client.producer({ acks: "per-batch", lingerMs: 0 });
    const first = await producer.send(topic, { value: "before" });
    expect(first[0]?.offset).toBe(0n);
    const limits = tb.broker.server.streamLimits;
    expect(await until(() => limits.idleEnded === 1 && limits.open === 0)).toBe(true);
    const second = await producer.send(topic, { value: "after" });
    expect(second[0]?.offset).toBe(1n);
    await producer.close();
  });
});

describe("integration > slow clients > idle sessions owe nothing", () => {
  it("does not end a ProduceSession while the broker owes it an answer (a slow fsync)", async () => {
    // Ensures idle time is the client's silence with nothing owed: a FSYNCED batch whose fsync is
    // held for several idle timeouts keeps its session; once answered, the silent session ends.
    let held: Promise<void> | undefined;
    let release = () => {};
    const fs: FileSystem = {
      ...nodeFileSystem,
      fsync: async (fd) => {
        await held;
        return nodeFileSystem.fsync(fd);
      },
    };
    const dataDir = await mkdtemp(join(tmpdir(), "rill-slow-"));
    dirs.push(dataDir);
    const b = await startBroker({ listen: "127.0.0.1:0", dataDir, streamIdleTimeoutMs: 300 }, { fs });
    cleanups.push(() => release());
    cleanups.push(() => b.shutdown());
    const s = connect(b.address);
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 1, config: undefined });
    held = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 20_000); // bounded even if the test fails before releasing
      release = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const observed = observeEnds(b.server.context, "ProduceSession");
    const call = s.log.produceSession();
    const answers: ProduceSessionResponse[] = [];
    let ended: ServiceError | undefined;
    call.on("data", (a: ProduceSessionResponse) => answers.push(a));
    call.on("error", (e: ServiceError) => {
      ended = e;
    });
    call.write({
      sequence: 1n,
      produce: produceRequest(topic, 0, [record("a")], { durability: Durability.DURABILITY_FSYNCED }),
    });
    const limits = b.server.streamLimits;
    expect(await until(() => limits.open === 1)).toBe(true);
    await sleep(1500); // five idle timeouts with the answer owed
    expect(ended).toBeUndefined();
    expect(answers).toHaveLength(0);
    expect(limits.idleEnded).toBe(0);
    release();
    expect(await until(() => answers.length === 1)).toBe(true);
    expect(answers[0]?.outcome?.$case).toBe("result");
    // Answered, and the client stays silent: now it is idle.
    expect(await until(() => ended !== undefined)).toBe(true);
    expect(ended?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(limits.idleEnded).toBe(1);
    expect(await until(() => limits.open === 0)).toBe(true);
    expect(await until(() => observed.length === 1)).toBe(true);
    expect(observed).toEqual([status.DEADLINE_EXCEEDED]);
  });
});

describe("integration > slow clients > open streams (max.open.streams)", () => {
  it("refuses a streaming call past the limit with RESOURCE_EXHAUSTED naming the setting", async () => {
    // Ensures the broker-wide bound: the third stream is refused before its handler runs, unary
    // calls still work, and a freed slot is taken again.
    const tb = await broker({ maxOpenStreams: 2 });
    const observed = observeEnds(tb.broker.server.context, "Fetch");
    const s = connect(tb.address);
    const topic = randomTopic();
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const limits = tb.broker.server.streamLimits;
    const a = follow(s.log, topic);
    const b = follow(s.log, topic);
    a.on("error", () => {});
    b.on("error", () => {});
    expect("batches" in (await firstEvent(a))).toBe(true);
    expect("batches" in (await firstEvent(b))).toBe(true);
    expect(limits.open).toBe(2);
    const refused = await firstEvent(follow(s.log, topic));
    expect((refused as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((refused as ServiceError).details).toMatch(/max\.open\.streams/);
    const produceRefused = await produce(s.log, [produceRequest(topic, 0, [record("b")])]);
    expect(produceRefused.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    // Unary calls are not streams; the refused produce appended nothing.
    const offsets = await api(s).listOffsets({ topic, partitions: [0], timestampMs: undefined });
    expect(offsets.partitions[0]?.latest).toBe(1n);
    expect(limits.refused).toBe(2);
    a.cancel();
    expect(await until(() => limits.open === 1)).toBe(true);
    const c = follow(s.log, topic);
    c.on("error", () => {});
    expect("batches" in (await firstEvent(c))).toBe(true);
    b.cancel();
    c.cancel();
    expect(await until(() => limits.open === 0)).toBe(true);
    // A client's cancel is still reported as CANCELLED; the refused call never reached a handler.
    expect(await until(() => observed.length === 3)).toBe(true);
    expect(observed).toEqual([status.CANCELLED, status.CANCELLED, status.CANCELLED]);
  });
});

describe("integration > slow clients > streams per connection (max.concurrent.streams)", () => {
  it("holds a connection's streams past the limit in the client until one ends", async () => {
    // Ensures the per-connection bound is HTTP/2's: the broker never sees more than 2 streams of
    // one connection (the third waits in the client, not refused), while another connection
    // still gets its own.
    const tb = await broker({ maxConcurrentStreams: 2 });
    const s = connect(tb.address);
    const topic = randomTopic();
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const limits = tb.broker.server.streamLimits;
    const calls = [follow(s.log, topic), follow(s.log, topic), follow(s.log, topic)];
    const first = calls.map((c) => {
      c.on("error", () => {});
      return firstEvent(c);
    });
    let thirdAnswered = false;
    void first[2]!.then(() => {
      thirdAnswered = true;
    });
    expect("batches" in (await first[0]!)).toBe(true);
    expect("batches" in (await first[1]!)).toBe(true);
    // Give the third every chance to arrive: a round trip on a second connection (a channel of
    // its own: grpc-js otherwise shares one connection per address), then a pause.
    const other = new LogServiceClient(tb.address, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    cleanups.push(() => other.close());
    await new Promise((resolve, reject) =>
      other.listOffsets({ topic, partitions: [0], timestampMs: undefined }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
    await sleep(300);
    expect(limits.open).toBe(2);
    expect(thirdAnswered).toBe(false);
    // Another connection is not held back by the first one's limit.
    const elsewhere = follow(other, topic);
    elsewhere.on("error", () => {});
    expect("batches" in (await firstEvent(elsewhere))).toBe(true);
    expect(limits.open).toBe(3);
    // One of the first connection's streams ends: the waiting one goes out and is served.
    calls[0]!.cancel();
    expect("batches" in (await first[2]!)).toBe(true);
    for (const c of [...calls, elsewhere]) c.cancel();
    expect(await until(() => limits.open === 0)).toBe(true);
  });
});

describe("integration > slow clients > the default per-connection limit", () => {
  it("lets one connection carry a 1,000-partition group member's streams and its unary calls", async () => {
    // Ensures max.concurrent.streams' default leaves room for what one client multiplexes on its
    // single connection (the TS client has one channel per broker): a group member holds a JoinGroup
    // stream plus a following Fetch per assigned partition, and its heartbeats and commits (unary)
    // share that connection. Past the limit they would wait in the client, and the member expire.
    const tb = await broker({});
    const s = connect(tb.address);
    const topic = randomTopic();
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const limits = tb.broker.server.streamLimits;
    const streams = 1001;
    const calls = Array.from({ length: streams }, () => {
      const c = follow(s.log, topic);
      c.on("error", () => {});
      c.on("data", () => {});
      return c;
    });
    cleanups.push(() => {
      for (const c of calls) c.cancel();
    });
    expect(await until(() => limits.open === streams, 15_000)).toBe(true);
    const offsets = await api(s).listOffsets({ topic, partitions: [0], timestampMs: undefined });
    expect(offsets.partitions[0]?.latest).toBe(1n);
    for (const c of calls) c.cancel();
    expect(await until(() => limits.open === 0)).toBe(true);
  }, 60_000);
});

/**
 * A child process holding a following Fetch and a silent Produce stream open on one connection,
 * with raw @grpc/grpc-js and pre-encoded requests (no build needed). It prints "open" once the
 * Fetch got its first response.
 */
const HOLDER = `
const grpc = require("@grpc/grpc-js");
const [address, fetchHex] = process.argv.slice(1);
const client = new grpc.Client(address, grpc.credentials.createInsecure());
const id = (b) => b;
const fetch = client.makeServerStreamRequest("/rill.v1.LogService/Fetch", id, id, Buffer.from(fetchHex, "hex"));
fetch.once("data", () => console.log("open"));
fetch.on("error", () => {});
const produce = client.makeClientStreamRequest("/rill.v1.LogService/Produce", id, id, () => {});
produce.on("error", () => {});
setInterval(() => {}, 1000);
`;

describe("integration > slow clients > vanished clients (keepalive)", () => {
  it("closes the connection of a client that stops answering pings and frees its streams", async () => {
    // Ensures a client that disappears without closing (SIGSTOPped: its kernel keeps the TCP
    // connection, the process answers nothing) does not hold streams for ever: keepalive pings go
    // unanswered, the broker closes the connection, and the open-stream count returns to baseline.
    const tb = await broker({ keepaliveTimeMs: 300, keepaliveTimeoutMs: 300, streamIdleTimeoutMs: -1 });
    const s = connect(tb.address);
    const topic = randomTopic();
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const { server } = tb.broker;
    const baseline = { open: server.streamLimits.open, streams: server.context.streams.size };
    const fetchHex = Buffer.from(followFromStart(topic)).toString("hex");
    const child = spawn(process.execPath, ["-e", HOLDER, tb.address, fetchHex], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 20_000);
      createInterface({ input: child.stdout! }).once("line", (line) => {
        clearTimeout(timer);
        resolve(line === "open");
      });
    });
    expect(opened).toBe(true);
    expect(await until(() => server.streamLimits.open === baseline.open + 2)).toBe(true);
    expect(server.context.streams.size).toBe(baseline.streams + 1);
    process.kill(child.pid!, "SIGSTOP");
    expect(
      await until(
        () =>
          server.streamLimits.open === baseline.open &&
          server.context.streams.size === baseline.streams &&
          server.context.inflight.size === 0,
        20_000,
      ),
    ).toBe(true);
    process.kill(child.pid!, "SIGKILL");
    // The broker still serves its live clients.
    const more = await produce(s.log, [produceRequest(topic, 0, [record("b")])]);
    expect(more.error).toBeUndefined();
  });
});

describe("integration > slow clients > healthy and idle connections", () => {
  it("keeps a live client's connection: it answers the broker's pings and may ping often itself", async () => {
    // Ensures keepalive only ends dead connections: with the broker pinging every 200 ms and the
    // client pinging every 100 ms (a far shorter interval than the TS client's 30 s), a following
    // Fetch stays open with no data for many ping rounds, then still gets new records.
    const tb = await broker({ keepaliveTimeMs: 200, keepaliveTimeoutMs: 1000, streamIdleTimeoutMs: -1 });
    const topic = randomTopic();
    const s = connect(tb.address);
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const pinging = new LogServiceClient(tb.address, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "grpc.keepalive_time_ms": 100,
      "grpc.keepalive_timeout_ms": 1000,
      "grpc.keepalive_permit_without_calls": 1,
    });
    cleanups.push(() => pinging.close());
    const call = follow(pinging, topic);
    const values: string[] = [];
    let failed: ServiceError | undefined;
    call.on("data", (r: FetchResponse) => {
      for (const b of r.batches)
        for (const rec of b.records?.records ?? []) values.push(Buffer.from(rec.value).toString());
    });
    call.on("error", (e: ServiceError) => {
      failed = e;
    });
    expect(await until(() => values.length === 1)).toBe(true);
    await sleep(1500); // about 7 broker pings and 15 client pings
    expect(failed).toBeUndefined();
    expect(tb.broker.server.streamLimits.open).toBe(1);
    expect((await produce(s.log, [produceRequest(topic, 0, [record("b")])])).error).toBeUndefined();
    expect(await until(() => values.length === 2)).toBe(true);
    expect(values).toEqual(["a", "b"]);
    call.cancel();
  });

  it("closes a connection with no call open for max.connection.idle.ms; the client reconnects", async () => {
    // Ensures idle connections do not pile up: the broker sends GOAWAY, the channel goes IDLE, and
    // the next call opens a new connection transparently.
    const tb = await broker({ maxConnectionIdleMs: 300 });
    const topic = randomTopic();
    const client = new LogServiceClient(tb.address, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    cleanups.push(() => client.close());
    expect((await produce(client, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const channel = client.getChannel();
    expect(channel.getConnectivityState(false)).toBe(connectivityState.READY);
    expect(await until(() => channel.getConnectivityState(false) === connectivityState.IDLE)).toBe(true);
    expect((await produce(client, [produceRequest(topic, 0, [record("b")])])).error).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// A consumer that stops reading, next to a producer writing 384 MiB, against a broker process.

/** Starts `rill broker` (dist/) on a free port with metrics; resolves with its addresses. */
async function spawnBroker(dataDir: string): Promise<{ pid: number; address: string; metrics: string }> {
  const args = brokerArgs(dataDir, ["--metrics-port", "0"]);
  const { broker, address } = await startBrokerProcess({ dataDir, args });
  const metrics = broker.startup.find((e) => e.msg === "metrics serving")?.address ?? "";
  return { pid: broker.pid, address, metrics };
}

/** VmRSS of a process, in bytes (Linux). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** One sample of a Prometheus text endpoint: the sum of the series of `name` matching `labels`. */
async function metric(metricsAddress: string, name: string, labels = ""): Promise<number> {
  const text = await (await globalThis.fetch(`http://${metricsAddress}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || !line.includes(labels)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** A FetchRequest following partition 0 of `topic` from offset 0, encoded. */
function followFromStart(topic: string): Uint8Array {
  return FetchRequest.encode({
    topic,
    partition: 0,
    maxBytes: 0,
    follow: true,
    start: { $case: "offset", value: 0n },
  }).finish();
}

/** A gRPC-framed request (uncompressed). */
function frame(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

describe("integration > slow clients > a consumer that stops reading", () => {
  it("keeps the broker's memory bounded while 384 MiB are produced past a stalled Fetch", async () => {
    // Ensures backpressure end to end against the real process: a raw HTTP/2 Fetch stream that is
    // never read (its flow-control window closes) makes the broker stop sending, not buffer; the
    // broker's RSS grows by far less than what was produced, and the stream shows as blocked.
    const dataDir = await mkdtemp(join(tmpdir(), "rill-slow-"));
    dirs.push(dataDir);
    const { pid, address, metrics } = await spawnBroker(dataDir);
    expect(metrics).not.toBe("");
    const s = connect(address);
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 1, config: undefined });
    const value = Buffer.alloc(256 * 1024, 0x62);
    const batch = () => produceRequest(topic, 0, [record(value)]);
    // Warm up (code paths, buffers), so the baseline is the working broker, not a cold one.
    for (let i = 0; i < 4; i++) expect((await produce(s.log, [batch(), batch()])).error).toBeUndefined();

    // The stalled consumer: HTTP/2 straight, its stream paused and never read.
    const session = http2.connect(`http://${address}`);
    cleanups.push(() => session.destroy());
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/rill.v1.LogService/Fetch",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(frame(followFromStart(topic)));
    stream.pause();
    const fetchOpen = async () => metric(metrics, "rill_rpc_in_flight", 'method="Fetch"');
    for (let i = 0; i < 200 && (await fetchOpen()) !== 1; i++) await sleep(50);
    expect(await fetchOpen()).toBe(1);

    const baseline = rssOf(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 20);
    cleanups.push(() => clearInterval(sampler));
    const produced = 384 * MiB;
    const perStream = 16;
    for (let sent = 0; sent < produced; sent += perStream * value.length) {
      const out = await produce(
        s.log,
        Array.from({ length: perStream }, () => batch()),
      );
      expect(out.error).toBeUndefined();
    }
    for (let i = 0; i < 100 && (await metric(metrics, "rill_streams_blocked")) !== 1; i++) await sleep(50);
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(pid));
    const bytesIn = await metric(metrics, "rill_bytes_in_total");
    const bytesOut = await metric(metrics, "rill_bytes_out_total");
    const growth = peak - baseline;
    console.log(
      `slow consumer: produced ${bytesIn} B, sent to the stalled Fetch ${bytesOut} B, broker RSS ${(baseline / MiB).toFixed(1)} MiB -> peak ${(peak / MiB).toFixed(1)} MiB (growth ${(growth / MiB).toFixed(1)} MiB)`,
    );
    expect(bytesIn).toBeGreaterThanOrEqual(produced);
    expect(await metric(metrics, "rill_streams_blocked")).toBe(1);
    // Handed to gRPC for the stalled stream: windows and socket buffers, not the log.
    expect(bytesOut).toBeLessThan(bytesIn / 8);
    expect(growth).toBeLessThan(produced / 4);
    // The stream is still open, still waiting: nothing more is sent (not polling the log).
    await sleep(300);
    expect(await fetchOpen()).toBe(1);
    expect(await metric(metrics, "rill_bytes_out_total")).toBe(bytesOut);
  }, 120_000);
});
