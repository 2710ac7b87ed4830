/**
 * Kill points inside the multi-file steps of a partition log (issue 5): the broker SIGKILLs
 * itself right before, right after, or in the middle of one chosen file-system call (see
 * fixtures/kill-point-broker.mjs) during a segment roll, an index write, a torn batch write, a
 * retention delete and a recovery-point update, under FSYNCED produces; some cases kill the next
 * start again inside its own recovery (cutting a torn tail, rewriting an index). A normal broker
 * then opens the data dir: it must serve (health SERVING), hold every acked record dense and
 * CRC-clean, take new produces, and leave whole segment files with no `.deleted` or orphan index
 * file behind.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { api, stubs } from "../integration/helpers/grpc.js";
import {
  checkPartition,
  cleanUpKillPoints,
  describeKillPoint,
  expectCleanFiles,
  expectKilledAtPoint,
  expectServing,
  expectWritable,
  type KillPoint,
  newDataDir,
  produceUntilDead,
  spawnKillPoint,
  startNormalBroker,
  stopBroker,
} from "./helpers/kill-point.js";

afterEach(cleanUpKillPoints);

/** Segment files of a base offset other than 0: a segment created by a roll. */
const ROLLED = "/(?!0{20})\\d{20}";

interface Case {
  name: string;
  kill: KillPoint;
  /** Retention on: 2 KiB per partition, checked every 50 ms. */
  retention?: boolean;
  /** A second kill, during the recovery the next start runs (a crash while recovering). */
  thenKill?: KillPoint;
}

const CASES: Case[] = [
  {
    name: "roll: new .log created, no index files yet",
    kill: { op: "openSync", path: `${ROLLED}\\.log$`, nth: 1, when: "after" },
  },
  {
    name: "roll: new .log and .index, no .timeindex yet",
    kill: { op: "openSync", path: `${ROLLED}\\.index$`, nth: 1, when: "after" },
  },
  {
    name: "roll: all three files created, nothing written",
    kill: { op: "openSync", path: `${ROLLED}\\.timeindex$`, nth: 1, when: "after" },
  },
  {
    name: "roll: first batch of the new segment torn",
    kill: { op: "writevSync", path: `${ROLLED}\\.log$`, nth: 1, when: "torn" },
  },
  {
    name: "index write: batch written, its offset-index entry not",
    kill: { op: "writevSync", path: "\\.index$", nth: 3, when: "before" },
  },
  {
    name: "index write: offset-index entry torn",
    kill: { op: "writevSync", path: "\\.index$", nth: 3, when: "torn" },
  },
  {
    name: "index write: time-index entry torn",
    kill: { op: "writevSync", path: "\\.timeindex$", nth: 3, when: "torn" },
  },
  {
    name: "append: a batch torn in the .log",
    kill: { op: "writevSync", path: "\\.log$", nth: 5, when: "torn" },
  },
  {
    name: "recovery point: temp file written, not renamed",
    kill: { op: "rename", path: "/recovery-point$", nth: 1, when: "before" },
  },
  {
    name: "retention: .log renamed to .deleted, its indexes not",
    kill: { op: "rename", path: "\\.log\\.deleted$", nth: 1, when: "after" },
    retention: true,
  },
  {
    name: "retention: all three renamed, none unlinked",
    kill: { op: "rename", path: "\\.timeindex\\.deleted$", nth: 1, when: "after" },
    retention: true,
  },
  {
    name: "retention: .log.deleted unlinked, the index .deleted files not",
    kill: { op: "unlink", path: "\\.log\\.deleted$", nth: 1, when: "after" },
    retention: true,
  },
  {
    name: "recovery interrupted: torn batch cut, indexes not yet rebuilt",
    kill: { op: "writevSync", path: "\\.log$", nth: 5, when: "torn" },
    thenKill: { op: "ftruncateSync", path: "\\.log$", nth: 1, when: "after" },
  },
  {
    name: "recovery interrupted: rebuilt offset index written torn",
    kill: { op: "writevSync", path: "\\.index$", nth: 3, when: "torn" },
    thenKill: { op: "writevSync", path: "\\.index$", nth: 1, when: "torn" },
  },
  {
    name: "recovery interrupted: offset index emptied, not rewritten",
    kill: { op: "writevSync", path: "\\.index$", nth: 3, when: "torn" },
    thenKill: { op: "ftruncateSync", path: "\\.index$", nth: 1, when: "after" },
  },
  {
    name: "recovery interrupted: rebuilt time index written torn",
    kill: { op: "writevSync", path: "\\.timeindex$", nth: 3, when: "torn" },
    thenKill: { op: "writevSync", path: "\\.timeindex$", nth: 1, when: "torn" },
  },
];

describe("crash > kill points in log steps", () => {
  for (const c of CASES)
    it(`${c.name}: recovers every acked record, dense, CRC-clean and writable`, async () => {
      const then = c.thenKill ? `, then ${describeKillPoint(c.thenKill)} while recovering` : "";
      const context = `kill point ${describeKillPoint(c.kill)}${then} (${c.name})`;
      const dataDir = await newDataDir();
      const env: Record<string, string> = { RILL_INDEX_INTERVAL_BYTES: "256" };
      if (c.retention) env.RILL_RETENTION_CHECK_INTERVAL_MS = "50";
      const child = spawnKillPoint(dataDir, c.kill, env);
      const address = await child.ready;
      const admin = stubs(address);
      await api(admin).createTopic({
        topic: "log",
        partitions: 1,
        config: { segmentBytes: 1024n, ...(c.retention ? { retentionBytes: 2048n } : {}) },
      });
      admin.close();
      const acked = await produceUntilDead(address, child, "log", 0);
      await expectKilledAtPoint(child, c.kill);
      expect(acked.size, `${context}: produces were acked before the kill`).toBeGreaterThan(0);
      if (c.thenKill) {
        // The next start dies inside its own recovery, before it serves.
        const again = spawnKillPoint(dataDir, c.thenKill, env);
        await expectKilledAtPoint(again, c.thenKill);
      }

      const broker = await startNormalBroker(dataDir);
      await expectServing(broker.address);
      const { values, logStart } = await checkPartition(broker.address, "log", 0, acked, context);
      let lastAcked = 0n;
      for (const offset of acked.keys()) if (offset > lastAcked) lastAcked = offset;
      expect(logStart + BigInt(values.length), `${context}: the log ends after the last ack`).toBeGreaterThan(
        lastAcked,
      );
      if (c.retention) expect(logStart, `${context}: retention had deleted segments`).toBeGreaterThan(0n);
      await expectWritable(broker.address, "log", 0, context);
      await stopBroker(broker);
      await expectCleanFiles(join(dataDir, "topics", "log", "0"), context);
    });
});
