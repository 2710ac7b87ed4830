/**
 * Disk faults through the storage file-system seam, against a real broker over real gRPC: ENOSPC
 * and EIO on writes, on fsync and on a segment roll, switched on and off while the broker runs.
 * Each case checks the status and message the producer gets, that acknowledged data stays readable
 * byte for byte, that the broker keeps serving other partitions, reads and health, and that writes
 * resume once the fault clears (after a failed fsync: once a probe has rewritten and fsynced the
 * unflushed data), and again after a restart.
 */
import { statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Durability } from "../../clients/ts/src/gen/rill/v1/log.js";
import { type Broker, type ConfigOverrides, startBroker } from "../../server/src/main.js";
import { SwitchableFaultFs } from "./helpers/fault-fs.js";
import { groupApi, groupStub } from "./helpers/group.js";
import { api, fetchAll, produce, produceRequest, record, type Stubs, stubs, values } from "./helpers/grpc.js";
import { healthClient } from "./helpers/health.js";

const TOPIC = "faulty";
const RETRY_MS = 50;

let dataDir: string;
let fs: SwitchableFaultFs;
let broker: Broker | undefined;
let s: Stubs | undefined;

async function start(overrides: ConfigOverrides = {}): Promise<void> {
  broker = await startBroker(
    { listen: "127.0.0.1:0", dataDir, storageFaultRetryMs: RETRY_MS, ...overrides },
    { fs },
  );
  s = stubs(broker.address);
}

async function stop(): Promise<void> {
  s?.close();
  s = undefined;
  await broker?.shutdown();
  broker = undefined;
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "rill-faults-"));
  fs = new SwitchableFaultFs();
  await start({ topicDefaults: { segmentBytes: 4096 } });
  await api(s!).createTopic({ topic: TOPIC, partitions: 2, config: undefined });
});

afterEach(async () => {
  fs.faults.write = fs.faults.fsync = fs.faults.open = fs.faults.read = null;
  await stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Produces `count` one-record batches "<tag>-<i>" to `partition`; returns the outcome. */
function send(partition: number, tag: string, count: number, durability = Durability.DURABILITY_WRITTEN) {
  const requests = Array.from({ length: count }, (_, i) =>
    produceRequest(TOPIC, partition, [record(`${tag}-${i}`)], { durability }),
  );
  return produce(s!.log, requests);
}

async function sendOk(partition: number, tag: string, count: number, durability?: Durability) {
  const out = await send(partition, tag, count, durability);
  expect(out.error, out.error?.details).toBeUndefined();
  return out.response!.results.map((r) => r.baseOffset);
}

async function readValues(partition: number): Promise<string[]> {
  const { responses, error } = await fetchAll(s!.log, { topic: TOPIC, partition });
  expect(error?.details).toBeUndefined();
  return values(responses);
}

/** Retries `attempt` every RETRY_MS until it returns non-null, at most `tries` times. */
async function eventually<T>(attempt: () => Promise<T | null>, tries = 100): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const out = await attempt();
    if (out !== null) return out;
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  throw new Error(`gave up after ${tries} tries`);
}

function tags(tag: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${tag}-${i}`);
}

/** The broker still serves: health, the other partition (write and read). */
async function stillServing(): Promise<void> {
  const health = healthClient(broker!.address);
  try {
    expect(await health.check("")).toBe("SERVING");
  } finally {
    health.close();
  }
  const before = (await readValues(1)).length;
  await sendOk(1, `p1-${before}`, 1);
  expect(await readValues(1)).toHaveLength(before + 1);
}

describe("disk faults > writes", () => {
  it.each([
    ["ENOSPC", status.RESOURCE_EXHAUSTED, /disk is full; nothing was appended, retry later/],
    ["EIO", status.UNAVAILABLE, /storage error \(EIO\); nothing was appended, retry later/],
  ])(
    "%s on write fails the produce clearly, keeps acked data and resumes when it clears",
    async (code, grpcCode, message) => {
      // Ensures a failed write changes nothing: the status says what to do, acked records are intact,
      // the broker serves on, and the next produce after the fault gets the next dense offset.
      expect(await sendOk(0, "before", 5)).toEqual([0n, 1n, 2n, 3n, 4n]);
      fs.faults.write = { code, path: `/${TOPIC}/0/` };
      const failed = await send(0, "during", 3);
      expect(failed.error?.code).toBe(grpcCode);
      expect(failed.error?.details).toMatch(message);
      expect(failed.trailers?.get("rill-appended-batches")).toEqual(["0"]);
      expect(fs.injected.write).toBeGreaterThan(0);
      expect(await readValues(0)).toEqual(tags("before", 5));
      await stillServing();
      fs.faults.write = null;
      expect(await sendOk(0, "after", 2)).toEqual([5n, 6n]);
      expect(await readValues(0)).toEqual([...tags("before", 5), ...tags("after", 2)]);
      await stop();
      await start();
      expect(await readValues(0)).toEqual([...tags("before", 5), ...tags("after", 2)]);
    },
  );

  it("ENOSPC while rolling a segment leaves no half-made segment and rolls once it clears", async () => {
    // Ensures a roll is all-or-nothing: the new segment's files are removed, the old one is intact.
    let produced = 0;
    const expected: string[] = [];
    while (
      (await readdir(join(dataDir, "topics", TOPIC, "0"))).filter((f) => f.endsWith(".log")).length < 2
    ) {
      expect(produced).toBeLessThan(200);
      await sendOk(0, `r${produced}`, 1);
      expected.push(`r${produced}-0`);
      produced++;
    }
    const segments = async () =>
      (await readdir(join(dataDir, "topics", TOPIC, "0"))).filter((f) => f.endsWith(".log")).sort();
    const before = await segments();
    fs.faults.open = { code: "ENOSPC", path: `/${TOPIC}/0/` };
    let refused = 0;
    for (let i = 0; i < 200 && refused === 0; i++) {
      const out = await send(0, `x${i}`, 1);
      if (out.error) {
        expect(out.error.code).toBe(status.RESOURCE_EXHAUSTED);
        refused++;
      } else {
        expected.push(`x${i}-0`);
      }
    }
    expect(refused).toBe(1);
    expect(fs.injected.open).toBeGreaterThan(0);
    expect(await segments()).toEqual(before);
    expect(await readValues(0)).toEqual(expected);
    await stillServing();
    fs.faults.open = null;
    await sendOk(0, "rolled", 1);
    expect((await segments()).length).toBe(before.length + 1);
    expect(await readValues(0)).toEqual([...expected, "rolled-0"]);
    await stop();
    await start();
    expect(await readValues(0)).toEqual([...expected, "rolled-0"]);
  });
});

describe("disk faults > reads", () => {
  it("EIO on read fails the Fetch with UNAVAILABLE and a clear message, and reads work once it clears", async () => {
    // Ensures a read error is reported as a retriable storage error (not as data loss or an
    // internal error), changes nothing, and leaves the broker serving.
    await sendOk(0, "kept", 4);
    fs.faults.read = { code: "EIO", path: `/${TOPIC}/0/` };
    const { error } = await fetchAll(s!.log, { topic: TOPIC, partition: 0 });
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(error?.details).toMatch(/could not read its disk \(EIO\); retry later/);
    expect(fs.injected.read).toBeGreaterThan(0);
    await stillServing();
    fs.faults.read = null;
    expect(await readValues(0)).toEqual(tags("kept", 4));
    expect(await sendOk(0, "more", 1)).toEqual([4n]);
  });
});

describe("disk faults > fsync", () => {
  it.each(["EIO", "ENOSPC"])(
    "%s on fsync fails FSYNCED produces, keeps the partition offline for writes, and resumes after a probe rewrites and fsyncs",
    async (code) => {
      // Ensures an fsync failure is never followed by an acknowledgement the disk has not proven:
      // the FSYNCED producer gets UNAVAILABLE (it resends: at-least-once), every write is refused
      // while the fault lasts, the acked data stays readable, and once the disk works a probe
      // rewrites the bytes written since the last good fsync and fsyncs them before writes resume.
      await sendOk(0, "synced", 3, Durability.DURABILITY_FSYNCED);
      await sendOk(0, "written", 2);
      fs.faults.fsync = { code, path: `/${TOPIC}/0/` };
      const failed = await send(0, "fsynced", 1, Durability.DURABILITY_FSYNCED);
      expect(failed.error?.code).toBe(status.UNAVAILABLE);
      expect(failed.error?.details).toMatch(
        new RegExp(
          `offline for writes after an fsync failure \\(${code}\\); nothing was appended; retry later`,
        ),
      );
      // The batch was in the page cache when its fsync failed: readable, but not acknowledged.
      const acked = [...tags("synced", 3), ...tags("written", 2)];
      expect(await readValues(0)).toEqual([...acked, "fsynced-0"]);
      const refused = await send(0, "refused", 1);
      expect(refused.error?.code).toBe(status.UNAVAILABLE);
      expect(refused.error?.details).toMatch(new RegExp(`tries the disk again every ${RETRY_MS} ms`));
      await stillServing();
      // Probes keep failing while the fault is on.
      const probes = fs.injected.fsync;
      await eventually(async () => (fs.injected.fsync > probes + 1 ? true : null));
      expect((await send(0, "still", 1)).error?.code).toBe(status.UNAVAILABLE);
      const writesBefore = fs.writes.length;
      const logs = (await readdir(join(dataDir, "topics", TOPIC, "0")))
        .filter((f) => f.endsWith(".log"))
        .sort();
      const activeLog = join(dataDir, "topics", TOPIC, "0", logs.at(-1)!);
      const sizeAtClear = statSync(activeLog).size;
      fs.faults.fsync = null;
      const resumed = await eventually(async () => {
        const out = await send(0, "resend", 1, Durability.DURABILITY_FSYNCED);
        if (out.error) {
          expect(out.error.code).toBe(status.UNAVAILABLE);
          return null;
        }
        return out.response!.results.map((r) => r.baseOffset);
      });
      expect(resumed).toEqual([6n]);
      // The probe wrote the unflushed bytes of the .log again, from the last good fsync's size:
      // a write inside what the file already held (an append writes at its end).
      const rewrites = fs.writes
        .slice(writesBefore)
        .filter((w) => w.path === activeLog && w.position < sizeAtClear);
      expect(rewrites.length).toBeGreaterThan(0);
      expect(rewrites[0]!.position).toBeGreaterThan(0);
      expect(rewrites[0]!.position + rewrites[0]!.bytes).toBe(sizeAtClear);
      const all = [...acked, "fsynced-0", "resend-0"];
      expect(await readValues(0)).toEqual(all);
      await stop();
      await start();
      expect(await readValues(0)).toEqual(all);
      expect(await sendOk(0, "restarted", 1, Durability.DURABILITY_FSYNCED)).toEqual([7n]);
    },
  );
});

describe("disk faults > group offset store", () => {
  it("EIO on the offsets log's fsync refuses commits until a restart, which replays a consistent state", async () => {
    // Ensures the documented rule for the group offset store (groups/offset-store.ts): after a
    // failed fsync it refuses every commit with UNAVAILABLE and says to restart (unlike partitions,
    // it does not probe), while topics keep working; a restart replays the offsets log and takes
    // commits again.
    await sendOk(0, "g", 5);
    await sendOk(1, "g", 5);
    const stub = groupStub(broker!.address);
    const groups = groupApi(stub);
    const reset = (offset: bigint) =>
      groups.reset({ groupId: "g", topics: [TOPIC], to: { $case: "offset", value: offset } });
    await reset(2n);
    fs.faults.fsync = { code: "EIO", path: "/groups/" };
    const failed = await reset(4n).then(
      () => null,
      (e: ServiceError) => e,
    );
    expect(failed?.code).toBe(status.UNAVAILABLE);
    expect(failed?.details).toMatch(
      /offset store is offline for commits after a disk failure \(EIO\); fix the disk and restart the broker/,
    );
    expect(fs.injected.fsync).toBeGreaterThan(0);
    await stillServing();
    fs.faults.fsync = null;
    const still = await reset(3n).then(
      () => null,
      (e: ServiceError) => e,
    );
    expect(still?.code).toBe(status.UNAVAILABLE);
    stub.close();
    await stop();
    await start();
    const afterStub = groupStub(broker!.address);
    const after = groupApi(afterStub);
    const committed = await after.committed("g", [TOPIC]);
    // The failed commit's record reached the page cache, so the replay may hold it; never a torn state.
    const offsets = committed.offsets.map((o) => o.offset);
    expect(offsets).toHaveLength(2);
    expect([2n, 4n]).toContain(offsets[0]);
    expect(offsets[1]).toBe(offsets[0]);
    const ok = await after.reset({ groupId: "g", topics: [TOPIC], to: { $case: "offset", value: 5n } });
    expect(ok.offsets.map((o) => o.offset)).toEqual([5n, 5n]);
    afterStub.close();
    expect(await readValues(0)).toEqual(tags("g", 5));
  });
});
