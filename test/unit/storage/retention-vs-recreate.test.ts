/**
 * Regression (found in review): a retention pass that is still deleting segment files (Segment.deleteFiles:
 * rename to .deleted + unlink, by absolute path, one file at a time) keeps going after the topic
 * is deleted (TopicRegistry.delete closes the logs but does not wait for or cancel a pass). If the
 * topic is re-created meanwhile, the stale pass renames/unlinks the NEW log's files that have the
 * same base offsets, active segment included; the new log keeps writing into unlinked inodes and
 * every acknowledged record is gone at the next open.
 *
 * Deterministic at the storage level: the same steps TopicRegistry.delete + create take (close the
 * old log, rename its topic directory into trash, open a new log in the same directory), while the
 * old log's retention pass is still running (its renames made slow to widen the window; with real
 * timing the broker-level race also reproduced once in a few runs).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { readdir, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ManualClock } from "../../../server/src/clock.js";
import { silentLogger } from "../../../server/src/logger.js";
import { type FileSystem, nodeFileSystem } from "../../../server/src/storage/fs.js";
import { openLog } from "../../../server/src/storage/log.js";
import { CompressionCode } from "../../../server/src/storage/log-api.js";

it("a deleted log's retention pass never deletes the files of a new log in the same directory", async () => {
  const root = mkdtempSync(join(tmpdir(), "rill-review-"));
  const dir = join(root, "topics", "t", "0");
  const clock = new ManualClock();
  const slowFs: FileSystem = {
    ...nodeFileSystem,
    rename: async (a, b) => {
      await new Promise((r) => setTimeout(r, 5));
      return nodeFileSystem.rename(a, b);
    },
  };
  const config = {
    segmentBytes: 1024,
    segmentMs: 1e12,
    retentionMs: 1000,
    retentionBytes: -1,
    indexIntervalBytes: 4096,
  };
  const input = () => ({ records: Buffer.alloc(700, 1), recordCount: 1, compression: CompressionCode.None });
  const open = (fs: FileSystem) =>
    openLog({ dir, config, clock, logger: silentLogger(), fs, cleanShutdown: true });
  try {
    const old = await open(slowFs);
    for (let i = 0; i < 20; i++) old.append([input()]); // segments 0..19, one batch each
    clock.advance(5000);
    const pass = old.applyRetention(); // rolls to 20, then deletes 0..19 one file at a time
    await old.close(); // TopicRegistry.delete: the partitions are closed...
    await rename(join(root, "topics", "t"), join(root, "trash-t")); // ...the directory moves to trash
    const fresh = await open(nodeFileSystem); // CreateTopic of the same name
    for (let i = 0; i < 20; i++) fresh.append([input()]); // acknowledged: segments 0..19
    await pass.catch(() => undefined);
    const left = (await readdir(dir)).filter((n) => n.endsWith(".log")).length;
    await fresh.close();
    const reopened = await open(nodeFileSystem);
    expect.soft(left).toBe(20);
    expect({ start: reopened.logStartOffset, end: reopened.logEndOffset }).toEqual({ start: 0n, end: 20n });
    await reopened.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
