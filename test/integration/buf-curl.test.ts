import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";

const run = promisify(execFile);
const BUF = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "buf");
let tb: TestBroker;

beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb?.stop();
});

/** Runs `buf curl` against the test broker (async: the broker runs in this process). */
async function curl(args: string[], input?: string): Promise<string> {
  const child = run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
    timeout: 30_000,
  });
  if (input !== undefined) {
    child.child.stdin!.end(input);
  }
  const { stdout } = await child;
  return stdout;
}

describe("integration > buf curl through server reflection", () => {
  it("lists every RPC of every service", async () => {
    // Ensures reflection serves our exact descriptors (including health and reflection itself).
    const out = await curl(["--list-methods", `http://${tb.address}`]);
    for (const m of [
      "rill.v1.LogService/Produce",
      "rill.v1.LogService/Fetch",
      "rill.v1.LogService/ListOffsets",
      "rill.v1.AdminService/CreateTopic",
      "rill.v1.AdminService/DescribeTopic",
      "rill.v1.ClusterService/GetMetadata",
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/Watch",
    ]) {
      expect(out).toContain(m);
    }
  });

  it("calls a client-streaming Produce from JSON, then ListTopics, Fetch and health Check", async () => {
    // Ensures a developer can poke a live broker with buf curl and JSON only.
    const topic = randomTopic("curl");
    const value = Buffer.from("hello from buf curl").toString("base64");
    const produce = await curl(
      ["-d", "@-", `http://${tb.address}/rill.v1.LogService/Produce`],
      `{"topic":"${topic}","partition":0,"records":{"records":[{"value":"${value}"}]}}\n` +
        `{"topic":"${topic}","partition":0,"records":{"records":[{"value":"${value}"},{"value":"${value}"}]}}\n`,
    );
    // Proto3 JSON omits zero values, so the first batch's base offset 0 is absent.
    const results = JSON.parse(produce).results as {
      topic: string;
      baseOffset?: string;
      recordCount: number;
    }[];
    expect(results.map((r) => [r.topic, r.baseOffset ?? "0", r.recordCount])).toEqual([
      [topic, "0", 1],
      [topic, "1", 2],
    ]);
    const topics = JSON.parse(
      await curl(["-d", "{}", `http://${tb.address}/rill.v1.AdminService/ListTopics`]),
    );
    expect(topics.topics).toContainEqual({ topic, partitions: 1 });
    const fetched = await curl([
      "-d",
      `{"topic":"${topic}","offset":"0"}`,
      `http://${tb.address}/rill.v1.LogService/Fetch`,
    ]);
    expect(fetched).toContain(value);
    expect(fetched).toContain('"highWatermark": "3"');
    const health = JSON.parse(await curl(["-d", "{}", `http://${tb.address}/grpc.health.v1.Health/Check`]));
    expect(health.status).toBe("SERVING");
  });
});
