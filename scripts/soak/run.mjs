#!/usr/bin/env node
// The soak test (`npm run soak -- --duration 60s`; not part of `npm test`): one broker process,
// producers and consumers in worker processes, for a bounded time; then every record is checked
// (0 lost, order kept per partition, 0 duplicates, plain consumers saw everything once in order,
// groups covered everything) while the broker's RSS and event-loop lag were sampled every second.
// Writes soak-results/soak-<timestamp>.{json,md} (git-ignored), prints the markdown summary, and
// exits 0 only if every check holds (1: a check failed, 2: bad flags).
//
// Phases and their bounds:
//   1. broker up (30 s), topics created, consumer workers started (30 s to be ready);
//   2. producer workers produce for --duration, then flush (--catch-up);
//   3. the high watermarks are read; consumers must reach them (--catch-up) while the log is read
//      back and checked (verify.mjs);
//   4. workers and broker stopped by PID (SIGTERM, SIGKILL after a bound), temp dirs removed.
// Files: options.mjs (flags), broker.mjs, workers.mjs (fork/IPC), producer-worker.mjs,
// consumer-worker.mjs, record.mjs (values, per-partition checks), sampler.mjs, verify.mjs, report.mjs.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../../dist/clients/ts/src/index.js";
import { startSoakBroker } from "./broker.mjs";
import { parseOptions, USAGE } from "./options.mjs";
import { checks, figures, markdown } from "./report.mjs";
import { Sampler } from "./sampler.mjs";
import { checkGroups, checkPlain, readAcks, verifyLog } from "./verify.mjs";
import { onMessage, startWorker, stopWorker, tell, waitFor as waitForMessage } from "./workers.mjs";

const READY_MS = 30_000;

/** A worker's message; a rejection nobody awaits any more (an earlier phase failed) is not fatal. */
function waitFor(worker, type, timeoutMs) {
  const p = waitForMessage(worker, type, timeoutMs);
  p.catch(() => {});
  return p;
}

/** The checkout the run used: commit and whether the working tree had changes. */
function checkout() {
  try {
    const git = (...args) => execFileSync("git", args, { encoding: "utf8", timeout: 5_000 }).trim();
    return { commit: git("rev-parse", "--short", "HEAD"), dirty: git("status", "--porcelain").length > 0 };
  } catch {
    return { commit: null, dirty: null };
  }
}
const PROGRESS_EVERY_S = 5;

/** Splits `n` items into `parts` nearly equal contiguous chunks (no empty chunk if n >= parts). */
function split(items, parts) {
  const out = [];
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const size = Math.floor(items.length / parts) + (i < items.length % parts ? 1 : 0);
    out.push(items.slice(at, at + size));
    at += size;
  }
  return out.filter((c) => c.length > 0);
}

/**
 * Group members and when they join and leave (ms after the producers start). In a group of k:
 * k-2 start at once (all of them when k <= 2); member k-2 joins at 25% of the run and leaves at
 * 75%; member k-1 joins at 50%; member 0 leaves at 40% (when k >= 3). Group g is shifted by g*5%
 * so that the groups do not rebalance at the same moment. Every change is a rebalance.
 */
function schedule(firstId, members, groups, durationMs) {
  const out = [];
  let id = firstId;
  split([...Array(members).keys()], groups).forEach((chunk, g) => {
    const k = chunk.length;
    const at = (fraction) => Math.round(durationMs * (fraction + g * 0.05));
    for (let i = 0; i < k; i++) {
      let joinAtMs = 0;
      let leaveAtMs = null;
      if (k >= 3 && i === k - 2) {
        joinAtMs = at(0.25);
        leaveAtMs = at(0.75);
      } else if (k >= 4 && i === k - 1) joinAtMs = at(0.5);
      else if (k >= 3 && i === 0) leaveAtMs = at(0.4);
      out.push({ id: id++, kind: "member", group: `soak-g${g}`, joinAtMs, leaveAtMs });
    }
  });
  return out;
}

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`soak: ${e.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const startedAt = new Date().toISOString();
  const stamp = startedAt.replace(/[:.]/g, "-");
  await mkdir(options.out, { recursive: true });
  const topics = [...Array(options.topics).keys()].map((i) => `soak-t${i}`);
  const r = {
    startedAt,
    options,
    machine: { cpus: cpus().length, loadStart: loadavg(), loadEnd: loadavg(), node: process.version },
    checkout: checkout(),
    broker: { pid: null, aliveAtEnd: false, exitCode: null },
    samples: [],
    missedScrapes: 0,
  };
  const log = (text) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

  log(
    `starting the broker (${options.producers} producers, ${options.plainConsumers} plain consumers, ` +
      `${options.groupMembers} group members, ${options.durationMs / 1000} s)`,
  );
  const broker = await startSoakBroker();
  r.broker.pid = broker.pid;
  const ackDir = await mkdtemp(join(tmpdir(), "rill-soak-acks-"));
  // Ctrl-C / SIGTERM: the exit handlers of workers.mjs and the bench's child.js SIGKILL every child
  // by PID; the temporary directories are removed here.
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ]) {
    process.once(signal, () => {
      rmSync(broker.dataDir, { recursive: true, force: true });
      rmSync(ackDir, { recursive: true, force: true });
      process.exit(code);
    });
  }
  const sampler = new Sampler(broker);
  const workers = [];
  try {
    const admin = createClient({ brokers: broker.address });
    try {
      for (const t of topics) await admin.admin().createTopic(t, { partitions: options.partitions });
    } finally {
      await admin.close();
    }
    sampler.start();

    // Consumers first, so the plain ones are reading when the first record lands.
    const plainSpecs = [...Array(options.plainConsumers).keys()].map((id) => ({ id, kind: "plain" }));
    const memberSpecs = schedule(
      options.plainConsumers,
      options.groupMembers,
      options.groups,
      options.durationMs,
    );
    r.schedule = memberSpecs;
    const consumerJobs = [
      ...split(plainSpecs, Math.ceil(plainSpecs.length / 10)).map((c, i) => ({
        name: `plain-consumers-${i}`,
        consumers: c,
      })),
      ...[...new Set(memberSpecs.map((m) => m.group))].map((g) => ({
        name: `group-${g}`,
        consumers: memberSpecs.filter((m) => m.group === g),
      })),
    ];
    const common = {
      type: "start",
      address: broker.address,
      topics,
      inject: options.inject,
      firstPlainId: 0,
      firstGroup: memberSpecs[0]?.group ?? null,
    };
    const consumerWorkers = consumerJobs.map((job) => {
      const w = startWorker("./consumer-worker.mjs", job.name);
      workers.push(w);
      w.consumed = 0;
      onMessage(w, (m) => {
        if (m?.type === "progress") w.consumed = m.consumed;
      });
      return { w, job };
    });
    const readyConsumers = consumerWorkers.map(({ w }) => waitFor(w, "ready", READY_MS));
    for (const { w, job } of consumerWorkers) tell(w, { ...common, consumers: job.consumers });
    await Promise.all(readyConsumers);

    const ids = [...Array(options.producers).keys()];
    const producerWorkers = split(ids, options.producerProcs).map((producerIds, i) => {
      const w = startWorker("./producer-worker.mjs", `producers-${i}`);
      workers.push(w);
      w.sent = 0;
      onMessage(w, (m) => {
        if (m?.type === "progress") w.sent = m.sent;
      });
      w.acksFile = join(ackDir, `acks-${i}.bin`);
      w.job = {
        type: "start",
        address: broker.address,
        topics,
        producerIds,
        ratePerProducer: options.rate / options.producers,
        valueBytes: options.valueBytes,
        durationMs: options.durationMs,
        acksFile: w.acksFile,
        inject: options.inject,
      };
      return w;
    });
    const readyProducers = producerWorkers.map((w) => waitFor(w, "ready", READY_MS));
    const doneProducers = producerWorkers.map((w) =>
      waitFor(w, "done", READY_MS + options.durationMs + options.catchUpMs),
    );
    for (const w of producerWorkers) tell(w, w.job);
    await Promise.all(readyProducers);
    sampler.phase = "run";
    for (const { w } of consumerWorkers) tell(w, { type: "go" });
    log(`producing for ${options.durationMs / 1000} s`);
    const progress = setInterval(() => {
      const s = sampler.samples[sampler.samples.length - 1];
      if (!s) return;
      log(
        `t=${s.t.toFixed(0)}s sent=${producerWorkers.reduce((a, w) => a + w.sent, 0)} ` +
          `consumed=${consumerWorkers.reduce((a, { w }) => a + w.consumed, 0)} ` +
          `rss=${s.rssBytes === null ? "?" : (s.rssBytes / 1048576).toFixed(0)}MB ` +
          `lag p99=${s.lagP99Ms?.toFixed(1) ?? "?"}ms in/s=${s.inPerSec ?? "?"} out/s=${s.outPerSec ?? "?"}`,
      );
    }, PROGRESS_EVERY_S * 1000);
    try {
      const done = await Promise.all(doneProducers);
      r.producedMs = Math.max(...done.map((d) => d.producedMs));
      r.flushedMs = Math.max(...done.map((d) => d.flushedMs));
      sampler.phase = "catch-up";
      const acks = await readAcks(producerWorkers.map((w) => w.acksFile));
      r.producers = {
        sent: acks.sent,
        acked: acks.acked,
        failed: acks.failed,
        errors: done.flatMap((d) => d.errors),
        perProducer: done.flatMap((d) => d.producers),
      };
      log(
        `producers done: ${acks.sent} sent, ${acks.acked} acked, ${acks.failed} failed; consumers catching up`,
      );

      const ends = {};
      const reader = createClient({ brokers: broker.address });
      try {
        for (const t of topics) {
          for (const po of await reader.admin().listOffsets(t))
            ends[`${t}/${po.partition}`] = Number(po.latest);
        }
      } finally {
        await reader.close();
      }
      r.ends = ends;
      // Each rebalance is a new generation (the first join is generation 1).
      const groupAdmin = createClient({ brokers: broker.address });
      try {
        r.generations = {};
        for (const g of new Set(memberSpecs.map((m) => m.group))) {
          r.generations[g] = Number((await groupAdmin.admin().describeGroup(g)).generationId);
        }
      } finally {
        await groupAdmin.close();
      }
      const reports = consumerWorkers.map(({ w }) => waitFor(w, "report", options.catchUpMs + 30_000));
      for (const { w } of consumerWorkers) tell(w, { type: "finish", ends, deadlineMs: options.catchUpMs });
      const [logResult, consumerReports] = await Promise.all([
        verifyLog(broker.address, topics, ends, acks, options.catchUpMs),
        Promise.all(reports),
      ]);
      r.log = logResult;
      r.consumersReached = consumerReports.every((c) => c.reached);
      r.consumersCaughtUpMs = Math.max(r.producedMs, ...consumerReports.map((c) => c.caughtUpMs));
      const all = consumerReports.flatMap((c) => c.consumers);
      r.plain = checkPlain(
        all.filter((c) => c.kind === "plain"),
        ends,
        logResult.partitions,
      );
      r.groups = checkGroups(
        all.filter((c) => c.kind === "member"),
        ends,
      );
      r.members = all.filter((c) => c.kind === "member").map(({ runs: _runs, ...rest }) => rest);
      log("checks done");
    } finally {
      clearInterval(progress);
    }
  } catch (e) {
    r.fatal = String(e?.message ?? e);
    log(`failed: ${r.fatal}`);
  } finally {
    sampler.stop();
    r.samples = sampler.samples;
    r.missedScrapes = sampler.errors;
    r.broker.aliveAtEnd = broker.alive();
    await Promise.all(workers.map((w) => stopWorker(w)));
    r.workerExitCodes = Object.fromEntries(workers.map((w) => [w.name, w.exitCode]));
    r.broker.exitCode = await broker.stop();
    if (r.broker.exitCode !== 0) r.broker.tail = broker.tail();
    await rm(ackDir, { recursive: true, force: true });
    r.machine.loadEnd = loadavg();
  }

  const cs = checks(r);
  const f = figures(r);
  const md = markdown(r, cs, f);
  const base = join(options.out, `soak-${stamp}`);
  await writeFile(`${base}.json`, `${JSON.stringify({ ...r, checks: cs, figures: f }, null, 2)}\n`);
  await writeFile(`${base}.md`, md);
  process.stdout.write(`${md}\nwritten: ${base}.json, ${base}.md\n`);
  return cs.every((c) => c.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`soak: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
