// A soak consumer process (forked by run.mjs): runs plain following consumers and/or consumer group
// members with Rill's TypeScript client (built, from dist/), each on its own client connection, and
// reports what each of them saw.
//
// Plain consumer: reads every partition of every topic from "earliest", following; a
// PartitionReader per partition checks dense offsets, CRCs and per-producer order and keeps a digest.
// Group member: `consumer.subscribe({ group, topics })`, joining at `joinAtMs` and leaving
// gracefully (close(): commit, leave) at `leaveAtMs` when given, so the group rebalances while
// records flow. It records the offsets it was handed per partition as runs [start, end) (a record
// at an offset below the end of the current run starts a new run: a redelivery) and checks CRCs.
//
// Protocol (IPC): parent → {type:"start", ...}; this process answers "ready" once the plain reads
// are started, sends {type:"progress"} every second; on {type:"go"} (the producers started) it arms
// the members' join/leave timers; on {type:"finish", ends, deadlineMs} it waits
// until every plain consumer reached `ends` and every group's members together did (or the deadline
// passed), closes everything and answers {type:"report"}.
import { createClient } from "../../dist/clients/ts/src/index.js";
import { decodeValue, PartitionReader } from "./record.mjs";

const tpKey = (topic, partition) => `${topic}/${partition}`;
const MAX_ERRORS = 5;
/** The --inject group-skip state shared by the members of this process. */
const injected = { done: false };

class PlainConsumer {
  constructor(spec, job) {
    this.id = spec.id;
    this.kind = "plain";
    this.client = createClient({ brokers: job.address });
    this.consumer = this.client.consumer();
    this.readers = new Map();
    this.abort = new AbortController();
    this.errors = [];
    this.consumed = 0;
    // --inject plain-skip: the first plain consumer drops the record at offset 3 of the first partition.
    this.skip = job.inject === "plain-skip" && spec.id === job.firstPlainId ? tpKey(job.topics[0], 0) : null;
    this.reads = job.topics.map((topic) => this.read(topic));
  }

  async read(topic) {
    try {
      const batches = this.consumer.readBatches({
        topic,
        from: "earliest",
        follow: true,
        signal: this.abort.signal,
      });
      for await (const batch of batches) {
        const key = tpKey(batch.topic, batch.partition);
        let reader = this.readers.get(key);
        if (!reader) {
          reader = new PartitionReader(`plain consumer ${this.id} ${key}`);
          this.readers.set(key, reader);
        }
        for (const r of batch.records) {
          const offset = Number(r.offset);
          if (key === this.skip && offset === 3) continue;
          reader.add(offset, r.value);
        }
        this.consumed += batch.records.length;
      }
    } catch (e) {
      if (this.errors.length < MAX_ERRORS) this.errors.push(`read ${topic}: ${e?.message ?? e}`);
    }
  }

  reached(ends) {
    for (const [key, end] of Object.entries(ends)) {
      if (end > 0 && (this.readers.get(key)?.next ?? 0) < end) return false;
    }
    return true;
  }

  async close() {
    this.abort.abort();
    await Promise.allSettled(this.reads);
    await this.client.close().catch((e) => this.errors.push(`close: ${e?.message ?? e}`));
  }

  report() {
    const partitions = {};
    for (const [key, reader] of this.readers) partitions[key] = reader.summary();
    return { id: this.id, kind: this.kind, consumed: this.consumed, partitions, errors: this.errors };
  }
}

class GroupMember {
  constructor(spec, job) {
    this.id = spec.id;
    this.kind = "member";
    this.group = spec.group;
    this.joinAtMs = spec.joinAtMs;
    this.leaveAtMs = spec.leaveAtMs;
    this.job = job;
    this.runs = new Map(); // "topic/p" -> [[start, end), ...]
    this.badCrc = 0;
    this.rewinds = 0;
    this.consumed = 0;
    this.assigned = 0;
    this.revoked = 0;
    this.errors = [];
    this.state = "waiting";
    this.client = undefined;
    this.sub = undefined;
    this.loop = undefined;
    // --inject group-skip: the first record at offset 3 handed to a member of the first group is
    // not recorded (as if the member had lost it), once per process.
    this.inject = job.inject === "group-skip" && spec.group === job.firstGroup ? injected : null;
    this.timers = [];
  }

  /** Arms the join and leave timers, relative to `startedAt` (when the producers started). */
  schedule(startedAt) {
    const at = (ms, fn) => setTimeout(fn, Math.max(0, startedAt + ms - performance.now()));
    this.timers.push(at(this.joinAtMs, () => this.join()));
    if (this.leaveAtMs !== null) this.timers.push(at(this.leaveAtMs, () => void this.leave()));
  }

  join() {
    if (this.state !== "waiting") return;
    this.state = "member";
    this.joinedAt = performance.now();
    this.client = createClient({ brokers: this.job.address });
    this.sub = this.client.consumer().subscribe({
      group: this.group,
      topics: this.job.topics,
      from: "earliest",
      memberName: `soak-member-${this.id}`,
      autoCommitIntervalMs: 1000,
    });
    this.sub.on("assigned", (tps) => (this.assigned += tps.length));
    this.sub.on("revoked", (tps) => (this.revoked += tps.length));
    this.loop = this.consume();
  }

  async consume() {
    try {
      for await (const r of this.sub) {
        const key = tpKey(r.topic, r.partition);
        const offset = Number(r.offset);
        if (this.inject && !this.inject.done && offset === 3) {
          this.inject.done = true;
          continue;
        }
        this.consumed++;
        if (decodeValue(r.value) === null) this.badCrc++;
        let runs = this.runs.get(key);
        if (!runs) {
          runs = [];
          this.runs.set(key, runs);
        }
        const last = runs[runs.length - 1];
        if (last && last[1] === offset) last[1]++;
        else {
          if (last && offset < last[1]) this.rewinds++;
          runs.push([offset, offset + 1]);
        }
      }
    } catch (e) {
      if (this.errors.length < MAX_ERRORS) this.errors.push(`subscription: ${e?.message ?? e}`);
    }
  }

  async leave() {
    if (this.state !== "member") {
      this.state = "gone";
      return;
    }
    this.state = "gone";
    this.leftAt = performance.now();
    await this.sub.close().catch((e) => this.errors.push(`close: ${e?.message ?? e}`));
    await this.loop;
    await this.client.close().catch((e) => this.errors.push(`client close: ${e?.message ?? e}`));
  }

  /** The highest offset + 1 this member was handed per partition. */
  highs() {
    const out = new Map();
    for (const [key, runs] of this.runs)
      out.set(
        key,
        runs.reduce((high, r) => Math.max(high, r[1]), 0),
      );
    return out;
  }

  async close() {
    for (const t of this.timers) clearTimeout(t);
    await this.leave();
  }

  report(startedAt) {
    return {
      id: this.id,
      kind: this.kind,
      group: this.group,
      joinAtMs: this.joinAtMs,
      leaveAtMs: this.leaveAtMs,
      joinedAtMs: this.joinedAt === undefined ? null : Math.round(this.joinedAt - startedAt),
      leftAtMs: this.leftAt === undefined ? null : Math.round(this.leftAt - startedAt),
      consumed: this.consumed,
      badCrc: this.badCrc,
      rewinds: this.rewinds,
      assigned: this.assigned,
      revoked: this.revoked,
      runs: Object.fromEntries(this.runs),
      errors: this.errors,
    };
  }
}

/** Whether every group's members together reached `ends` on every partition. */
function groupsReached(members, ends) {
  const byGroup = new Map();
  for (const m of members) {
    const highs = byGroup.get(m.group) ?? new Map();
    for (const [key, high] of m.highs()) highs.set(key, Math.max(highs.get(key) ?? 0, high));
    byGroup.set(m.group, highs);
  }
  for (const highs of byGroup.values()) {
    for (const [key, end] of Object.entries(ends)) if (end > 0 && (highs.get(key) ?? 0) < end) return false;
  }
  return true;
}

async function run(job) {
  const consumers = job.consumers.map((spec) =>
    spec.kind === "plain" ? new PlainConsumer(spec, job) : new GroupMember(spec, job),
  );
  const plain = consumers.filter((c) => c.kind === "plain");
  const members = consumers.filter((c) => c.kind === "member");
  const progress = setInterval(() => {
    process.send({ type: "progress", consumed: consumers.reduce((a, c) => a + c.consumed, 0) });
  }, 1000);
  let startedAt = performance.now();
  const finish = new Promise((resolve) =>
    process.on("message", (m) => {
      if (m?.type === "go") {
        startedAt = performance.now();
        for (const member of members) member.schedule(startedAt);
      }
      if (m?.type === "finish") resolve(m);
    }),
  );
  process.send({ type: "ready" });
  const { ends, deadlineMs } = await finish;
  const deadline = performance.now() + deadlineMs;
  const caughtUp = () => plain.every((c) => c.reached(ends)) && groupsReached(members, ends);
  while (!caughtUp() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const reached = caughtUp();
  const caughtUpMs = Math.round(performance.now() - startedAt);
  // Members still waiting to join never joined: say so rather than let them join now.
  await Promise.all(consumers.map((c) => c.close()));
  clearInterval(progress);
  process.send(
    {
      type: "report",
      reached,
      caughtUpMs,
      consumers: consumers.map((c) => c.report(startedAt)),
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
