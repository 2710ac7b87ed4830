import { describe, expect, it } from "vitest";
import { PartitionOfflineError } from "../../../server/src/broker/errors.js";
import { Partition } from "../../../server/src/broker/partition.js";
import { loadConfig } from "../../../server/src/config.js";
import { silentLogger } from "../../../server/src/logger.js";
import type { AppendInput, AppendResult, PartitionLog } from "../../../server/src/storage/log-api.js";

/** A log whose fsyncs are controlled by the test (the storage layer has its own suite). */
class FakeLog {
  logEndOffset = 0n;
  logStartOffset = 0n;
  flushes = 0;
  private pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  append(inputs: readonly AppendInput[]): AppendResult[] {
    return inputs.map((i) => {
      const r = { baseOffset: this.logEndOffset, recordCount: i.recordCount, appendTimeMs: 0 };
      this.logEndOffset += BigInt(i.recordCount);
      return r;
    });
  }
  flush(): Promise<bigint> {
    this.flushes++;
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve: () => resolve(this.logEndOffset), reject });
    });
  }
  settle(error?: Error): void {
    for (const p of this.pending.splice(0)) error ? p.reject(error) : p.resolve();
  }
  rewrites = 0;
  /** Errors the next rewrites throw, in order; then they succeed. */
  rewriteFailures: Error[] = [];
  rewriteSinceLastFlush(): Promise<number> {
    this.rewrites++;
    const failure = this.rewriteFailures.shift();
    return failure ? Promise.reject(failure) : Promise.resolve(0);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function partition(log: FakeLog, faultRetryMs = 60_000): Partition {
  const settings = { ...loadConfig().topicDefaults, flushMs: -1, flushMessages: -1 };
  return new Partition("t", 0, log as unknown as PartitionLog, settings, silentLogger(), {}, faultRetryMs);
}

const batch: AppendInput = { records: Buffer.from([0x0a, 0x00]), recordCount: 1, compression: 1 };
const tick = () => new Promise((r) => setImmediate(r));

/** A partition (probing every `faultRetryMs`) taken offline by an fsync that failed with EIO. */
async function offlinePartition(faultRetryMs: number): Promise<{ log: FakeLog; p: Partition }> {
  const log = new FakeLog();
  const p = partition(log, faultRetryMs);
  p.append([batch]);
  const sync = p.sync();
  log.settle(Object.assign(new Error("EIO: fsync"), { code: "EIO" }));
  await expect(sync).rejects.toThrow(PartitionOfflineError);
  return { log, p };
}

describe("broker > partition > group commit", () => {
  it("shares one queued fsync between every caller that arrives while one runs", async () => {
    // Ensures concurrent FSYNCED produces pay one fsync per round, and each waits for an fsync
    // that started after its append.
    const log = new FakeLog();
    const p = partition(log);
    p.append([batch]);
    const first = p.sync();
    p.append([batch]);
    const second = p.sync();
    const third = p.sync();
    expect(second).toBe(third);
    expect(log.flushes).toBe(1);
    log.settle();
    await first;
    await tick();
    expect(log.flushes).toBe(2); // the queued round starts only after the first completes
    log.settle();
    await Promise.all([second, third]);
  });

  it("rejects the waiters of a failed fsync without an unhandled rejection", async () => {
    // Ensures an fsync error reaches the produces waiting for it and never crashes the process
    // (vitest fails the run on an unhandled rejection).
    const log = new FakeLog();
    const p = partition(log);
    p.append([batch]);
    const first = p.sync();
    const queued = p.sync(); // waits behind `first`, nobody awaits it yet
    log.settle(Object.assign(new Error("EIO: fsync"), { code: "EIO" }));
    await expect(first).rejects.toThrow(/EIO/);
    await expect(queued).rejects.toThrow(/offline for writes/);
    expect(log.flushes).toBe(1); // no second fsync: it could "succeed" over dropped pages
  });

  it("takes the partition offline for writes after a failed fsync", async () => {
    // Ensures no acknowledgement can follow an fsync failure (the kernel may have dropped the
    // dirty pages): appends and syncs are refused until a probe has rewritten and fsynced the data.
    const log = new FakeLog();
    const p = partition(log);
    p.append([batch]);
    const sync = p.sync();
    log.settle(Object.assign(new Error("EIO: fsync"), { code: "EIO" }));
    await expect(sync).rejects.toThrow(PartitionOfflineError);
    expect(() => p.append([batch])).toThrow(/retry later: the broker tries the disk again every 60000 ms/);
    await expect(p.sync()).rejects.toThrow(PartitionOfflineError);
    expect(log.logEndOffset).toBe(1n);
    expect(log.rewrites).toBe(0); // the probe waits storage.fault.retry.ms
    await p.close();
  });

  it("resumes writes once a probe rewrites and fsyncs, retrying while the disk fails", async () => {
    // Ensures the offline state ends by itself when the disk recovers: a probe every
    // storage.fault.retry.ms, an I/O error keeps it offline (and probing), success resumes writes.
    const { log, p } = await offlinePartition(20);
    log.rewriteFailures = [Object.assign(new Error("EIO: fsync"), { code: "EIO" })];
    for (let i = 0; i < 200 && log.rewrites < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(log.rewrites).toBe(2);
    await tick();
    expect(p.append([batch])[0]!.baseOffset).toBe(1n);
    await p.close();
  });

  it("stays offline until a restart when the data does not read back intact", async () => {
    // Ensures a probe never resumes over data the page cache lost: only recovery can settle it.
    const { log, p } = await offlinePartition(20);
    log.rewriteFailures = [new Error("corrupt batch in x at byte 0: CRC mismatch")];
    for (let i = 0; i < 200 && log.rewrites < 1; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    expect(log.rewrites).toBe(1); // no further probe
    expect(() => p.append([batch])).toThrow(/restart the broker/);
    await p.close();
  });
});

describe("broker > partition > tail waiters", () => {
  it("wakes a waiter on append and times out an idle one", async () => {
    // Ensures following fetches wait without polling: woken by the append, or by their timeout.
    const log = new FakeLog();
    const p = partition(log);
    const woken = p.waitForData(0n, 10_000);
    p.append([batch]);
    expect(await woken).toBe(true);
    expect(await p.waitForData(1n, 20)).toBe(false);
    const abort = new AbortController();
    const aborted = p.waitForData(1n, 10_000, abort.signal);
    abort.abort();
    expect(await aborted).toBe(false);
  });
});
