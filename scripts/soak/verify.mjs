// The soak's end-of-run checks, once producers have flushed:
// - readAcks: the producers' ack files (layout in producer-worker.mjs) into one table;
// - verifyLog: reads every partition from offset 0 to its high watermark with a fresh plain
//   consumer and checks offsets dense, CRCs, each producer's sequence strictly increasing within
//   the partition, and every acknowledged record present exactly once, at the offset its ack gave;
// - checkPlain / checkGroups: what the consumer workers reported, against the log.
//
// Memory: one entry per record sent (typed arrays, indexed by producer and sequence number).
// Every finding counter is exact; `examples` keeps at most MAX_EXAMPLES messages per check.
import { readFile } from "node:fs/promises";
import { createClient } from "../../dist/clients/ts/src/index.js";
import { PartitionReader } from "./record.mjs";

const ROW = 20;
const STATE_ACKED = 1;
const STATE_FAILED = 2;
const MAX_EXAMPLES = 5;
const tpKey = (topic, partition) => `${topic}/${partition}`;

function examples() {
  const list = [];
  list.add = (text) => {
    if (list.length < MAX_EXAMPLES) list.push(text);
  };
  return list;
}

/** Per producer: state, topic, partition and acked offset by sequence number. */
export async function readAcks(files) {
  const rows = [];
  let maxProducer = -1;
  for (const file of files) {
    const buf = await readFile(file);
    for (let at = 0; at + ROW <= buf.length; at += ROW) {
      const producer = buf.readUInt16LE(at);
      maxProducer = Math.max(maxProducer, producer);
      rows.push(at, buf);
    }
  }
  const counts = new Array(maxProducer + 1).fill(0);
  for (let i = 0; i < rows.length; i += 2) counts[rows[i + 1].readUInt16LE(rows[i])]++;
  const byProducer = counts.map((n) => ({
    state: new Uint8Array(n),
    topic: new Uint8Array(n),
    partition: new Uint32Array(n),
    offset: new Float64Array(n),
  }));
  for (let i = 0; i < rows.length; i += 2) {
    const at = rows[i];
    const buf = rows[i + 1];
    const p = byProducer[buf.readUInt16LE(at)];
    const seq = buf.readUInt32LE(at + 4);
    if (seq >= p.state.length) throw new Error(`ack file: producer seq ${seq} out of range`);
    p.state[seq] = buf[at + 2];
    p.topic[seq] = buf[at + 3];
    p.partition[seq] = buf.readUInt32LE(at + 8);
    p.offset[seq] = buf.readDoubleLE(at + 12);
  }
  let sent = 0;
  let acked = 0;
  let failed = 0;
  for (const p of byProducer) {
    sent += p.state.length;
    for (const s of p.state) {
      if (s === STATE_ACKED) acked++;
      else if (s === STATE_FAILED) failed++;
    }
  }
  return { byProducer, sent, acked, failed };
}

/** Where each (producer, seq) was found in the log, and how often. */
class LogIndex {
  constructor(acks) {
    this.byProducer = acks.byProducer.map((a) => ({
      count: new Uint8Array(a.state.length),
      topic: new Uint8Array(a.state.length),
      partition: new Uint32Array(a.state.length),
      offset: new Float64Array(a.state.length),
    }));
    this.unknown = 0;
    this.unknownExamples = examples();
  }

  add(topicIndex, partition, offset, producer, seq) {
    const p = this.byProducer[producer];
    if (!p || seq >= p.count.length) {
      this.unknown++;
      this.unknownExamples.add(
        `producer ${producer} seq ${seq} at ${topicIndex}/${partition}@${offset} was never sent`,
      );
      return;
    }
    if (p.count[seq] < 255) p.count[seq]++;
    if (p.count[seq] === 1) {
      p.topic[seq] = topicIndex;
      p.partition[seq] = partition;
      p.offset[seq] = offset;
    }
  }
}

/** Reads the whole log and checks it against the acks (see the file header). */
export async function verifyLog(address, topics, ends, acks, timeoutMs) {
  const client = createClient({ brokers: address });
  const index = new LogIndex(acks);
  const partitions = {};
  const errors = [];
  try {
    const consumer = client.consumer();
    // Bounded: an aborted read ends quietly, and the partitions it did not finish show up below as
    // "not read to their high watermark".
    const signal = AbortSignal.timeout(timeoutMs);
    for (let t = 0; t < topics.length; t++) {
      const readers = new Map();
      for await (const batch of consumer.readBatches({
        topic: topics[t],
        from: "earliest",
        follow: false,
        signal,
      })) {
        const key = tpKey(batch.topic, batch.partition);
        let reader = readers.get(key);
        if (!reader) {
          reader = new PartitionReader(`log ${key}`);
          readers.set(key, reader);
        }
        for (const r of batch.records) {
          const offset = Number(r.offset);
          const d = reader.add(offset, r.value);
          if (d !== null) index.add(t, batch.partition, offset, d.producer, d.seq);
        }
      }
      for (const [key, reader] of readers) partitions[key] = reader.summary();
    }
  } catch (e) {
    errors.push(`reading the log: ${e?.message ?? e}`);
  } finally {
    await client.close().catch(() => {});
  }
  const log = {
    records: 0,
    gaps: 0,
    repeats: 0,
    badCrc: 0,
    orderViolations: 0,
    endMismatches: 0,
    examples: examples(),
  };
  for (const [key, end] of Object.entries(ends)) {
    const s = partitions[key] ?? {
      next: 0,
      count: 0,
      gaps: 0,
      repeats: 0,
      badCrc: 0,
      orderViolations: 0,
      examples: [],
    };
    log.records += s.count;
    log.gaps += s.gaps;
    log.repeats += s.repeats;
    log.badCrc += s.badCrc;
    log.orderViolations += s.orderViolations;
    if (s.next !== end || s.count !== end) {
      log.endMismatches++;
      log.examples.add(`${key}: read ${s.count} records up to offset ${s.next}, high watermark ${end}`);
    }
    for (const e of s.examples) log.examples.add(e);
  }
  // Acks against the log.
  const lost = { count: 0, examples: examples() };
  const duplicates = { count: 0, examples: examples() };
  const misplaced = { count: 0, examples: examples() };
  let failedButPresent = 0;
  let ackedAtUnknownOffset = 0;
  acks.byProducer.forEach((a, producer) => {
    const found = index.byProducer[producer];
    for (let seq = 0; seq < a.state.length; seq++) {
      const n = found.count[seq];
      if (n > 1) {
        duplicates.count += n - 1;
        duplicates.examples.add(`producer ${producer} seq ${seq} is in the log ${n} times`);
      }
      if (a.state[seq] === STATE_FAILED) {
        if (n > 0) failedButPresent++;
        continue;
      }
      if (a.state[seq] !== STATE_ACKED) continue;
      if (n === 0) {
        lost.count++;
        lost.examples.add(
          `producer ${producer} seq ${seq} (acked at ${topics[a.topic[seq]]}/${a.partition[seq]}@${a.offset[seq]}) is not in the log`,
        );
        continue;
      }
      if (a.offset[seq] < 0) {
        ackedAtUnknownOffset++;
        continue;
      }
      if (
        found.topic[seq] !== a.topic[seq] ||
        found.partition[seq] !== a.partition[seq] ||
        found.offset[seq] !== a.offset[seq]
      ) {
        misplaced.count++;
        misplaced.examples.add(
          `producer ${producer} seq ${seq}: acked at ${topics[a.topic[seq]]}/${a.partition[seq]}@${a.offset[seq]}, ` +
            `in the log at ${topics[found.topic[seq]]}/${found.partition[seq]}@${found.offset[seq]}`,
        );
      }
    }
  });
  return {
    partitions,
    log,
    lost,
    duplicates,
    misplaced,
    unknown: { count: index.unknown, examples: index.unknownExamples },
    failedButPresent,
    ackedAtUnknownOffset,
    errors,
  };
}

/** Every plain consumer saw every record of every partition exactly once, in order, as in the log. */
export function checkPlain(reports, ends, logPartitions) {
  const out = { consumers: 0, records: 0, bad: 0, examples: examples() };
  for (const c of reports) {
    out.consumers++;
    let ok = c.errors.length === 0;
    for (const e of c.errors) out.examples.add(`plain consumer ${c.id}: ${e}`);
    for (const [key, end] of Object.entries(ends)) {
      const s = c.partitions[key];
      const logDigest = logPartitions[key]?.digest ?? 0;
      if (end === 0 && s === undefined) continue;
      if (!s) {
        ok = false;
        out.examples.add(`plain consumer ${c.id} ${key}: no record read, ${end} in the log`);
        continue;
      }
      out.records += s.count;
      const problems = [];
      if (s.count !== end || s.next !== end)
        problems.push(`read ${s.count} records up to ${s.next}, log has ${end}`);
      if (s.gaps || s.repeats) problems.push(`${s.gaps} gaps, ${s.repeats} repeats`);
      if (s.badCrc) problems.push(`${s.badCrc} bad CRCs`);
      if (s.orderViolations) problems.push(`${s.orderViolations} order violations`);
      if (s.digest !== logDigest) problems.push("digest differs from the log's");
      if (problems.length > 0) {
        ok = false;
        out.examples.add(`plain consumer ${c.id} ${key}: ${problems.join("; ")}`);
        for (const e of s.examples) out.examples.add(e);
      }
    }
    if (!ok) out.bad++;
  }
  return out;
}

/** Per group: every record handed to some member (missing = 0); duplicates counted. */
export function checkGroups(reports, ends) {
  const groups = new Map();
  for (const m of reports) {
    const list = groups.get(m.group) ?? [];
    list.push(m);
    groups.set(m.group, list);
  }
  const out = [];
  for (const [group, members] of groups) {
    const g = {
      group,
      members: members.length,
      joined: members.filter((m) => m.joinedAtMs !== null).length,
      left: members.filter((m) => m.leaveAtMs !== null && m.leftAtMs !== null).length,
      records: 0,
      missing: 0,
      duplicates: 0,
      beyondEnd: 0,
      badCrc: 0,
      rewinds: 0,
      assignedEvents: 0,
      revokedEvents: 0,
      errors: [],
      examples: examples(),
    };
    for (const m of members) {
      g.badCrc += m.badCrc;
      g.rewinds += m.rewinds;
      g.assignedEvents += m.assigned;
      g.revokedEvents += m.revoked;
      for (const e of m.errors) g.errors.push(`member ${m.id}: ${e}`);
    }
    for (const [key, end] of Object.entries(ends)) {
      const seen = new Uint16Array(end);
      for (const m of members) {
        for (const [start, stop] of m.runs[key] ?? []) {
          for (let o = start; o < stop; o++) {
            if (o >= end) g.beyondEnd++;
            else if (seen[o] < 65535) seen[o]++;
          }
        }
      }
      let missingHere = 0;
      for (let o = 0; o < end; o++) {
        const n = seen[o];
        g.records += n;
        if (n === 0) {
          if (missingHere++ === 0) g.examples.add(`${key}: offset ${o} handed to no member`);
        } else if (n > 1) g.duplicates += n - 1;
      }
      g.missing += missingHere;
    }
    out.push(g);
  }
  return out;
}
