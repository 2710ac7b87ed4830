// A soak producer process (forked by run.mjs): runs some of the soak's producers with Rill's
// TypeScript client (built, from dist/) and records, for every record it sent, whether it was
// acknowledged and at which topic, partition and offset.
//
// Protocol (IPC): parent → {type:"start", ...} once; this process answers "ready", then sends
// {type:"progress"} every second, produces for `durationMs` (or until {type:"stop"}), waits for
// every send to settle, closes its clients, writes its ack file and answers {type:"done"}.
//
// Ack file (`acksFile`): one 20-byte row per record sent, little-endian:
//   [0,2) producer id u16, [2] state u8 (1 acked, 2 failed), [3] topic index u8, [4,8) seq u32,
//   [8,12) partition u32, [12,20) offset f64 (-1: failed, or acked at an unknown offset)
//
// Bounds: each producer has at most MAX_OUTSTANDING sends unsettled and sends at most
// MAX_PER_SEND records at once; the client's own buffer bound (bufferBytes) holds the rest back.
// With a rate, a producer that falls behind does not catch up in bursts larger than MAX_PER_SEND.
import { writeFile } from "node:fs/promises";
import { createClient } from "../../dist/clients/ts/src/index.js";
import { encodeValue, keyOf } from "./record.mjs";

const MAX_OUTSTANDING = 8;
const MAX_PER_SEND = 100;
const PRODUCERS_PER_CLIENT = 5;
const ROW = 20;
const STATE_ACKED = 1;
const STATE_FAILED = 2;

/** One producer's records: state, topic, partition and offset by sequence number. */
class Acks {
  constructor() {
    this.size = 0;
    this.grow(4096);
  }

  grow(capacity) {
    const next = {
      state: new Uint8Array(capacity),
      topic: new Uint8Array(capacity),
      partition: new Uint32Array(capacity),
      offset: new Float64Array(capacity).fill(-1),
    };
    if (this.state) {
      next.state.set(this.state);
      next.topic.set(this.topic);
      next.partition.set(this.partition);
      next.offset.set(this.offset);
    }
    Object.assign(this, next);
  }

  reserve(n) {
    const need = this.size + n;
    if (need > this.state.length) this.grow(Math.max(need, this.state.length * 2));
    const first = this.size;
    this.size = need;
    return first;
  }
}

class SoakProducer {
  constructor(id, client, job) {
    this.id = id;
    this.job = job;
    this.acksMode = id % 2 === 0 ? "per-stream" : "per-batch";
    this.producer = client.producer({ acks: this.acksMode, lingerMs: 5 });
    this.acks = new Acks();
    this.sends = 0;
    this.outstanding = new Set();
    this.failed = 0;
    this.errors = [];
  }

  /** Sends up to `n` records (seqs this.acks.size, ...) to the next topic in turn. */
  send(n) {
    const { topics, valueBytes, inject } = this.job;
    const topicIndex = this.sends++ % topics.length;
    const first = this.acks.reserve(n);
    const records = [];
    const seqs = [];
    for (let seq = first; seq < first + n; seq++) {
      // --inject: the first producer "loses" record 5 (counted as acked, never sent) or sends it twice.
      if (this.id === 0 && seq === 5 && inject === "lose") {
        this.acks.state[seq] = STATE_ACKED;
        this.acks.topic[seq] = topicIndex;
        continue;
      }
      const copies = this.id === 0 && seq === 5 && inject === "dup" ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        records.push({ key: keyOf(this.id, seq), value: encodeValue(this.id, seq, valueBytes) });
        seqs.push(seq);
      }
    }
    const acks = this.acks;
    const p = this.producer.send(topics[topicIndex], records).then(
      (metas) => {
        for (let i = 0; i < metas.length; i++) {
          const seq = seqs[i];
          acks.state[seq] = STATE_ACKED;
          acks.topic[seq] = topicIndex;
          acks.partition[seq] = metas[i].partition;
          acks.offset[seq] = Number(metas[i].offset);
        }
      },
      (e) => {
        for (const seq of seqs) {
          acks.state[seq] = STATE_FAILED;
          acks.topic[seq] = topicIndex;
        }
        this.failed += seqs.length;
        if (this.errors.length < 5) this.errors.push(`producer ${this.id}: ${e?.message ?? e}`);
      },
    );
    this.outstanding.add(p);
    p.finally(() => this.outstanding.delete(p));
  }

  /** One tick: sends what the rate allows (or, without a rate, what backpressure allows). */
  tick(elapsedMs) {
    const { ratePerProducer } = this.job;
    if (this.outstanding.size >= MAX_OUTSTANDING) return;
    if (ratePerProducer > 0) {
      const due = Math.floor((ratePerProducer * elapsedMs) / 1000) - this.acks.size;
      if (due > 0) this.send(Math.min(due, MAX_PER_SEND));
    } else if (this.producer.writable) {
      this.send(MAX_PER_SEND);
    }
  }

  acked() {
    let n = 0;
    for (let i = 0; i < this.acks.size; i++) if (this.acks.state[i] === STATE_ACKED) n++;
    return n;
  }
}

function rows(producers) {
  let total = 0;
  for (const p of producers) total += p.acks.size;
  const buf = Buffer.alloc(total * ROW);
  let at = 0;
  for (const p of producers) {
    const a = p.acks;
    for (let seq = 0; seq < a.size; seq++, at += ROW) {
      buf.writeUInt16LE(p.id, at);
      buf[at + 2] = a.state[seq];
      buf[at + 3] = a.topic[seq];
      buf.writeUInt32LE(seq, at + 4);
      buf.writeUInt32LE(a.partition[seq], at + 8);
      buf.writeDoubleLE(a.offset[seq], at + 12);
    }
  }
  return buf;
}

async function run(job) {
  const clients = [];
  const producers = job.producerIds.map((id, i) => {
    if (i % PRODUCERS_PER_CLIENT === 0) clients.push(createClient({ brokers: job.address }));
    return new SoakProducer(id, clients[clients.length - 1], job);
  });
  let stopping = false;
  process.on("message", (m) => {
    if (m?.type === "stop") stopping = true;
  });
  process.send({ type: "ready" });
  const started = performance.now();
  const tickMs = job.ratePerProducer > 0 ? 20 : 5;
  let sent = 0;
  const progress = setInterval(() => {
    sent = producers.reduce((a, p) => a + p.acks.size, 0);
    process.send({ type: "progress", sent });
  }, 1000);
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      if (stopping || elapsed >= job.durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      for (const p of producers) p.tick(elapsed);
    }, tickMs);
  });
  const producedMs = performance.now() - started;
  // Every send settles (acknowledged or failed after the client's bounded retries); the parent
  // kills this process if that takes longer than its catch-up bound.
  await Promise.all(producers.flatMap((p) => [...p.outstanding]));
  const closeErrors = [];
  for (const c of clients) await c.close().catch((e) => closeErrors.push(String(e?.message ?? e)));
  clearInterval(progress);
  await writeFile(job.acksFile, rows(producers));
  process.send(
    {
      type: "done",
      producedMs,
      flushedMs: performance.now() - started,
      producers: producers.map((p) => ({
        id: p.id,
        acks: p.acksMode,
        sent: p.acks.size,
        acked: p.acked(),
        failed: p.failed,
      })),
      errors: [...producers.flatMap((p) => p.errors), ...closeErrors].slice(0, 20),
    },
    () => process.disconnect(),
  );
}

process.once("message", (m) => {
  if (m?.type !== "start") return;
  run(m).catch((e) => {
    process.send({ type: "error", message: String(e?.stack ?? e) });
    process.exitCode = 1;
  });
});
