import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { api, produce, produceRequest, record, type Stubs, stubs } from "./helpers/grpc.js";

const ROOT = join(import.meta.dirname, "..", "..");
let tb: TestBroker;
let s: Stubs;

beforeAll(async () => {
  tb = await startTestBroker({ topicDefaults: { maxBatchBytes: 128 * 1024 } });
  s = stubs(tb.address);
});
afterAll(async () => {
  s?.close();
  await tb?.stop();
});

describe("integration > fetch backpressure", () => {
  it("stops reading the log while a following consumer is stalled, then catches up", async () => {
    // Ensures a consumer that stops reading (its process is SIGSTOPped: the TCP window closes)
    // costs the broker a bounded amount: the Fetch loop waits for `drain` instead of buffering.
    const topic = randomTopic();
    await api(s).createTopic({ topic, partitions: 1, config: undefined });
    const batches = 1000;
    const value = Buffer.alloc(60 * 1024, 0x61); // one 60 KiB line of "a" per record, 60 MB in all
    const consumer = spawn(
      process.execPath,
      [
        join(ROOT, "bin", "rill.js"),
        "consume",
        topic,
        "--broker",
        tb.address,
        "--follow",
        "--max",
        String(batches),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      let lines = 0;
      consumer.stdout!.on("data", (chunk: Buffer) => {
        for (const b of chunk) if (b === 0x0a) lines++;
      });
      const exited = new Promise<number | null>((resolve) => consumer.once("exit", (code) => resolve(code)));
      const stream = () => [...tb.broker.server.context.streams][0];
      for (let i = 0; i < 200 && !stream(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(stream()).toBeDefined();
      consumer.kill("SIGSTOP");
      for (let i = 0; i < batches; i += 50) {
        const out = await produce(
          s.log,
          Array.from({ length: 50 }, () => produceRequest(topic, 0, [record(value)])),
        );
        expect(out.error).toBeUndefined();
      }
      for (let i = 0; i < 100 && !stream()!.blocked; i++) await new Promise((r) => setTimeout(r, 50));
      const stalled = stream()!;
      expect(stalled.blocked).toBe(true);
      const sent = stalled.sentBytes;
      expect(sent).toBeLessThan(16 * 1024 * 1024); // socket buffers and HTTP/2 windows (~1 MB seen), not 60 MB
      await new Promise((r) => setTimeout(r, 300));
      expect(stalled.sentBytes).toBe(sent); // still waiting, not polling the log
      consumer.kill("SIGCONT");
      expect(await exited).toBe(0);
      expect(lines).toBe(batches);
    } finally {
      if (consumer.exitCode === null) consumer.kill("SIGKILL");
    }
  });
});
