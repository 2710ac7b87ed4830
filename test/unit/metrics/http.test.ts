import { Counter, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../server/src/logger.js";
import { countFrameRecords } from "../../../server/src/metrics/frames.js";
import { type MetricsHttpServer, startMetricsHttpServer } from "../../../server/src/metrics/http.js";
import { encodeFrame } from "../../../server/src/storage/batch-frame.js";

let server: MetricsHttpServer;
const registry = new Registry();

beforeAll(async () => {
  new Counter({ name: "test_things_total", help: "Things.", registers: [registry] }).inc(3);
  server = await startMetricsHttpServer(registry, "127.0.0.1", 0, silentLogger());
});

afterAll(async () => {
  await server?.close();
});

const get = (path: string, method = "GET") =>
  fetch(`http://${server.address}${path}`, { method, signal: AbortSignal.timeout(5000) });

describe("metrics > http", () => {
  it("serves the registry at /metrics with its content type", async () => {
    // Ensures Prometheus gets the text format of this registry (not the global one).
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(registry.contentType);
    expect(await res.text()).toContain("test_things_total 3");
    expect((await get("/metrics?x=1")).status).toBe(200);
  });

  it("answers 404 on any other path and 405 on other methods", async () => {
    // Ensures nothing but /metrics is served.
    for (const path of ["/", "/metric", "/metrics/", "/debug", "/metrics.json"]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
    const res = await get("/metrics", "POST");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });

  it("closes even with a scraper's keep-alive connection open", async () => {
    // Ensures shutdown does not wait for a Prometheus connection to idle out.
    const other = await startMetricsHttpServer(registry, "127.0.0.1", 0, silentLogger());
    const res = await fetch(`http://${other.address}/metrics`, { keepalive: true });
    await res.text();
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(2000);
    await other.close(); // idempotent
  });
});

describe("metrics > frames", () => {
  it("counts records from frame headers, whatever the varint sizes", () => {
    // Ensures records out are counted without decoding, for 1- and 2+-byte length varints.
    const frames = [1, 7, 1000, 3].map((recordCount, i) =>
      encodeFrame(
        { baseOffset: BigInt(i * 10_000), recordCount, appendTimeMs: 1_700_000_000_000, compression: 1 },
        Buffer.alloc(i === 2 ? 70_000 : 10, 1),
      ),
    );
    expect(countFrameRecords(Buffer.concat(frames))).toBe(1011);
    expect(countFrameRecords(frames[2]!)).toBe(1000);
    expect(countFrameRecords(Buffer.alloc(0))).toBe(0);
    // A cut frame is not counted (storage never hands one out).
    expect(countFrameRecords(Buffer.concat([frames[0]!, frames[1]!.subarray(0, 30)]))).toBe(1);
  });
});
