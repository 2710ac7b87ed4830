// Rill's adapter for the Kafka-paper peer harness (../shared/bench/peers, see its README.md
// "Adding a new broker"). Same interface as the peers' adapters: setup / produce / consume /
// teardown, messages payload(0..n-1) from ctx, checked on consume with a ctx.Verifier.
//
// How each phase is done (one partition, one producer, one consumer, like the peers):
//   setup   a new topic with 1 partition (AdminService.CreateTopic; a fresh name per setup, the
//           previous one is deleted by teardown), so every phase starts on an empty log.
//   (a) b=1 one record per RecordBatch, one batch per request, the next sent only once the
//           previous one is acked. Over ONE LogService.ProduceSession stream (bidi, per-batch
//           acks) when the broker implements it; otherwise one client-streaming Produce call per
//           batch (the table's name says which).
//   (b) b=50 the same with 50 records per RecordBatch.
//   (c)     a NEW connection (own subchannel) runs one Fetch from offset 0, follow=false, with
//           max_bytes = 20 stored batches of 50 records (~1000 records per response, like the
//           peers' 1000 per fetch); every record's value goes through the Verifier.
//
// The client code on the hot path is Rill's own TypeScript client, compiled (npm run build):
// its BatchEncoder (records encoded straight into the ProduceRequest bytes), the session envelope
// its Producer writes (encodeSessionRequest, session-sender.ts) and its Fetch decoder
// (decodeFetchResponse + decodeRawBatch, what Consumer.read uses), over @grpc/grpc-js
// with pass-through serializers, the way the client's Connection sets up rawProduce/rawFetch.
// Topic admin goes through the client's Admin.
//
// Environment:
//   RILL_PORT             broker port on 127.0.0.1 (default 42230)
//   RILL_BENCH_DURABILITY broker | written | fsynced (default broker: whatever the broker's
//                         --durability makes a new topic's default, read from CreateTopic's
//                         answer when this module loads). Every ProduceRequest then asks for it
//                         explicitly, and the table's name says which.
//   RILL_BENCH_PRODUCE    auto | session | produce (default auto: ProduceSession if the broker
//                         answers it, else Produce per batch)
//   RILL_BENCH_MAX_BYTES  Fetch max_bytes (default 206940 = 20 batches of 50 records)
//   RILL_BENCH_WINDOW     consumer's HTTP/2 flow-control window in bytes (grpc-js channel option
//                         grpc-node.flow_control_window); default unset = what Rill's client
//                         uses today (grpc-js's default, 64 KiB)
import { Channel, credentials, Metadata, makeGenericClientConstructor } from "@grpc/grpc-js";
import { decodeFetchResponse, decodeRawBatch } from "../../dist/clients/ts/src/consumer/fetch-decoder.js";
import { createClient, DEFAULT_CHANNEL_OPTIONS } from "../../dist/clients/ts/src/index.js";
import { BatchEncoder } from "../../dist/clients/ts/src/producer/batch-encoder.js";
import { encodeSessionRequest } from "../../dist/clients/ts/src/producer/session-sender.js";

const PORT = Number(process.env.RILL_PORT ?? process.env.OURS_PORT ?? 42230);
const ADDRESS = `127.0.0.1:${PORT}`;
const DURABILITY_WANTED = (process.env.RILL_BENCH_DURABILITY ?? "broker").toLowerCase();
if (!["broker", "written", "fsynced"].includes(DURABILITY_WANTED)) {
  throw new Error(`RILL_BENCH_DURABILITY must be broker, written or fsynced, not ${DURABILITY_WANTED}`);
}
const DURABILITY_CODE = { written: 1, fsynced: 2 }; // rill.v1.Durability
let DURABILITY = DURABILITY_CODE[DURABILITY_WANTED] ?? 0; // 0 until the probe has read the broker's
const PRODUCE_MODE = process.env.RILL_BENCH_PRODUCE ?? "auto";
if (!["auto", "session", "produce"].includes(PRODUCE_MODE)) {
  throw new Error(`RILL_BENCH_PRODUCE must be auto, session or produce, not ${PRODUCE_MODE}`);
}
// A stored batch of 50 such records is 10,347 bytes (44-byte header + 3 + 50 x 206).
const MAX_BYTES = Number(process.env.RILL_BENCH_MAX_BYTES ?? 20 * 10347);
const CALL_TIMEOUT_MS = 120_000;
const WINDOW = process.env.RILL_BENCH_WINDOW ? Number(process.env.RILL_BENCH_WINDOW) : undefined;

const passThrough = (b) => b;
const RawLog = makeGenericClientConstructor(
  {
    produce: {
      path: "/rill.v1.LogService/Produce",
      requestStream: true,
      responseStream: false,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
    },
    produceSession: {
      path: "/rill.v1.LogService/ProduceSession",
      requestStream: true,
      responseStream: true,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
    },
    fetch: {
      path: "/rill.v1.LogService/Fetch",
      requestStream: false,
      responseStream: true,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: decodeFetchResponse,
    },
  },
  "rill.v1.LogService",
);

// ------------------------------------------------------------------ tiny protobuf helpers
function varint(v) {
  const out = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

class Reader {
  constructor(buf, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }
  uint() {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
    }
    throw new Error("varint too long");
  }
  bytes() {
    const n = this.uint();
    const at = this.pos;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }
  skip(wt) {
    if (wt === 0) this.uint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 2) {
      const n = this.uint(); // read first: `this.pos += this.uint()` would add to the old pos
      this.pos += n;
    } else if (wt === 5) this.pos += 4;
    else throw new Error(`wire type ${wt}`);
  }
}

/** ProduceResult {topic=1, partition=2, base_offset=3, record_count=4}: base offset and count. */
function parseProduceResult(buf) {
  const r = new Reader(buf);
  let baseOffset = 0;
  let recordCount = 0;
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x18) baseOffset = r.uint();
    else if (tag === 0x20) recordCount = r.uint();
    else r.skip(tag & 7);
  }
  return { baseOffset, recordCount };
}

/** ProduceSessionResponse {sequence=1, result=2, error=3 {code=1, message=2}}. */
function parseSessionResponse(buf) {
  const r = new Reader(buf);
  const out = { sequence: 0, result: null, error: null };
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x08) out.sequence = r.uint();
    else if (tag === 0x12) out.result = parseProduceResult(r.bytes());
    else if (tag === 0x1a) {
      const e = new Reader(r.bytes());
      const err = { code: 2, message: "" };
      while (e.pos < e.end) {
        const t = e.uint();
        if (t === 0x08) err.code = e.uint();
        else if (t === 0x12) err.message = e.bytes().toString("utf8");
        else e.skip(t & 7);
      }
      out.error = err;
    } else r.skip(tag & 7);
  }
  return out;
}

/** ProduceResponse {results=1 repeated ProduceResult}. */
function parseProduceResponse(buf) {
  const r = new Reader(buf);
  const results = [];
  while (r.pos < r.end) {
    const tag = r.uint();
    if (tag === 0x0a) results.push(parseProduceResult(r.bytes()));
    else r.skip(tag & 7);
  }
  return results;
}

/** FetchRequest {topic=1, partition=2, offset=3, max_bytes=6, follow=7} (partition 0, offset 0, follow false). */
function encodeFetchRequest(topic, offset, maxBytes) {
  const t = Buffer.from(topic, "utf8");
  return Buffer.concat([
    Buffer.from([0x0a]),
    varint(t.length),
    t,
    Buffer.from([0x18]),
    varint(offset), // offset 0 is still sent: it selects the oneof
    Buffer.from([0x30]),
    varint(maxBytes),
  ]);
}

/** One ProduceRequest (Rill client's BatchEncoder): records payload(from..from+k-1), partition 0. */
function encodeBatch(topic, payload, from, k) {
  const enc = new BatchEncoder(topic, 0, k * 206);
  for (let i = 0; i < k; i++) enc.append(null, payload(from + i), null, undefined);
  return enc.finish(DURABILITY);
}

const deadlineIn = (ms) => new Date(Date.now() + ms);

// ------------------------------------------------------------------ transports
/** One open ProduceSession: send(request bytes) resolves with the ack of that batch. */
class Session {
  constructor(raw) {
    this.seq = 0;
    this.waiting = new Map(); // sequence -> {resolve, reject}
    this.failed = null;
    this.call = raw.produceSession(new Metadata(), { deadline: deadlineIn(3_600_000) });
    this.call.on("data", (buf) => {
      const res = parseSessionResponse(buf);
      const w = this.waiting.get(res.sequence);
      if (!w) return;
      this.waiting.delete(res.sequence);
      if (res.error)
        w.reject(
          new Error(`ProduceSession batch ${res.sequence}: code ${res.error.code}: ${res.error.message}`),
        );
      else w.resolve(res.result);
    });
    const fail = (e) => {
      this.failed = e ?? new Error("ProduceSession ended");
      for (const w of this.waiting.values()) w.reject(this.failed);
      this.waiting.clear();
    };
    this.call.on("error", fail);
    this.call.on("end", () => fail(null));
  }
  send(produce) {
    if (this.failed) return Promise.reject(this.failed);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.call.write(encodeSessionRequest(seq, produce));
    });
  }
  close() {
    try {
      this.call.end();
    } catch {}
    this.call.cancel();
  }
}

/** One client-streaming Produce call carrying one batch. */
function produceOnce(raw, produce) {
  return new Promise((resolve, reject) => {
    const call = raw.produce(new Metadata(), { deadline: deadlineIn(CALL_TIMEOUT_MS) }, (err, res) => {
      if (err) reject(err);
      else resolve(parseProduceResponse(res)[0]);
    });
    call.write(produce);
    call.end();
  });
}

function openChannel(ownConnection) {
  const options = { ...DEFAULT_CHANNEL_OPTIONS };
  if (ownConnection) {
    options["grpc.use_local_subchannel_pool"] = 1; // a new TCP connection
    if (WINDOW) options["grpc-node.flow_control_window"] = WINDOW;
  }
  const channel = new Channel(ADDRESS, credentials.createInsecure(), options);
  const raw = new RawLog(ADDRESS, credentials.createInsecure(), { channelOverride: channel });
  return { channel, raw };
}

// ------------------------------------------------------------------ state
let ctx = null; // the harness's { payload, Verifier, ... }
const client = createClient({ brokers: ADDRESS, requestTimeoutMs: CALL_TIMEOUT_MS }); // for Admin
const conn = openChannel(false); // the producer's connection
let session = null;
let topic = null;
let setupCount = 0;

const bounded = (p, ms, what) =>
  Promise.race([
    p,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms).unref()),
  ]);

/**
 * Runs once, when the harness loads this module (the broker is already up; bench.mjs reads `name`
 * before the first setup): creates a probe topic to learn the broker's default durability, tries
 * one batch over ProduceSession, deletes the probe topic.
 */
async function probe() {
  const admin = client.admin();
  const probeTopic = `peer-bench-probe-${process.pid}`;
  const desc = await bounded(admin.createTopic(probeTopic, { partitions: 1 }), 30_000, "CreateTopic (probe)");
  const brokerDefault = desc.config?.durability === 2 ? 2 : 1;
  if (DURABILITY === 0) DURABILITY = brokerDefault;
  let session = false;
  if (PRODUCE_MODE !== "produce") {
    const s = new Session(conn.raw);
    try {
      const r = await bounded(
        s.send(encodeBatch(probeTopic, () => Buffer.alloc(200), 0, 1)),
        10_000,
        "ProduceSession probe",
      );
      if (r?.recordCount !== 1) throw new Error(`ProduceSession probe: unexpected ack ${JSON.stringify(r)}`);
      session = true;
    } catch (e) {
      if (PRODUCE_MODE === "session") throw e;
      process.stderr.write(
        `[rill-adapter] ProduceSession not usable (${String(e.message ?? e).split("\n")[0]}): one Produce call per batch\n`,
      );
    } finally {
      s.close();
    }
  }
  await bounded(admin.deleteTopic(probeTopic), 30_000, "DeleteTopic (probe)").catch(() => {});
  return { session, brokerDefault };
}

const probed = await probe();
const useSession = probed.session;
const HOW = useSession ? "ProduceSession" : "Produce call per batch";
const DURABILITY_NAME = DURABILITY === 2 ? "FSYNCED" : "WRITTEN";
process.stderr.write(
  `[rill-adapter] ${ADDRESS}: ${HOW}, durability ${DURABILITY_NAME} (broker default ${probed.brokerDefault === 2 ? "FSYNCED" : "WRITTEN"}), fetch max_bytes ${MAX_BYTES}${WINDOW ? `, consumer window ${WINDOW}` : ""}\n`,
);

const adapter = {
  name: `Rill (gRPC, ${DURABILITY_NAME}, ${HOW})`,
  durability:
    DURABILITY === 2
      ? "FSYNCED: the ack comes after an fsync covering the batch (group commit: concurrent appends share one fsync)"
      : "WRITTEN: the ack comes after write() to the segment file (page cache); fsync within flush.ms = 1000 ms of an unflushed append (background)",

  async setup(c) {
    ctx = c;
    const admin = client.admin();
    topic = `peer-bench-${process.pid}-${++setupCount}`;
    await admin.createTopic(topic, { partitions: 1 });
    if (useSession) session = new Session(conn.raw);
  },

  async produce(n, batch, { deadline }) {
    const { payload } = ctx;
    let acked = 0;
    while (acked < n && Date.now() < deadline) {
      const k = Math.min(batch, n - acked);
      const req = encodeBatch(topic, payload, acked, k);
      const r = useSession ? await session.send(req) : await produceOnce(conn.raw, req);
      if (!r || r.recordCount !== k || r.baseOffset !== acked) {
        throw new Error(`batch at ${acked}: ack ${JSON.stringify(r)}, expected base ${acked} count ${k}`);
      }
      acked += k;
    }
    return acked;
  },

  async consume(n, { deadline }) {
    const v = new ctx.Verifier();
    const c = openChannel(true); // a new consumer connection, like the peers
    const out = [];
    try {
      await new Promise((resolve, reject) => {
        const call = c.raw.fetch(encodeFetchRequest(topic, 0, MAX_BYTES), new Metadata(), {
          deadline: deadlineIn(CALL_TIMEOUT_MS + 60_000),
        });
        let done = false;
        const finish = (e) => {
          if (done) return;
          done = true;
          if (e) reject(e);
          else resolve();
        };
        call.on("data", (res) => {
          for (const b of res.batches) {
            out.length = 0;
            decodeRawBatch(b, topic, 0, 0n, out);
            for (const rec of out) v.see(rec.value);
          }
          if (v.count >= n || Date.now() > deadline) {
            call.cancel();
            finish();
          }
        });
        call.on("error", (e) => (e.code === 1 /* CANCELLED */ && done ? undefined : finish(e)));
        call.on("end", () => finish());
      });
    } finally {
      c.channel.close();
    }
    return v.result();
  },

  async teardown() {
    if (session) {
      session.close();
      session = null;
    }
    if (client && topic) {
      try {
        await client.admin().deleteTopic(topic);
      } catch {}
    }
    topic = null;
  },
};

export default adapter;
