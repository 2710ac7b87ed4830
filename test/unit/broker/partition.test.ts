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
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function partition(log: FakeLog): Partition {
  const settings = { ...loadConfig().topicDefaults, flushMs: -1, flushMessages: -1 };
  return new Partition("t", 0, log as unknown as PartitionLog, settings, silentLogger());
}

const batch: AppendInput = { records: Buffer.from([0x0a, 0x00]), recordCount: 1, compression: 1 };
const tick = () => new Promise((r) => setImmediate(r));

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
    // dirty pages): appends and syncs are refused until a restart recovers the log.
    const log = new FakeLog();
    const p = partition(log);
    p.append([batch]);
    const sync = p.sync();
    log.settle(Object.assign(new Error("EIO: fsync"), { code: "EIO" }));
    await expect(sync).rejects.toThrow(PartitionOfflineError);
    expect(() => p.append([batch])).toThrow(/restart the broker/);
    await expect(p.sync()).rejects.toThrow(PartitionOfflineError);
    expect(log.logEndOffset).toBe(1n);
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
