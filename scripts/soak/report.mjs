// The soak's verdicts and its summary: turns the run's results into a list of checks (each passes
// or fails, with a detail), headline figures from the broker samples, and a markdown summary
// (checks, figures, a time series of RSS / event-loop lag / records per second). Pure functions of
// the result object run.mjs assembles; nothing here touches the broker.

const MB = 1024 * 1024;
const TIME_SERIES_ROWS = 24;

const fmt = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n) ? "–" : Number(n).toFixed(digits);
const mb = (bytes) => fmt(bytes === null || bytes === undefined ? null : bytes / MB, 1);
const maxOf = (xs) => (xs.length === 0 ? null : Math.max(...xs));
const meanOf = (xs) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
const numbers = (samples, field) => samples.map((s) => s[field]).filter((v) => typeof v === "number");

/** One check: a name, whether it holds and why. */
function check(name, ok, detail) {
  return { name, ok: Boolean(ok), detail };
}

const list = (xs) => (xs && xs.length > 0 ? ` — ${xs.join("; ")}` : "");

/** The checks of a finished run (see the file header); `r` is run.mjs's result object. */
export function checks(r) {
  const out = [];
  out.push(check("run completed", r.fatal === undefined, r.fatal ?? "every phase ran"));
  out.push(
    check(
      "broker never crashed",
      r.broker.aliveAtEnd && r.broker.exitCode === 0,
      `alive after the run: ${r.broker.aliveAtEnd}; exit code after SIGTERM: ${r.broker.exitCode}`,
    ),
  );
  const p = r.producers;
  if (p) {
    out.push(
      check(
        "every send acknowledged",
        p.failed === 0 && p.sent > 0 && p.errors.length === 0,
        `${p.sent} records sent, ${p.acked} acknowledged, ${p.failed} failed${list(p.errors)}`,
      ),
    );
  }
  const v = r.log;
  if (v) {
    const l = v.log;
    out.push(
      check(
        "log: offsets dense, CRCs good",
        l.gaps + l.repeats + l.badCrc + l.endMismatches === 0 && v.errors.length === 0,
        `${l.records} records read back; ${l.gaps} gaps, ${l.repeats} repeats, ${l.badCrc} bad CRCs, ` +
          `${l.endMismatches} partitions not read to their high watermark${list([...l.examples, ...v.errors])}`,
      ),
    );
    out.push(
      check(
        "order kept per partition",
        l.orderViolations === 0,
        `${l.orderViolations} records whose producer sequence did not increase within their partition`,
      ),
    );
    out.push(
      check(
        "0 records lost",
        v.lost.count === 0,
        `${v.lost.count} acknowledged records not in the log${list(v.lost.examples)}`,
      ),
    );
    out.push(
      check(
        "0 duplicates in the log",
        v.duplicates.count === 0,
        `${v.duplicates.count} extra copies${list(v.duplicates.examples)}`,
      ),
    );
    out.push(
      check(
        "acked offsets match the log",
        v.misplaced.count === 0 && v.unknown.count === 0,
        `${v.misplaced.count} records at another offset than acked, ${v.unknown.count} records never sent, ` +
          `${v.ackedAtUnknownOffset} acked without an offset${list([...v.misplaced.examples, ...v.unknown.examples])}`,
      ),
    );
  }
  if (r.plain) {
    out.push(
      check(
        "plain consumers: every record once, in order",
        r.plain.bad === 0 && r.consumersReached !== false,
        `${r.plain.consumers} consumers, ${r.plain.records} records read, ${r.plain.bad} consumers with a problem${list(r.plain.examples)}`,
      ),
    );
  }
  for (const g of r.groups ?? []) {
    out.push(
      check(
        `group ${g.group}: every record at least once`,
        g.missing === 0 && g.badCrc === 0 && g.errors.length === 0,
        `${g.members} members (${g.joined} joined, ${g.left} left during the run), ${g.records} records handed out, ` +
          `${g.missing} never handed out, ${g.badCrc} bad CRCs${list([...g.examples, ...g.errors])}`,
      ),
    );
    out.push(
      check(
        `group ${g.group}: 0 redeliveries (graceful rebalances)`,
        g.duplicates === 0,
        `${g.duplicates} records handed out more than once, ${g.rewinds} rewinds within a member, ` +
          `${g.assignedEvents} partitions assigned / ${g.revokedEvents} revoked over the run, ` +
          `generation ${r.generations?.[g.group] ?? "?"} before the final leaves`,
      ),
    );
  }
  out.push(
    check(
      "consumers caught up within the bound",
      r.consumersReached === true,
      r.consumersCaughtUpMs === undefined
        ? "not reached"
        : `all at the end offsets ${fmt(r.consumersCaughtUpMs / 1000, 1)} s after the producers started, ` +
            `${fmt((r.consumersCaughtUpMs - (r.producedMs ?? 0)) / 1000, 1)} s after they stopped`,
    ),
  );
  return out;
}

/** Headline figures from the samples. */
export function figures(r) {
  const samples = r.samples;
  const during = samples.filter((s) => s.phase === "run");
  const rss = numbers(samples, "rssBytes");
  const runRss = numbers(during, "rssBytes");
  const acked = r.producers?.acked ?? 0;
  return {
    samples: samples.length,
    missedScrapes: r.missedScrapes,
    rssFirstBytes: rss[0] ?? null,
    rssLastRunBytes: runRss[runRss.length - 1] ?? null,
    rssPeakBytes: maxOf(rss),
    rssFinalBytes: rss[rss.length - 1] ?? null,
    heapPeakBytes: maxOf(numbers(samples, "heapUsedBytes")),
    lagMeanMs: meanOf(numbers(during, "lagMs")),
    lagP99MaxMs: maxOf(numbers(during, "lagP99Ms")),
    lagP99MeanMs: meanOf(numbers(during, "lagP99Ms")),
    lagMaxMs: maxOf(numbers(during, "lagMaxMs")),
    controlLagP99MeanMs: meanOf(numbers(during, "controlLagP99Ms")),
    controlLagP99MaxMs: maxOf(numbers(during, "controlLagP99Ms")),
    inPerSecMean: meanOf(numbers(during, "inPerSec")),
    inPerSecPeak: maxOf(numbers(during, "inPerSec")),
    outPerSecMean: meanOf(numbers(during, "outPerSec")),
    outPerSecPeak: maxOf(numbers(during, "outPerSec")),
    ackedPerSec: r.producedMs ? acked / (r.producedMs / 1000) : null,
    openFdsPeak: maxOf(numbers(samples, "openFds")),
    streamsBlockedPeak: maxOf(numbers(samples, "streamsBlocked")),
  };
}

function timeSeries(samples) {
  const step = Math.max(1, Math.ceil(samples.length / TIME_SERIES_ROWS));
  const rows = [
    "| t (s) | phase | RSS (MB) | heap (MB) | lag (ms) | lag p99 (ms) | lag max (ms) | control p99 (ms) | in (rec/s) | out (rec/s) |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (let i = 0; i < samples.length; i += step) {
    const s = samples[i];
    rows.push(
      `| ${fmt(s.t, 0)} | ${s.phase} | ${mb(s.rssBytes)} | ${mb(s.heapUsedBytes)} | ${fmt(s.lagMs, 1)} | ` +
        `${fmt(s.lagP99Ms, 1)} | ${fmt(s.lagMaxMs, 1)} | ${fmt(s.controlLagP99Ms, 1)} | ${fmt(s.inPerSec)} | ${fmt(s.outPerSec)} |`,
    );
  }
  return rows.join("\n");
}

/** The markdown summary of a run. */
export function markdown(r, cs, f) {
  const o = r.options;
  const passed = cs.every((c) => c.ok);
  const lines = [
    `## Soak run ${r.startedAt} — ${passed ? "PASSED" : "FAILED"}`,
    "",
    `\`npm run soak -- --duration ${o.durationMs / 1000}s\`: one broker process (pid ${r.broker.pid}), ` +
      `${o.producers} producers in ${o.producerProcs} processes (even ids acks per-stream, odd per-batch), ` +
      `${o.plainConsumers} plain following consumers, ${o.groupMembers} members of ${o.groups} groups ` +
      `(members joining and leaving during the run), ${o.topics} topics × ${o.partitions} partitions, ` +
      `target ${o.rate === 0 ? "as fast as backpressure allows" : `${o.rate} records/s`}, ${o.valueBytes}-byte values` +
      `${o.inject === "none" ? "" : `, **fault injected: ${o.inject}**`}.`,
    `Machine: ${r.machine.cpus} cores, load average ${r.machine.loadStart.map((x) => x.toFixed(2)).join(" ")} at the start, ` +
      `${r.machine.loadEnd.map((x) => x.toFixed(2)).join(" ")} at the end (shared with other engineers' test runs); Node ${r.machine.node}; ` +
      `commit ${r.checkout?.commit ?? "?"}${r.checkout?.dirty ? " with uncommitted changes" : ""}.`,
    "",
    "| check | result | detail |",
    "|---|---|---|",
    ...cs.map((c) => `| ${c.name} | ${c.ok ? "ok" : "**FAIL**"} | ${c.detail.replaceAll("|", "\\|")} |`),
    "",
    "| figure | value |",
    "|---|---:|",
    `| records acknowledged | ${r.producers?.acked ?? "–"} (${fmt(f.ackedPerSec)} /s over ${fmt((r.producedMs ?? 0) / 1000, 1)} s) |`,
    `| records read back by all consumers | ${(r.plain?.records ?? 0) + (r.groups ?? []).reduce((a, g) => a + g.records, 0)} |`,
    `| broker records in /s (mean, peak) | ${fmt(f.inPerSecMean)}, ${fmt(f.inPerSecPeak)} |`,
    `| broker records out /s (mean, peak) | ${fmt(f.outPerSecMean)}, ${fmt(f.outPerSecPeak)} |`,
    `| broker RSS first sample / end of run / peak / after catch-up (MB) | ${mb(f.rssFirstBytes)} / ${mb(f.rssLastRunBytes)} / ${mb(f.rssPeakBytes)} / ${mb(f.rssFinalBytes)} |`,
    `| broker heap used peak (MB) | ${mb(f.heapPeakBytes)} |`,
    `| event-loop lag mean (ms) | ${fmt(f.lagMeanMs, 1)} |`,
    `| event-loop lag p99 per second: mean / worst (ms) | ${fmt(f.lagP99MeanMs, 1)} / ${fmt(f.lagP99MaxMs, 1)} |`,
    `| event-loop lag max (ms) | ${fmt(f.lagMaxMs, 1)} |`,
    `| control: the soak's own main process, lag p99 per second mean / worst (ms) | ${fmt(f.controlLagP99MeanMs, 1)} / ${fmt(f.controlLagP99MaxMs, 1)} |`,
    `| open fds peak / blocked streams peak | ${fmt(f.openFdsPeak)} / ${fmt(f.streamsBlockedPeak)} |`,
    `| producers flushed after (s) | ${fmt((r.flushedMs ?? 0) / 1000, 1)} |`,
    `| samples (missed scrapes) | ${f.samples} (${f.missedScrapes}) |`,
    "",
    "Broker samples (every second; rows thinned to at most 24; lag columns from prom-client's " +
      "nodejs_eventloop_lag_* gauges, p99/max over the second before the sample; control p99: the " +
      "soak's own nearly idle main process, a measure of the machine's CPU contention):",
    "",
    timeSeries(r.samples),
    "",
  ];
  if (r.schedule?.length) {
    lines.push(
      "Group membership changes (ms after the producers started):",
      "",
      ...r.schedule.map(
        (m) =>
          `- ${m.group} member ${m.id}: joins at ${m.joinAtMs}${m.leaveAtMs === null ? "" : `, leaves at ${m.leaveAtMs}`}`,
      ),
      "",
    );
  }
  return lines.join("\n");
}
