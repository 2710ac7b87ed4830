import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import { ShuttingDownError } from "../../../server/src/broker/errors.js";
import { ManualClock } from "../../../server/src/clock.js";
import {
  type OffsetCommitInput,
  OffsetStore,
  OffsetStoreOfflineError,
  type StoredOffset,
} from "../../../server/src/groups/offset-store.js";
import { type Logger, silentLogger } from "../../../server/src/logger.js";
import { openLog } from "../../../server/src/storage/log.js";
import { CompressionCode } from "../../../server/src/storage/log-api.js";
import {
  DEFAULT_TEST_CONFIG,
  FaultyFileSystem,
  framePositions,
  readAll,
  recordBatch,
} from "../storage/helpers.js";

/** Runs per property; RILL_PROPERTY_RUNS=1000 for a deeper search than the quick default. */
const RUNS = Number(process.env.RILL_PROPERTY_RUNS ?? 40);
const SEGMENT = "00000000000000000000.log";

/** node:fs with the FaultyFileSystem hooks, plus a gate that holds fsyncs of matching paths. */
class GatedFileSystem extends FaultyFileSystem {
  gatePath: string | null = null;
  private reach: () => void = () => {};
  /** Resolves when an fsync first waits at the gate. */
  readonly gateReached = new Promise<void>((resolve) => {
    this.reach = resolve;
  });
  private open: () => void = () => {};
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve;
  });

  release(): void {
    this.gatePath = null;
    this.open();
  }

  override async fsync(fd: number): Promise<void> {
    if (this.gatePath !== null && (this.paths.get(fd) ?? "").includes(this.gatePath)) {
      this.reach();
      await this.gate;
    }
    return super.fsync(fd);
  }
}

/** A temp directory, a manual clock, and every store opened on them (closed and removed by cleanup). */
class StoreHarness {
  readonly dir = mkdtempSync(join(tmpdir(), "rill-offsets-"));
  readonly clock = new ManualClock();
  readonly fs = new GatedFileSystem();
  private readonly stores: OffsetStore[] = [];

  async open(
    options: { cleanShutdown?: boolean; compactAfterBytes?: number; logger?: Logger } = {},
  ): Promise<OffsetStore> {
    const store = await OffsetStore.open({
      dir: this.dir,
      clock: this.clock,
      logger: options.logger ?? silentLogger(),
      cleanShutdown: options.cleanShutdown ?? true,
      fs: this.fs,
      ...(options.compactAfterBytes === undefined ? {} : { compactAfterBytes: options.compactAfterBytes }),
    });
    this.stores.push(store);
    return store;
  }

  async reopen(
    store: OffsetStore,
    options: { cleanShutdown?: boolean; compactAfterBytes?: number } = {},
  ): Promise<OffsetStore> {
    await store.close();
    return this.open(options);
  }

  logDirs(): string[] {
    return readdirSync(this.dir)
      .filter((n) => n.startsWith("log-"))
      .sort();
  }

  current(): string | null {
    const path = join(this.dir, "CURRENT");
    return existsSync(path) ? readFileSync(path, "latin1") : null;
  }

  /** The first segment of the live log. */
  segmentPath(): string {
    return join(this.dir, (this.current() ?? "log-0\n").trim(), SEGMENT);
  }

  /** Bytes of every file under the directory, and of the .log files alone. */
  diskBytes(): { all: number; logs: number } {
    let all = 0;
    let logs = 0;
    for (const entry of readdirSync(this.dir, { recursive: true, encoding: "utf8" })) {
      const stat = statSync(join(this.dir, entry));
      if (!stat.isFile()) continue;
      all += stat.size;
      if (entry.endsWith(".log")) logs += stat.size;
    }
    return { all, logs };
  }

  async cleanup(): Promise<void> {
    this.fs.release();
    for (const store of this.stores) await store.close().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function entry(topic: string, partition: number, offset: bigint | number, metadata = ""): OffsetCommitInput {
  return { topic, partition, offset: BigInt(offset), metadata };
}

/** Every group's offsets, for comparing whole states. */
function dump(store: OffsetStore): Record<string, StoredOffset[]> {
  return Object.fromEntries(store.groups().map((g) => [g, store.offsets(g)]));
}

/** Copies a log holding one commit of group "ghost" to `target` (a log directory that must not be read). */
async function plantGhostLog(target: string): Promise<void> {
  const ghost = new StoreHarness();
  try {
    const other = await ghost.open();
    await other.commit("ghost", [entry("t", 0, 99)]);
    await other.close();
    cpSync(join(ghost.dir, "log-0"), target, { recursive: true });
  } finally {
    await ghost.cleanup();
  }
}

/** A logger whose JSON lines land in `lines`. */
function capturingLogger(lines: Array<{ [field: string]: unknown }>): Logger {
  return pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
}

let h: StoreHarness;
beforeEach(() => {
  h = new StoreHarness();
});
afterEach(async () => {
  await h.cleanup();
});

describe("groups > offset store > commit and read", () => {
  it("reads back committed offsets, sorted, and a later commit replaces an entry", async () => {
    // Ensures get/offsets/groups reflect commits, with the commit time, sorted by topic then partition.
    const store = await h.open();
    const t0 = h.clock.now();
    await store.commit("g1", [entry("orders", 2, 7), entry("audit", 1, 3, "m"), entry("orders", 0, 42)]);
    expect(store.get("g1", "orders", 2)).toEqual({
      topic: "orders",
      partition: 2,
      offset: 7n,
      metadata: "",
      commitTimeMs: t0,
    });
    expect(store.get("g1", "orders", 1)).toBeUndefined();
    expect(store.get("g2", "orders", 2)).toBeUndefined();
    expect(store.offsets("g1").map((o) => [o.topic, o.partition])).toEqual([
      ["audit", 1],
      ["orders", 0],
      ["orders", 2],
    ]);
    h.clock.advance(10);
    await store.commit("g0", [entry("orders", 10, 1)]);
    await store.commit("g1", [entry("orders", 2, 9, "again")]);
    expect(store.get("g1", "orders", 2)).toEqual({
      topic: "orders",
      partition: 2,
      offset: 9n,
      metadata: "again",
      commitTimeMs: t0 + 10,
    });
    expect(store.groups()).toEqual(["g0", "g1"]);
    expect(store.offsets("nobody")).toEqual([]);
  });

  it("applies a commit to memory when it is appended, before the fsync", async () => {
    // Ensures the coordinator sees a commit at once (it is ordered by the append), durable on resolve.
    const store = await h.open();
    const done = store.commit("g", [entry("t", 0, 5)]);
    expect(store.get("g", "t", 0)?.offset).toBe(5n);
    await done;
  });

  it("rejects programming errors with RangeError and applies nothing", async () => {
    // Ensures negative offsets and non-integer partitions are caught before anything is written.
    const store = await h.open();
    const size = statSync(h.segmentPath()).size;
    for (const bad of [
      entry("t", -1, 0),
      entry("t", 1.5, 0),
      entry("t", Number.NaN, 0),
      entry("t", 0, -1),
      entry("t", 0, 2n ** 63n),
    ]) {
      await expect(store.commit("g", [entry("t", 3, 1), bad])).rejects.toThrow(RangeError);
    }
    expect(store.groups()).toEqual([]);
    expect(statSync(h.segmentPath()).size).toBe(size);
  });

  it("stores each call as one RecordBatch whose records are JSON keyed by group", async () => {
    // Ensures the on-disk format of the brief: one batch per call, one record per entry, versioned JSON.
    const store = await h.open();
    const time = h.clock.now();
    await store.commit("g1", [entry("a", 0, 1), entry("a", 1, 12345678901234n, "meta"), entry("b", 0, 0)]);
    await store.commit("g2", [entry("a", 0, 5)]);
    await store.deleteGroup("g2");
    await store.forgetTopic("b");
    await store.close();
    const log = await openLog({
      dir: join(h.dir, "log-0"),
      config: DEFAULT_TEST_CONFIG,
      clock: h.clock,
      logger: silentLogger(),
      cleanShutdown: true,
    });
    try {
      const batches = await readAll(log);
      expect(batches.map((b) => [b.recordCount, b.compression])).toEqual([
        [3, CompressionCode.None],
        [1, CompressionCode.None],
        [1, CompressionCode.None],
        [1, CompressionCode.None],
      ]);
      const records = batches.flatMap((b) =>
        b.records!.records.map((r) => [r.key.toString("utf8"), JSON.parse(r.value.toString("utf8"))]),
      );
      expect(records).toEqual([
        ["g1", { v: 1, type: "commit", topic: "a", partition: 0, offset: "1", metadata: "", time }],
        [
          "g1",
          {
            v: 1,
            type: "commit",
            topic: "a",
            partition: 1,
            offset: "12345678901234",
            metadata: "meta",
            time,
          },
        ],
        ["g1", { v: 1, type: "commit", topic: "b", partition: 0, offset: "0", metadata: "", time }],
        ["g2", { v: 1, type: "commit", topic: "a", partition: 0, offset: "5", metadata: "", time }],
        ["g2", { v: 1, type: "delete-group", time }],
        ["g1", { v: 1, type: "forget-topic", topic: "b", time }],
      ]);
    } finally {
      await log.close();
    }
  });

  it("refuses every call after close", async () => {
    // Ensures a closed store says so instead of writing to a closed log.
    const store = await h.open();
    await store.commit("g", [entry("t", 0, 1)]);
    await store.close();
    await store.close(); // idempotent
    await expect(store.commit("g", [entry("t", 0, 2)])).rejects.toThrow(ShuttingDownError);
    await expect(store.deleteGroup("g")).rejects.toThrow(ShuttingDownError);
    expect(() => store.get("g", "t", 0)).toThrow(ShuttingDownError);
    expect(() => store.groups()).toThrow(ShuttingDownError);
  });
});

describe("groups > offset store > faults", () => {
  it("applies nothing when the append fails, and keeps working once the fault clears", async () => {
    // Ensures a multi-entry commit is all or nothing: a torn write leaves no entry in memory or on disk.
    let store = await h.open();
    await store.commit("g", [entry("t", 0, 1)]);
    const size = statSync(h.segmentPath()).size;
    h.fs.writevFault = { code: "ENOSPC", pathIncludes: ".log", partialBytes: 30 };
    await expect(store.commit("g", [entry("t", 0, 2), entry("t", 1, 2), entry("u", 0, 2)])).rejects.toThrow(
      expect.objectContaining({ code: "ENOSPC" }),
    );
    expect(h.fs.writevFault).toBeNull();
    expect(store.offsets("g").map((o) => o.offset)).toEqual([1n]);
    expect(statSync(h.segmentPath()).size).toBe(size);
    await store.commit("g", [entry("t", 1, 3), entry("u", 0, 3)]);
    expect(framePositions(h.segmentPath())).toHaveLength(2);
    store = await h.reopen(store, { cleanShutdown: false });
    expect(store.offsets("g").map((o) => [o.topic, o.partition, o.offset])).toEqual([
      ["t", 0, 1n],
      ["t", 1, 3n],
      ["u", 0, 3n],
    ]);
  });

  it("goes offline for writes after a failed fsync; reads go on", async () => {
    // Ensures a commit is never acknowledged after an fsync failure, even by a later fsync that works.
    let store = await h.open();
    await store.commit("g", [entry("t", 0, 1)]);
    h.fs.fsyncFault = "EIO";
    const failed = store.commit("g", [entry("t", 0, 2)]);
    await expect(failed).rejects.toThrow(OffsetStoreOfflineError);
    await expect(failed).rejects.toThrow(/fix the disk and restart the broker/);
    await expect(failed).rejects.toThrow(/EIO/);
    expect(h.fs.fsyncFault).toBeNull();
    await expect(store.commit("g", [entry("t", 0, 3)])).rejects.toThrow(OffsetStoreOfflineError);
    await expect(store.commit("g", [])).rejects.toThrow(OffsetStoreOfflineError);
    await expect(store.deleteGroup("g")).rejects.toThrow(OffsetStoreOfflineError);
    await expect(store.forgetTopic("t")).rejects.toThrow(OffsetStoreOfflineError);
    expect(store.get("g", "t", 0)?.offset).toBe(2n); // memory holds the unacknowledged append
    store = await h.reopen(store, { cleanShutdown: false });
    expect(store.get("g", "t", 0)?.offset).toBeGreaterThanOrEqual(1n);
    await store.commit("g", [entry("t", 0, 4)]);
    expect(store.get("g", "t", 0)?.offset).toBe(4n);
  });

  it("recovers every earlier commit after garbage at the tail (unclean stop)", async () => {
    // Ensures a torn tail is cut by the log's recovery and every whole commit before it replays.
    let store = await h.open();
    for (let i = 0; i < 5; i++) await store.commit(`g${i}`, [entry("t", i, i * 10), entry("u", 0, i)]);
    const before = dump(store);
    await store.close();
    appendFileSync(h.segmentPath(), Buffer.from([0x0a, 0xc8, 0x01, 0x0d, 1, 2, 3, 4, 0x11, 9, 9]));
    appendFileSync(h.segmentPath(), Buffer.alloc(300, 0x5a));
    store = await h.open({ cleanShutdown: false });
    expect(dump(store)).toEqual(before);
    await store.commit("g9", [entry("t", 9, 9)]);
    store = await h.reopen(store, { cleanShutdown: false });
    expect(Object.keys(dump(store))).toEqual(["g0", "g1", "g2", "g3", "g4", "g9"]);
  });

  it("loses only the torn last commit when its frame is cut short", async () => {
    // Ensures a commit whose batch did not fully reach the disk disappears whole, never partly.
    let store = await h.open();
    await store.commit("g", [entry("t", 0, 1), entry("t", 1, 1)]);
    const before = dump(store);
    await store.commit("g", [entry("t", 0, 2), entry("t", 1, 2), entry("t", 2, 2)]);
    await store.close();
    truncateSync(h.segmentPath(), statSync(h.segmentPath()).size - 9);
    store = await h.open({ cleanShutdown: false });
    expect(dump(store)).toEqual(before);
  });

  it("skips records it cannot read, with a warning, and replays the rest", async () => {
    // Ensures forward compatibility: unknown versions/types and damaged values do not stop a replay.
    const log = await openLog({
      dir: join(h.dir, "log-0"),
      config: DEFAULT_TEST_CONFIG,
      clock: h.clock,
      logger: silentLogger(),
      cleanShutdown: true,
    });
    const value = (doc: unknown) => Buffer.from(typeof doc === "string" ? doc : JSON.stringify(doc));
    const commit = (partition: number, offset: string) =>
      value({ v: 1, type: "commit", topic: "t", partition, offset, metadata: "", time: 5 });
    const batch = (values: Buffer[]) =>
      RecordBatch.encode({
        records: values.map((v) => ({
          key: Buffer.from("g"),
          value: v,
          headers: [],
          timestampMs: undefined,
        })),
      }).finish();
    log.append([
      {
        records: batch([
          commit(0, "10"),
          value({ v: 2, type: "commit", topic: "t", partition: 1, offset: "1", metadata: "", time: 5 }),
          value({ v: 1, type: "rename-group", time: 5 }),
          value("{not json"),
          value([1, 2]),
          commit(2, "-3"),
          commit(3, "30"),
        ]),
        recordCount: 7,
        compression: CompressionCode.None,
      },
      { records: Buffer.from([0x0a, 0x05]), recordCount: 1, compression: CompressionCode.None },
      { records: Buffer.alloc(20, 1), recordCount: 1, compression: CompressionCode.Zstd },
      { records: recordBatch(["x"]), recordCount: 1, compression: CompressionCode.None }, // no key, not JSON
    ]);
    await log.close();
    const lines: Array<{ [field: string]: unknown }> = [];
    const store = await h.open({ logger: capturingLogger(lines) });
    expect(store.offsets("g").map((o) => [o.partition, o.offset, o.commitTimeMs])).toEqual([
      [0, 10n, 5],
      [3, 30n, 5],
    ]);
    expect(store.groups()).toEqual(["g"]);
    const warning = lines.find((l) => l.level === 40 && typeof l.skipped === "number");
    expect(warning?.skipped).toBe(8);
    expect(JSON.stringify(warning?.first)).toMatch(/unknown record version 2/);
  });
});

describe("groups > offset store > tombstones", () => {
  it("deleteGroup and forgetTopic survive clean and unclean reopens", async () => {
    // Ensures tombstones are replayed in order with the commits around them.
    let store = await h.open();
    await store.commit("g1", [entry("orders", 0, 1), entry("payments", 0, 2)]);
    await store.commit("g2", [entry("orders", 1, 3)]);
    await store.commit("g3", [entry("payments", 2, 4)]);
    await store.deleteGroup("g3");
    expect(store.groups()).toEqual(["g1", "g2"]);
    await store.forgetTopic("orders");
    expect(store.groups()).toEqual(["g1"]);
    expect(store.offsets("g1").map((o) => o.topic)).toEqual(["payments"]);
    await store.commit("g2", [entry("orders", 1, 9)]);
    await store.commit("g3", [entry("fresh", 0, 1)]);
    const expected = dump(store);
    expect(Object.keys(expected)).toEqual(["g1", "g2", "g3"]);
    store = await h.reopen(store);
    expect(dump(store)).toEqual(expected);
    store = await h.reopen(store, { cleanShutdown: false });
    expect(dump(store)).toEqual(expected);
  });

  it("appends nothing for a topic or group without offsets", async () => {
    // Ensures forgetTopic/deleteGroup are no-ops (no append) when nothing matches.
    const store = await h.open();
    await store.commit("g", [entry("t", 0, 1)]);
    const size = statSync(h.segmentPath()).size;
    await store.forgetTopic("other");
    await store.deleteGroup("nobody");
    await store.commit("g", []);
    expect(statSync(h.segmentPath()).size).toBe(size);
    expect(store.offsets("g")).toHaveLength(1);
  });
  it("resolves a call with nothing to append only once earlier appends are durable", async () => {
    // Ensures "resolved" always means durable: a no-op delete must not overtake a pending tombstone.
    const store = await h.open();
    await store.commit("g", [entry("t", 0, 1)]);
    h.fs.gatePath = `${sep}log-0`;
    let settled = 0;
    const calls = [
      store.deleteGroup("g"),
      store.deleteGroup("g"),
      store.forgetTopic("t"),
      store.commit("g", []),
    ];
    for (const call of calls) void call.finally(() => settled++);
    await h.fs.gateReached;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(settled).toBe(0);
    expect(store.groups()).toEqual([]);
    h.fs.release();
    await Promise.all(calls);
    expect(settled).toBe(4);
  });
});

describe("groups > offset store > compaction", () => {
  it("keeps the state identical across compactions and reopens, and removes the old log", async () => {
    // Ensures compaction rewrites exactly the current state (metadata and times too) and switches CURRENT.
    let store = await h.open({ compactAfterBytes: 2000 });
    const expected = new Map<string, StoredOffset>();
    for (let i = 0; i < 120; i++) {
      h.clock.advance(1);
      const group = `g${i % 3}`; // with the topic and partition below: 12 keys, each updated often
      const e = entry(`t${i % 4}`, i % 2, i, `m${i}`);
      await store.commit(group, [e]);
      expected.set(`${group}/${e.topic}/${e.partition}`, { ...e, commitTimeMs: h.clock.now() });
      if (i % 40 === 39) {
        await store.forgetTopic("t3");
        for (const key of [...expected.keys()]) if (key.includes("/t3/")) expected.delete(key);
      }
      const actual = store
        .groups()
        .flatMap((g) => store.offsets(g).map((o) => [`${g}/${o.topic}/${o.partition}`, o]));
      expect(new Map(actual as Array<[string, StoredOffset]>)).toEqual(expected);
    }
    await store.commit("g0", []); // queued behind any compaction in progress
    const state = dump(store);
    const generation = Number(/^log-([0-9]+)\n$/.exec(h.current() ?? "")?.[1]);
    expect(generation).toBeGreaterThanOrEqual(2);
    expect(h.logDirs()).toEqual([`log-${generation}`]);
    store = await h.reopen(store, { compactAfterBytes: 2000 });
    expect(dump(store)).toEqual(state);
    store = await h.reopen(store, { cleanShutdown: false });
    expect(dump(store)).toEqual(state);
  });

  it("bounds the disk usage under many commits of the same partitions", async () => {
    // Ensures the log stays within a few times a fresh snapshot instead of growing with every commit.
    const store = await h.open({ compactAfterBytes: 16 * 1024 });
    const partitions = 500;
    for (let p = 0; p < partitions; p += 100) {
      await store.commit(
        "group",
        Array.from({ length: 100 }, (_, i) => entry("topic", p + i, 0, "meta")),
      );
    }
    let maxLogs = 0;
    let maxAll = 0;
    for (let wave = 0; wave < 250; wave++) {
      const commits: Array<Promise<void>> = [];
      for (let c = 0; c < 20; c++) {
        const n = wave * 20 + c;
        const first = (n * 10) % partitions;
        commits.push(
          store.commit(
            "group",
            Array.from({ length: 10 }, (_, i) => entry("topic", first + i, n, "meta")),
          ),
        );
      }
      await Promise.all(commits);
      await store.commit("group", []); // waits for a compaction the wave queued
      const bytes = h.diskBytes();
      maxLogs = Math.max(maxLogs, bytes.logs);
      maxAll = Math.max(maxAll, bytes.all);
    }
    await store.commit("group", []);
    const state = dump(store);
    expect(state.group).toHaveLength(partitions);
    expect(state.group!.every((o, i) => o.partition === i && o.offset >= 4950n)).toBe(true);

    // A fresh snapshot of the same state: one store that committed it in one call.
    const fresh = new StoreHarness();
    try {
      const snapshot = await fresh.open();
      await snapshot.commit("group", state.group!);
      const snapshotBytes = fresh.diskBytes().logs;
      expect(snapshotBytes).toBeGreaterThan(30_000);
      // 5,000 commits of 10 entries without compaction would be about 100 snapshots; the bound is
      // 2 snapshots plus the commits of one wave appended before the compaction they trigger runs.
      expect(maxLogs).toBeLessThan(3 * snapshotBytes);
      expect(maxAll).toBeLessThan(3 * snapshotBytes + 64 * 1024);
    } finally {
      await fresh.cleanup();
    }
  });

  it("removes the leftover of an interrupted compaction and keeps the live state", async () => {
    // Ensures a log-<n+1> that CURRENT does not name (crash before the switch) is never read.
    let store = await h.open();
    await store.commit("g1", [entry("t", 0, 1)]);
    await store.close();
    await plantGhostLog(join(h.dir, "log-1"));
    writeFileSync(join(h.dir, "CURRENT.tmp"), "log-1\n");
    store = await h.open({ cleanShutdown: false });
    expect(h.logDirs()).toEqual(["log-0"]);
    expect(existsSync(join(h.dir, "CURRENT.tmp"))).toBe(false);
    expect(dump(store)).toEqual({ g1: [{ ...entry("t", 0, 1), commitTimeMs: h.clock.now() }] });
  });

  it("removes the old log left by a compaction interrupted after the switch", async () => {
    // Ensures that once CURRENT names log-<n+1>, a remaining log-<n> is removed, not replayed.
    let store = await h.open({ compactAfterBytes: 0 });
    for (let i = 0; i < 10; i++) await store.commit("g", [entry("t", 0, i)]);
    await store.commit("g", []);
    const live = (h.current() ?? "").trim();
    expect(live).not.toBe("log-0");
    await store.close();
    await plantGhostLog(join(h.dir, "log-0"));
    store = await h.open({ cleanShutdown: false, compactAfterBytes: 1 << 20 });
    expect(h.logDirs()).toEqual([live]);
    expect(store.groups()).toEqual(["g"]);
    expect(store.get("g", "t", 0)?.offset).toBe(9n);
  });

  it("keeps the current log when writing the compacted one fails, and retries later", async () => {
    // Ensures a failed compaction loses nothing, leaves no directory behind and is tried again.
    let store = await h.open();
    for (let i = 0; i < 60; i++) await store.commit("g", [entry("t", i % 20, i)]);
    const before = dump(store);
    await store.close();
    h.fs.writevFault = { code: "ENOSPC", pathIncludes: `${sep}log-1${sep}`, partialBytes: 0 };
    store = await h.open({ compactAfterBytes: 1000 }); // due at once: the compaction starts on open
    await store.commit("g", []);
    expect(h.fs.writevFault).toBeNull();
    expect(h.current()).toBeNull();
    expect(h.logDirs()).toEqual(["log-0"]);
    expect(dump(store)).toEqual(before);
    for (let i = 0; i < 100 && h.current() === null; i++) {
      await store.commit("g", [entry("t", i % 20, 100 + i)]);
      await store.commit("g", []);
    }
    expect(h.current()).toBe("log-1\n");
    expect(h.logDirs()).toEqual(["log-1"]);
    const after = dump(store);
    store = await h.reopen(store);
    expect(dump(store)).toEqual(after);
  });

  it("goes offline when switching CURRENT fails, and the old log stays live", async () => {
    // Ensures no commit is taken once it is unclear which log CURRENT names.
    let store = await h.open();
    for (let i = 0; i < 60; i++) await store.commit("g", [entry("t", i % 20, i)]);
    const before = dump(store);
    await store.close();
    h.fs.gatePath = `${sep}log-1`;
    store = await h.open({ compactAfterBytes: 1000 }); // due at once: the compaction starts on open
    await h.fs.gateReached;
    mkdirSync(join(h.dir, "CURRENT.tmp")); // writing the temp file fails with EISDIR
    h.fs.release();
    const queued = store.commit("g", [entry("t", 0, 1000)]);
    await expect(queued).rejects.toThrow(OffsetStoreOfflineError);
    await expect(queued).rejects.toThrow(/EISDIR/);
    expect(dump(store)).toEqual(before);
    store = await h.reopen(store);
    expect(h.logDirs()).toEqual(["log-0"]);
    expect(dump(store)).toEqual(before);
  });

  it("refuses to start on an unreadable CURRENT, saying what to do", async () => {
    // Ensures a damaged pointer is reported instead of silently starting from an empty state.
    writeFileSync(join(h.dir, "CURRENT"), "log-x\n");
    await expect(h.open()).rejects.toThrow(/should hold "log-<n>".*newest log-<n> directory/);
  });

  it("keeps every commit that arrives while a compaction runs, in call order", async () => {
    // Ensures commits wait for the switch and land in the new log, none lost or reordered.
    let store = await h.open();
    for (let i = 0; i < 60; i++) await store.commit("g", [entry("t", i % 20, i)]);
    const before = dump(store);
    await store.close();
    h.fs.gatePath = `${sep}log-1`;
    store = await h.open({ compactAfterBytes: 1000 }); // due at once: the compaction starts on open
    await h.fs.gateReached;
    let settled = 0;
    const commits = Array.from({ length: 50 }, (_, i) =>
      store.commit("g", [entry("t", 100 + (i % 40), 1000 + i)]).finally(() => settled++),
    );
    commits.push(store.commit("h", [entry("t", 0, 1)]).finally(() => settled++));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(settled).toBe(0);
    expect(store.get("g", "t", 100)).toBeUndefined();
    expect(h.logDirs()).toEqual(["log-0", "log-1"]);
    h.fs.release();
    await Promise.all(commits);
    const live = (h.current() ?? "").trim();
    expect(live).toMatch(/^log-[1-9]/);
    expect(h.logDirs()).toEqual([live]);
    const after = dump(store);
    expect(after.g!.filter((o) => o.partition < 20)).toEqual(before.g);
    expect(store.get("g", "t", 100)?.offset).toBe(1040n); // the later of two commits wins
    expect(store.get("g", "t", 139)?.offset).toBe(1039n);
    expect(after.h).toHaveLength(1);
    store = await h.reopen(store, { cleanShutdown: false });
    expect(dump(store)).toEqual(after);
  });
});

type Op =
  | { kind: "commit"; group: string; entries: OffsetCommitInput[]; advance: number }
  | { kind: "delete"; group: string }
  | { kind: "forget"; topic: string };

const groupArb = fc.constantFrom("a", "b", "c");
const topicArb = fc.constantFrom("t1", "t2", "t3");
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("commit" as const),
      group: groupArb,
      entries: fc.array(
        fc.record({
          topic: topicArb,
          partition: fc.integer({ min: 0, max: 3 }),
          offset: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
          metadata: fc.string({ maxLength: 6, unit: "binary" }),
        }),
        { maxLength: 3 },
      ),
      advance: fc.integer({ min: 0, max: 1000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), group: groupArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("forget" as const), topic: topicArb }) },
);

/** The simple model: group → "topic/partition" → offset, applied in call order. */
function applyToModel(model: Map<string, Map<string, StoredOffset>>, op: Op, now: number): void {
  if (op.kind === "commit") {
    for (const e of op.entries) {
      const offsets = model.get(op.group) ?? new Map<string, StoredOffset>();
      offsets.set(`${e.topic}/${e.partition}`, { ...e, commitTimeMs: now });
      model.set(op.group, offsets);
    }
  } else if (op.kind === "delete") {
    model.delete(op.group);
  } else {
    for (const [group, offsets] of model) {
      for (const key of [...offsets.keys()]) if (key.startsWith(`${op.topic}/`)) offsets.delete(key);
      if (offsets.size === 0) model.delete(group);
    }
  }
}

function modelDump(model: Map<string, Map<string, StoredOffset>>): Record<string, StoredOffset[]> {
  const groups = [...model.keys()].sort();
  const cmp = (a: StoredOffset, b: StoredOffset) =>
    a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;
  return Object.fromEntries(groups.map((g) => [g, [...model.get(g)!.values()].sort(cmp)]));
}

describe("groups > offset store > property", () => {
  it("after any sequence of commits, deletes and forgets, a reopen gives the model's state", async () => {
    // Ensures replay (with compactions and concurrent calls in between) reproduces the in-memory model.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
        fc.constantFrom(0, 400, 1 << 20),
        fc.boolean(),
        async (rounds, compactAfterBytes, cleanShutdown) => {
          const run = new StoreHarness();
          try {
            let store = await run.open({ compactAfterBytes });
            const model = new Map<string, Map<string, StoredOffset>>();
            for (const round of rounds) {
              // The calls of one round are made together, without waiting: they must apply in call order.
              const calls: Array<Promise<void>> = [];
              for (const op of round) {
                if (op.kind === "commit") run.clock.advance(op.advance);
                applyToModel(model, op, run.clock.now());
                if (op.kind === "commit") calls.push(store.commit(op.group, op.entries));
                else if (op.kind === "delete") calls.push(store.deleteGroup(op.group));
                else calls.push(store.forgetTopic(op.topic));
              }
              await Promise.all(calls);
              expect(dump(store)).toEqual(modelDump(model));
            }
            store = await run.reopen(store, { cleanShutdown, compactAfterBytes });
            expect(dump(store)).toEqual(modelDump(model));
            await store.commit("a", []); // waits for a compaction the open may have queued
            expect(run.logDirs()).toHaveLength(1);
          } finally {
            await run.cleanup();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
