import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { type Broker, startBroker } from "../../server/src/main.js";
import { type FileSystem, nodeFileSystem } from "../../server/src/storage/fs.js";
import { randomTopic, startTestBroker } from "./helpers/broker.js";
import { fetchAll, follow, produce, produceRequest, record, stubs, values } from "./helpers/grpc.js";
import { healthClient } from "./helpers/health.js";

const SERVICES = [
  "",
  "rill.v1.LogService",
  "rill.v1.AdminService",
  "rill.v1.ClusterService",
  "rill.v1.GroupService",
];

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms)),
  ]);
}

describe("integration > startup", () => {
  it("listens during log recovery: health NOT_SERVING and calls UNAVAILABLE until the logs are open", async () => {
    // Ensures an orchestrator's probes see a recovering broker as not ready rather than unreachable,
    // and that clients are told to retry instead of reaching half-opened logs.
    const first = await startTestBroker();
    const { dataDir } = first.broker;
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const topic = randomTopic();
    const s0 = stubs(first.address);
    expect(
      (await produce(s0.log, [produceRequest(topic, 0, [record("a"), record("b")])])).error,
    ).toBeUndefined();
    s0.close();
    await first.broker.shutdown();
    // Without the clean-shutdown marker the next start scans the logs, as after a crash.
    await rm(join(dataDir, "meta", "clean-shutdown"));

    // Recovery's reads wait for the gate: the broker stays "recovering" as long as the test wants.
    const gate = deferred();
    const recovering = deferred();
    const slowFs: FileSystem = {
      ...nodeFileSystem,
      async read(...args) {
        recovering.resolve();
        await gate.promise;
        return nodeFileSystem.read(...args);
      },
    };
    const listening = deferred<string>();
    const starting = startBroker(
      { listen: "127.0.0.1:0", dataDir },
      { fs: slowFs, onListening: (address) => listening.resolve(address) },
    );
    let broker: Broker | undefined;
    cleanups.push(async () => {
      gate.resolve();
      await (broker ?? (await starting.catch(() => undefined)))?.shutdown();
    });
    const address = await within(listening.promise, 10_000, "listening");
    await within(recovering.promise, 10_000, "recovery reading a segment");

    const health = healthClient(address);
    const s = stubs(address);
    cleanups.push(() => {
      health.close();
      s.close();
    });
    for (const service of SERVICES) expect(await health.check(service), service).toBe("NOT_SERVING");
    const watch = health.watch("rill.v1.LogService");
    const refused = await new Promise<ServiceError | null>((resolve) =>
      s.admin.listTopics({}, (err) => resolve(err)),
    );
    expect(refused?.code).toBe(status.UNAVAILABLE);
    expect(refused?.details).toBe("the broker is starting (recovering logs); retry");
    const fetch = follow(s.log, topic);
    const fetchError = await new Promise<ServiceError>((resolve) => fetch.on("error", resolve));
    expect(fetchError.code).toBe(status.UNAVAILABLE);
    expect(fetchError.details).toMatch(/starting/);
    const producing = await produce(s.log, [produceRequest(topic, 0, [record("too early")])]);
    expect(producing.error?.code).toBe(status.UNAVAILABLE);
    expect(await health.check("")).toBe("NOT_SERVING"); // still recovering: nothing got through

    gate.resolve();
    broker = await within(starting, 10_000, "recovery");
    expect(broker.core.recoveredFromCleanShutdown).toBe(false);
    for (const service of SERVICES) expect(await health.check(service), service).toBe("SERVING");
    for (let i = 0; i < 100 && watch.seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    watch.cancel();
    expect(watch.seen).toEqual(["NOT_SERVING", "SERVING"]);
    const read = await fetchAll(s.log, { topic });
    expect(read.error).toBeUndefined();
    expect(values(read.responses)).toEqual(["a", "b"]);
  });

  it("closes the listener when the logs cannot be opened", async () => {
    // Ensures a failed recovery does not leave a half-started server holding the port.
    const first = await startTestBroker();
    cleanups.push(() => first.stop());
    const broken: FileSystem = {
      ...nodeFileSystem,
      read: async () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      },
    };
    const topic = randomTopic();
    const s0 = stubs(first.address);
    expect((await produce(s0.log, [produceRequest(topic, 0, [record("a")])])).error).toBeUndefined();
    s0.close();
    await first.broker.shutdown();
    await rm(join(first.dataDir, "meta", "clean-shutdown"));
    let address: string | undefined;
    await expect(
      startBroker(
        { listen: "127.0.0.1:0", dataDir: first.dataDir },
        { fs: broken, onListening: (a) => (address = a) },
      ),
    ).rejects.toThrow(/EIO/);
    expect(address).toBeDefined();
    const health = healthClient(address!);
    cleanups.push(() => health.close());
    await expect(
      Promise.race([health.check(""), new Promise((r) => setTimeout(() => r("timeout"), 3000))]),
    ).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });
});
