/**
 * Kill points inside consumer-group offset commits (issue 5): the offset store (groups/, an
 * internal log plus a CURRENT file naming it) runs alone in the fixture
 * (fixtures/kill-point-broker.mjs, KILL_MODE=offset-store, compaction after 2 KiB) and commits
 * offsets 1, 2, 3... of one partition, printing each once it resolved; it SIGKILLs itself before,
 * after or in the middle of one write of a commit, or at a step of a compaction (new log written,
 * CURRENT switched, old log removed). A normal broker then opens the data dir: it serves, the
 * committed offset is the last acknowledged one or the one in flight (never older, never garbage),
 * no leftover log directory stays, and new commits work and survive a restart.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { groupApi, groupStub, RawMember } from "../integration/helpers/group.js";
import { api, stubs } from "../integration/helpers/grpc.js";
import {
  cleanUpKillPoints,
  describeKillPoint,
  expectKilledAtPoint,
  expectServing,
  type KillPoint,
  newDataDir,
  spawnKillPoint,
  startNormalBroker,
  stopBroker,
} from "./helpers/kill-point.js";

afterEach(cleanUpKillPoints);

const OFFSETS_LOG = "/groups/log-0/\\d{20}\\.log$";

const CASES: Array<{ name: string; kill: KillPoint }> = [
  { name: "commit 5 not yet written", kill: { op: "writevSync", path: OFFSETS_LOG, nth: 5, when: "before" } },
  {
    name: "commit 5 torn in the offsets log",
    kill: { op: "writevSync", path: OFFSETS_LOG, nth: 5, when: "torn" },
  },
  {
    name: "commit 5 written, not fsynced",
    kill: { op: "writevSync", path: OFFSETS_LOG, nth: 5, when: "after" },
  },
  {
    name: "compaction: new log-1 created, CURRENT still log-0",
    kill: { op: "openSync", path: "/groups/log-1/\\d{20}\\.log$", nth: 1, when: "after" },
  },
  {
    name: "compaction: log-1 complete, CURRENT not switched",
    kill: { op: "rename", path: "/groups/CURRENT$", nth: 1, when: "before" },
  },
  {
    name: "compaction: CURRENT switched, log-0 not removed",
    kill: { op: "rename", path: "/groups/CURRENT$", nth: 1, when: "after" },
  },
  {
    name: "compaction: switched and synced, removing log-0",
    kill: { op: "rm", path: "/groups/log-0$", nth: 1, when: "before" },
  },
];

async function committed(address: string): Promise<bigint | undefined> {
  const stub = groupStub(address);
  try {
    const got = await groupApi(stub).committed("g");
    return got.offsets.find((o) => o.topic === "t" && o.partition === 0)?.offset;
  } finally {
    stub.close();
  }
}

describe("crash > kill points in group offset commits", () => {
  for (const c of CASES)
    it(`${c.name}: the committed offset is the old or the new one`, async () => {
      const context = `kill point ${describeKillPoint(c.kill)} (${c.name})`;
      const dataDir = await newDataDir();
      const first = await startNormalBroker(dataDir);
      const s = stubs(first.address);
      await api(s).createTopic({ topic: "t", partitions: 1, config: undefined });
      s.close();
      await stopBroker(first);

      const child = spawnKillPoint(dataDir, c.kill, { KILL_COMPACT_BYTES: "2048" }, "offset-store");
      await expectKilledAtPoint(child, c.kill);
      let acked = 0n;
      for (const line of child.output) {
        const m = /"msg":"committed","offset":(\d+)/.exec(line);
        if (m) acked = BigInt(m[1]!);
      }
      expect(acked, `${context}: commits were acknowledged before the kill`).toBeGreaterThan(0n);

      const broker = await startNormalBroker(dataDir);
      await expectServing(broker.address);
      const got = await committed(broker.address);
      expect([acked, acked + 1n], `${context}: committed ${got}, last acked ${acked}`).toContain(got);
      const logs = (await readdir(join(dataDir, "groups"))).filter((n) => n.startsWith("log-"));
      expect(logs.length, `${context}: one offsets log left, not ${logs.join(", ")}`).toBe(1);

      const stub = groupStub(broker.address);
      const member = new RawMember(stub, "g", { topics: ["t"] });
      await member.until((m) => m.assigned.length === 1, 10_000, "an assignment");
      await member.commit([{ topic: "t", partition: 0, offset: 0n }]);
      member.kill();
      stub.close();
      await stopBroker(broker);
      const again = await startNormalBroker(dataDir);
      expect(await committed(again.address), `${context}: a commit after recovery survives a restart`).toBe(
        0n,
      );
      await stopBroker(again);
    });
});
