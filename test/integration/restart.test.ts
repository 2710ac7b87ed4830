import { afterEach, describe, expect, it } from "vitest";
import { startBroker } from "../../server/src/main.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { fetchAll, produce, produceRequest, record, stubs, values } from "./helpers/grpc.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

async function produceMany(
  address: string,
  topic: string,
  batches: number,
  perBatch: number,
): Promise<string[]> {
  const s = stubs(address);
  const sent: string[] = [];
  const requests = [];
  for (let b = 0; b < batches; b++) {
    const recs = Array.from({ length: perBatch }, (_, i) => `b${b}-r${i}`);
    sent.push(...recs);
    requests.push(
      produceRequest(
        topic,
        0,
        recs.map((v) => record(v)),
      ),
    );
  }
  const out = await produce(s.log, requests);
  s.close();
  expect(out.error).toBeUndefined();
  return sent;
}

async function readAll(address: string, topic: string): Promise<string[]> {
  const s = stubs(address);
  const r = await fetchAll(s.log, { topic });
  s.close();
  expect(r.error).toBeUndefined();
  return values(r.responses);
}

describe("integration > restart", () => {
  it("keeps every acknowledged record across a clean restart, across many segments", async () => {
    // Ensures a graceful shutdown and restart serves the same records at the same offsets.
    tb = await startTestBroker({ topicDefaults: { segmentBytes: 2048, indexIntervalBytes: 128 } });
    const topic = randomTopic();
    const sent = await produceMany(tb.address, topic, 200, 5);
    tb = await tb.restart();
    expect(tb.broker.core.recoveredFromCleanShutdown).toBe(true);
    expect(await readAll(tb.address, topic)).toEqual(sent);
    const more = await produceMany(tb.address, topic, 1, 3);
    expect(await readAll(tb.address, topic)).toEqual([...sent, ...more]);
  });

  it("keeps every acknowledged record after an unclean stop (recovery scan)", async () => {
    // Ensures a broker that stopped without closing its logs recovers them and loses nothing acked.
    tb = await startTestBroker({ topicDefaults: { segmentBytes: 4096 } });
    const topic = randomTopic();
    const sent = await produceMany(tb.address, topic, 50, 10);
    // Stop serving without fsync/close and without the clean-shutdown marker.
    await tb.broker.server.shutdown(1000);
    const again = await startBroker({ listen: "127.0.0.1:0", dataDir: tb.dataDir });
    try {
      expect(again.core.recoveredFromCleanShutdown).toBe(false);
      expect(await readAll(again.address, topic)).toEqual(sent);
    } finally {
      await again.shutdown();
    }
  });
});
