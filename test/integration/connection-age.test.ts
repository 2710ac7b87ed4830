import { afterEach, describe, expect, it } from "vitest";
import { createClient, type RillClient } from "../../clients/ts/src/index.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";

let tb: TestBroker | undefined;
let client: RillClient | undefined;
afterEach(async () => {
  await client?.close();
  await tb?.stop();
  client = undefined;
  tb = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("integration > max connection age", () => {
  it("a following consumer gets every record exactly once, in order, across many connection ages", async () => {
    // Ensures max.connection.age.ms (clients spread over replicas behind a mesh or load balancer)
    // costs a tailing consumer nothing: its Fetch stream is cut after each age + grace with
    // UNAVAILABLE and it resumes at the next offset on a new connection.
    tb = await startTestBroker({ maxConnectionAgeMs: 500, maxConnectionAgeGraceMs: 200 });
    const resumed: unknown[] = [];
    client = createClient({
      brokers: tb.address,
      logLevel: "warn",
      log: (e) => {
        if (e.message === "fetch stream broke, resuming") resumed.push(e.fields.code);
      },
    });
    const topic = randomTopic();
    const producer = client.producer({ lingerMs: 0 });
    const sent = ["r0"];
    await producer.send(topic, [{ value: "r0" }]); // creates the topic

    const abort = new AbortController();
    const got: { offset: bigint; value: string }[] = [];
    const reading = (async () => {
      for await (const r of client.consumer().read({ topic, follow: true, signal: abort.signal })) {
        got.push({ offset: r.offset, value: r.value.toString() });
      }
    })();

    // Produce for about 3 s: at least 3 connection ages (500 ms ±10%, then 200 ms of grace).
    const started = Date.now();
    for (let i = 1; Date.now() - started < 3000; i++) {
      const batch = [`r${i}a`, `r${i}b`];
      sent.push(...batch);
      await producer.send(
        topic,
        batch.map((value) => ({ value })),
      );
      await sleep(10);
    }
    await producer.close();
    for (let i = 0; i < 200 && got.length < sent.length; i++) await sleep(50);
    await sleep(300); // a duplicate would show up here
    abort.abort();
    await reading;

    expect(got.map((r) => r.value)).toEqual(sent);
    expect(got.map((r) => r.offset)).toEqual(sent.map((_, i) => BigInt(i)));
    expect(resumed.length).toBeGreaterThanOrEqual(3);
    expect(new Set(resumed)).toEqual(new Set(["UNAVAILABLE"]));
  });
});
