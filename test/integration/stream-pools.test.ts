/**
 * Health Watch and reflection streams have their own pool (a tenth of max.open.streams, at least
 * one), so clients that may watch health without credentials cannot take the slots of data streams.
 */
import { credentials, makeGenericClientConstructor, type ServiceError, status } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { follow, produce, produceRequest, record, type Stubs, stubs } from "./helpers/grpc.js";

interface WatchCall extends NodeJS.EventEmitter {
  cancel(): void;
}
interface RawHealth {
  watch(req: { service: string }): WatchCall;
  close(): void;
}
const HealthCtor = makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options: Record<string, unknown>,
) => RawHealth;

const brokers: TestBroker[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const f of cleanups.splice(0)) f();
  for (const b of brokers.splice(0)) await b.stop();
});

/** The first thing a stream emits: a message, or its error. Bounded by 10 s. */
function firstEvent(call: NodeJS.EventEmitter): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no event within 10 s")), 10_000);
    call.once("data", (d) => {
      clearTimeout(timer);
      resolve(d);
    });
    call.once("error", (e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

describe("integration > stream pools", () => {
  it("counts health Watch streams apart, so they never take a data stream's slot", async () => {
    // max.open.streams 10: health/reflection get 1 slot, the broker's own streams 10.
    const tb = await startTestBroker({ maxOpenStreams: 10 });
    brokers.push(tb);
    const health = new HealthCtor(tb.address, credentials.createInsecure(), {});
    cleanups.push(() => health.close());
    const s: Stubs = stubs(tb.address);
    cleanups.push(() => s.close());
    const limits = tb.broker.server.streamLimits;

    const first = health.watch({ service: "" });
    first.on("error", () => {});
    expect(await firstEvent(first)).toMatchObject({ status: "SERVING" });
    const second = health.watch({ service: "" });
    const refused = (await firstEvent(second)) as ServiceError;
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/health Watch and reflection/);

    // Every one of the 10 data-stream slots is still free.
    const topic = randomTopic();
    expect((await produce(s.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    const fetches = Array.from({ length: 10 }, () => follow(s.log, topic));
    for (const f of fetches) {
      f.on("error", () => {});
      cleanups.push(() => f.cancel());
    }
    for (const f of fetches) expect("batches" in ((await firstEvent(f)) as object)).toBe(true);
    expect(limits.open).toBe(11);
    const eleventh = follow(s.log, topic);
    expect(((await firstEvent(eleventh)) as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    first.cancel();
  });
});
