// Samples the broker once a second: RSS from /proc/<pid>/status (VmRSS), and from its Prometheus
// endpoint the event-loop lag (prom-client's nodejs_eventloop_lag_* gauges; the p99/max ones come
// from a delay histogram that prom-client resets on every scrape, so each sample covers the second
// since the previous one), heap used, open file descriptors, blocked streams and the records in/out
// counters, turned into records/s.
//
// Control: the soak's own (nearly idle) main process measures its event-loop delay the same way;
// when it is as high as the broker's, the lag is the machine's CPU contention, not the broker.
//
// Bounds: one scrape at a time (a tick that finds the previous scrape still running is skipped, so
// under heavy load samples come less often than every second; rates use the real interval), each
// aborted after SCRAPE_TIMEOUT_MS (a missed scrape is recorded as a sample with null metrics, never
// retried); at most MAX_SAMPLES samples are kept.
import { readFile } from "node:fs/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import parsePrometheusTextFormat from "parse-prometheus-text-format";

const SCRAPE_TIMEOUT_MS = 2_500;
const MAX_SAMPLES = 2 * 3600;

async function rssBytes(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null; // not Linux, or the process is gone
  }
}

/** Sum of a metric's samples (all label sets), or null when the scrape lacks it. */
function total(families, name) {
  const f = families.get(name);
  if (!f) return null;
  return f.metrics.reduce((a, m) => a + Number(m.value), 0);
}

async function scrape(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const families = new Map(parsePrometheusTextFormat(await res.text()).map((f) => [f.name, f]));
  const ms = (name) => {
    const seconds = total(families, name);
    return seconds === null ? null : seconds * 1000;
  };
  return {
    lagMs: ms("nodejs_eventloop_lag_seconds"),
    lagP99Ms: ms("nodejs_eventloop_lag_p99_seconds"),
    lagMaxMs: ms("nodejs_eventloop_lag_max_seconds"),
    heapUsedBytes: total(families, "nodejs_heap_size_used_bytes"),
    openFds: total(families, "process_open_fds"),
    streamsBlocked: total(families, "rill_streams_blocked"),
    recordsIn: total(families, "rill_records_in_total") ?? 0,
    recordsOut: total(families, "rill_records_out_total") ?? 0,
  };
}

export class Sampler {
  constructor(broker) {
    this.broker = broker;
    this.samples = [];
    this.phase = "setup";
    this.errors = 0;
    this.timer = undefined;
    this.busy = false;
    this.prev = undefined;
  }

  start() {
    this.t0 = performance.now();
    this.control = monitorEventLoopDelay({ resolution: 10 });
    this.control.enable();
    this.timer = setInterval(() => void this.sample(), 1000);
  }

  async sample() {
    if (this.busy || this.samples.length >= MAX_SAMPLES) return;
    this.busy = true;
    try {
      const at = performance.now();
      const [rss, m] = await Promise.all([
        rssBytes(this.broker.pid),
        scrape(this.broker.metricsUrl).catch(() => null),
      ]);
      if (m === null) this.errors++;
      const s = {
        t: Math.round((at - this.t0) / 100) / 10,
        phase: this.phase,
        rssBytes: rss,
        ...m,
        controlLagP99Ms: this.control.percentile(99) / 1e6,
      };
      this.control.reset();
      if (m !== null && this.prev !== undefined) {
        const dt = (at - this.prev.at) / 1000;
        s.inPerSec = Math.round((m.recordsIn - this.prev.recordsIn) / dt);
        s.outPerSec = Math.round((m.recordsOut - this.prev.recordsOut) / dt);
      }
      if (m !== null) this.prev = { at, recordsIn: m.recordsIn, recordsOut: m.recordsOut };
      this.samples.push(s);
    } finally {
      this.busy = false;
    }
  }

  stop() {
    clearInterval(this.timer);
    this.control?.disable();
  }
}
