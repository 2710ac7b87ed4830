import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Durability } from "../../clients/ts/src/gen/rill/v1/log.js";
import { startBroker } from "../../server/src/main.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { groupStub, RawMember } from "./helpers/group.js";
import { api, fetchAll, produce, produceRequest, record, type Stubs, stubs, values } from "./helpers/grpc.js";

let tb: TestBroker;
let s: Stubs;

beforeAll(async () => {
  tb = await startTestBroker({ metricsPort: 0 });
  s = stubs(tb.address);
});

afterAll(async () => {
  s?.close();
  await tb?.stop();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (what prom-client writes): one sample per non-# line. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

class Scrape {
  constructor(readonly samples: Sample[]) {}

  /** Sum of the samples named `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.matching(name, labels).reduce((a, s) => a + s.value, 0);
  }

  matching(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(`http://${tb.broker.metricsAddress}/metrics`, {
    signal: AbortSignal.timeout(5000),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Scrape(parse(await res.text()));
}

/** Scrapes until `ok` holds (the server may see a stream end just after the client does). */
async function scrapeUntil(ok: (m: Scrape) => boolean, ms = 5000): Promise<Scrape> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await scrape();
    if (ok(m) || Date.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const LOG = "rill.v1.LogService";

describe("integration > metrics", () => {
  it("serves /metrics on the broker's host", () => {
    // Ensures metrics.port 0 binds a free port on the listen host and the broker says where.
    expect(tb.broker.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(tb.broker.metricsAddress).not.toBe(tb.address);
  });

  it("counts produced and fetched records and bytes, RPCs, fsyncs and partition gauges exactly", async () => {
    // Ensures every counter moves by exactly what the calls did, read from the scrape as Prometheus would.
    const topic = randomTopic("m");
    await api(s).createTopic({ topic, partitions: 2, config: undefined });
    const before = await scrape();
    const BATCHES = 10;
    const PER_BATCH = 10;
    const N = BATCHES * PER_BATCH;
    const VALUE_BYTES = 100;
    const requests = Array.from({ length: BATCHES }, (_, b) =>
      produceRequest(
        topic,
        0,
        Array.from({ length: PER_BATCH }, (_, i) =>
          record(Buffer.alloc(VALUE_BYTES, String.fromCharCode(97 + ((b * PER_BATCH + i) % 26)))),
        ),
        { durability: Durability.DURABILITY_FSYNCED },
      ),
    );
    const out = await produce(s.log, requests);
    expect(out.error).toBeUndefined();

    const afterProduce = await scrape();
    const t = { topic };
    expect(afterProduce.sum("rill_records_in_total", t)).toBe(N);
    const bytesIn = afterProduce.sum("rill_bytes_in_total", t);
    expect(bytesIn).toBeGreaterThanOrEqual(N * VALUE_BYTES);
    // Bytes in are stored-frame bytes: exactly what the partition's segment files grew by.
    expect(bytesIn).toBe(afterProduce.sum("rill_partition_size_bytes", t));
    expect(afterProduce.sum("rill_records_out_total", t)).toBe(0);
    const produceOk = { service: LOG, method: "Produce", code: "OK" };
    expect(
      afterProduce.sum("rill_rpc_handled_total", produceOk) - before.sum("rill_rpc_handled_total", produceOk),
    ).toBe(1);
    expect(
      afterProduce.sum("rill_rpc_duration_seconds_count", produceOk) -
        before.sum("rill_rpc_duration_seconds_count", produceOk),
    ).toBe(1);
    expect(afterProduce.sum("rill_fsync_duration_seconds_count")).toBeGreaterThan(
      before.sum("rill_fsync_duration_seconds_count"),
    );
    expect(afterProduce.sum("rill_fsync_errors_total")).toBe(0);
    expect(afterProduce.sum("rill_partition_high_watermark", { topic, partition: "0" })).toBe(N);
    expect(afterProduce.matching("rill_partition_high_watermark", { topic, partition: "1" })).toHaveLength(1);
    expect(afterProduce.sum("rill_partition_high_watermark", { topic, partition: "1" })).toBe(0);
    expect(afterProduce.sum("rill_partition_log_start_offset", { topic, partition: "0" })).toBe(0);
    expect(afterProduce.sum("rill_partition_segments", { topic, partition: "0" })).toBe(1);

    // Several responses (small max_bytes), every batch sent exactly once.
    const fetched = await fetchAll(s.log, { topic, partition: 0, maxBytes: 2048 });
    expect(fetched.error).toBeUndefined();
    expect(values(fetched.responses)).toHaveLength(N);
    expect(fetched.responses.length).toBeGreaterThan(1);
    const fetchOk = { service: LOG, method: "Fetch", code: "OK" };
    const afterFetch = await scrapeUntil(
      (m) => m.sum("rill_rpc_handled_total", fetchOk) > before.sum("rill_rpc_handled_total", fetchOk),
    );
    expect(afterFetch.sum("rill_records_out_total", t)).toBe(N);
    expect(afterFetch.sum("rill_bytes_out_total", t)).toBe(bytesIn);
    expect(
      afterFetch.sum("rill_rpc_handled_total", fetchOk) - before.sum("rill_rpc_handled_total", fetchOk),
    ).toBe(1);
    expect(afterFetch.sum("rill_rpc_in_flight", { service: LOG, method: "Fetch" })).toBe(0);
    expect(afterFetch.sum("rill_records_in_total", t)).toBe(N); // fetching moved nothing in
  });

  it("counts failed calls under their status code, streams and unary alike", async () => {
    // Ensures the final status of a stream (Fetch) and of a unary call is what gets counted.
    const missing = randomTopic("missing");
    const fetchNotFound = { service: LOG, method: "Fetch", code: "NOT_FOUND" };
    const describeNotFound = { service: "rill.v1.AdminService", method: "DescribeTopic", code: "NOT_FOUND" };
    const before = await scrape();
    const fetched = await fetchAll(s.log, { topic: missing });
    expect(fetched.error?.code).toBe(5);
    await expect(api(s).describeTopic({ topic: missing })).rejects.toMatchObject({ code: 5 });
    const after = await scrapeUntil(
      (m) =>
        m.sum("rill_rpc_handled_total", fetchNotFound) > before.sum("rill_rpc_handled_total", fetchNotFound),
    );
    expect(
      after.sum("rill_rpc_handled_total", fetchNotFound) -
        before.sum("rill_rpc_handled_total", fetchNotFound),
    ).toBe(1);
    expect(
      after.sum("rill_rpc_handled_total", describeNotFound) -
        before.sum("rill_rpc_handled_total", describeNotFound),
    ).toBe(1);
  });

  it("reports a group's members and lag per partition, and the open JoinGroup stream", async () => {
    // Ensures the lag gauge says what `rill group describe` says: high watermark minus committed offset.
    const topic = randomTopic("g");
    await api(s).createTopic({ topic, partitions: 2, config: undefined });
    const out = await produce(s.log, [
      produceRequest(
        topic,
        0,
        Array.from({ length: 50 }, (_, i) => record(`v${i}`)),
      ),
      produceRequest(topic, 1, [record("x"), record("y"), record("z")]),
    ]);
    expect(out.error).toBeUndefined();
    const group = randomTopic("grp");
    const gstub = groupStub(tb.address);
    const member = new RawMember(gstub, group, { topics: [topic] });
    try {
      await member.joined();
      expect(member.assigned).toEqual([`${topic}/0`, `${topic}/1`]);
      await member.commit([{ topic, partition: 0, offset: 20n }]);
      const m = await scrape();
      expect(m.sum("rill_group_members", { group })).toBe(1);
      expect(m.sum("rill_group_lag", { group, topic, partition: "0" })).toBe(30);
      // Nothing committed: lag counts from the log start, as the README says.
      expect(m.sum("rill_group_lag", { group, topic, partition: "1" })).toBe(3);
      expect(m.sum("rill_rpc_in_flight", { service: "rill.v1.GroupService", method: "JoinGroup" })).toBe(1);
      const commitOk = { service: "rill.v1.GroupService", method: "CommitOffsets", code: "OK" };
      expect(m.sum("rill_rpc_handled_total", commitOk)).toBe(1);
    } finally {
      await member.leave();
      gstub.close();
    }
    const joinGroup = { service: "rill.v1.GroupService", method: "JoinGroup" };
    const after = await scrapeUntil((m) => m.sum("rill_rpc_in_flight", joinGroup) === 0);
    expect(after.sum("rill_rpc_in_flight", joinGroup)).toBe(0);
    expect(after.sum("rill_rpc_handled_total", joinGroup)).toBe(1);
    // The group keeps its offsets without members: still listed, lag still reported.
    expect(after.sum("rill_group_members", { group })).toBe(0);
    expect(after.sum("rill_group_lag", { group, topic, partition: "0" })).toBe(30);
  });

  it("drops a deleted topic's series", async () => {
    // Ensures topic churn does not grow the label set without bound.
    const topic = randomTopic("d");
    const out = await produce(s.log, [produceRequest(topic, 0, [record("a")])]);
    expect(out.error).toBeUndefined();
    expect((await scrape()).sum("rill_records_in_total", { topic })).toBe(1);
    await api(s).deleteTopic({ topic });
    const m = await scrape();
    expect(m.matching("rill_records_in_total", { topic })).toHaveLength(0);
    expect(m.matching("rill_partition_high_watermark", { topic })).toHaveLength(0);
  });

  it("includes the default process metrics, event-loop lag among them", async () => {
    // Ensures collectDefaultMetrics is on for the broker's own registry.
    const m = await scrape();
    expect(m.matching("nodejs_eventloop_lag_seconds")).toHaveLength(1);
    expect(m.matching("process_cpu_seconds_total")).toHaveLength(1);
  });
});

describe("integration > metrics > off", () => {
  it("serves no metrics unless metrics.port is set", async () => {
    // Ensures the default (-1) opens no extra port.
    const off = await startTestBroker();
    try {
      expect(off.broker.metricsAddress).toBeUndefined();
    } finally {
      await off.stop();
    }
  });
});

describe("integration > metrics > request log", () => {
  it("logs every RPC at debug level with method, status, duration and peer", async () => {
    // Ensures the request log comes from the same instrumentation point, with or without metrics.
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const dataDir = await mkdtemp(join(tmpdir(), "rill-test-"));
    const broker = await startBroker(
      { listen: "127.0.0.1:0", dataDir },
      { logger: pino({ level: "debug" }, sink) },
    );
    const c = stubs(broker.address);
    try {
      await api(c).listTopics();
      const missing = randomTopic("missing");
      await fetchAll(c.log, { topic: missing });
      const deadline = Date.now() + 5000;
      const rpcs = () => lines.filter((l) => l.msg === "rpc");
      while (rpcs().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(rpcs()).toEqual([
        expect.objectContaining({
          level: 20,
          method: "rill.v1.AdminService/ListTopics",
          code: "OK",
          ms: expect.any(Number),
          peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        }),
        expect.objectContaining({ method: "rill.v1.LogService/Fetch", code: "NOT_FOUND" }),
      ]);
    } finally {
      c.close();
      await broker.shutdown();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
