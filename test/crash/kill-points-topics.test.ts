/**
 * Kill points inside topic create and topic delete (issue 5): the broker SIGKILLs itself right
 * before or after one file-system call of the step (fixtures/kill-point-broker.mjs; both steps go
 * through the FileSystem seam). A normal broker then opens the data dir: it serves, and the topic is
 * either fully there (listed with every partition, every acked record back, writable) or fully
 * gone (not listed, no directory left, and creating it again gives an empty, writable topic). Which
 * of the two is fixed by where the kill lands: topic.json renamed into place is the commit point of
 * a create, the rename into trash/ that of a delete.
 */
import { readdir } from "node:fs/promises";
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

const PARTITIONS = 2;

interface Case {
  name: string;
  kill: KillPoint;
  /** Whether the topic must exist after recovery. */
  survives: boolean;
}

const CREATE: Case[] = [
  {
    name: "topic dir made, nothing in it",
    kill: { op: "mkdir", path: "/topics/born$", nth: 1, when: "after" },
    survives: false,
  },
  {
    name: "first partition log created",
    kill: { op: "openSync", path: "/born/0/0{20}\\.log$", nth: 1, when: "after" },
    survives: false,
  },
  {
    name: "every partition open, topic.json.tmp created empty",
    kill: { op: "openSync", path: "/born/topic\\.json\\.tmp$", nth: 1, when: "after" },
    survives: false,
  },
  {
    name: "topic.json.tmp written and fsynced, not renamed",
    kill: { op: "rename", path: "/born/topic\\.json$", nth: 1, when: "before" },
    survives: false,
  },
  {
    name: "topic.json renamed into place, directory not fsynced",
    kill: { op: "rename", path: "/born/topic\\.json$", nth: 1, when: "after" },
    survives: true,
  },
];

const DELETE: Case[] = [
  {
    name: "partitions closed, not yet moved to trash",
    kill: { op: "rename", path: "/trash/[^/]+$", nth: 1, when: "before" },
    survives: true,
  },
  {
    name: "moved to trash, topics/ not fsynced",
    kill: { op: "rename", path: "/trash/[^/]+$", nth: 1, when: "after" },
    survives: false,
  },
  {
    name: "moved to trash and fsynced, files not yet removed",
    kill: { op: "rm", path: "/trash/[^/]+$", nth: 1, when: "before" },
    survives: false,
  },
];

const GROW: Case[] = [
  {
    name: "new partition 2 created, topic.json not rewritten",
    kill: { op: "openSync", path: "/grown/2/0{20}\\.log$", nth: 1, when: "after" },
    survives: false,
  },
  {
    name: "every new partition open, topic.json rewritten, directory not fsynced",
    kill: { op: "rename", path: "/grown/topic\\.json$", nth: 2, when: "after" },
    survives: true,
  },
];

/** AddPartitions as a promise of "ok" or the error's message. */
function addPartitions(address: string, topic: string, partitions: number): Promise<string> {
  const s = stubs(address);
  return new Promise<string>((resolve) =>
    s.admin.addPartitions({ topic, partitions }, (err) => resolve(err ? err.message : "ok")),
  ).finally(() => s.close());
}

async function listed(address: string): Promise<string[]> {
  const s = stubs(address);
  try {
    return (await api(s).listTopics()).topics.map((t) => `${t.topic}:${t.partitions}`);
  } finally {
    s.close();
  }
}

describe("crash > kill points in topic create", () => {
  for (const c of CREATE)
    it(`${c.name}: the topic is wholly there or wholly gone`, async () => {
      const context = `kill point ${describeKillPoint(c.kill)} (${c.name})`;
      const dataDir = await newDataDir();
      const child = spawnKillPoint(dataDir, c.kill);
      const address = await child.ready;
      const admin = stubs(address);
      const created = api(admin)
        .createTopic({ topic: "born", partitions: PARTITIONS, config: undefined })
        .then(
          () => "ok",
          (err: Error) => err.message,
        );
      await expectKilledAtPoint(child, c.kill);
      expect(await created, `${context}: the create was never acknowledged`).not.toBe("ok");
      admin.close();

      const broker = await startNormalBroker(dataDir);
      await expectServing(broker.address);
      if (c.survives) {
        expect(await listed(broker.address), context).toEqual([`born:${PARTITIONS}`]);
      } else {
        expect(await listed(broker.address), context).toEqual([]);
        expect(await readdir(join(dataDir, "topics")), `${context}: leftovers in topics/`).toEqual([]);
        const s = stubs(broker.address);
        await api(s).createTopic({ topic: "born", partitions: PARTITIONS, config: undefined });
        s.close();
      }
      for (let p = 0; p < PARTITIONS; p++) {
        const { values } = await checkPartition(broker.address, "born", p, new Map(), context);
        expect(values, `${context}: partition ${p} starts empty`).toEqual([]);
        await expectWritable(broker.address, "born", p, context);
      }
      await stopBroker(broker);
      for (let p = 0; p < PARTITIONS; p++)
        await expectCleanFiles(join(dataDir, "topics", "born", String(p)), context);
    });
});

describe("crash > kill points in topic delete", () => {
  for (const c of DELETE)
    it(`${c.name}: the topic is wholly there with its records, or wholly gone`, async () => {
      const context = `kill point ${describeKillPoint(c.kill)} (${c.name})`;
      const dataDir = await newDataDir();
      const child = spawnKillPoint(dataDir, c.kill);
      const address = await child.ready;
      const admin = stubs(address);
      await api(admin).createTopic({ topic: "doomed", partitions: PARTITIONS, config: undefined });
      const acked: Map<bigint, string>[] = [];
      for (let p = 0; p < PARTITIONS; p++)
        acked.push(await produceUntilDead(address, child, "doomed", p, { max: 5 }));
      expect(
        acked.map((a) => a.size),
        `${context}: records acked before the delete`,
      ).toEqual([5, 5]);
      const deleted = api(admin)
        .deleteTopic({ topic: "doomed" })
        .then(
          () => "ok",
          (err: Error) => err.message,
        );
      await expectKilledAtPoint(child, c.kill);
      admin.close();
      await deleted;

      const broker = await startNormalBroker(dataDir);
      await expectServing(broker.address);
      const trash = await readdir(join(dataDir, "trash")).catch(() => []);
      expect(trash, `${context}: trash/ is emptied on start`).toEqual([]);
      if (c.survives) {
        expect(await listed(broker.address), context).toEqual([`doomed:${PARTITIONS}`]);
        for (let p = 0; p < PARTITIONS; p++) {
          const { values } = await checkPartition(broker.address, "doomed", p, acked[p]!, context);
          expect(values.length, `${context}: partition ${p} holds exactly its acked records`).toBe(5);
        }
      } else {
        expect(await listed(broker.address), context).toEqual([]);
        const s = stubs(broker.address);
        await api(s).createTopic({ topic: "doomed", partitions: PARTITIONS, config: undefined });
        s.close();
        for (let p = 0; p < PARTITIONS; p++) {
          const { values } = await checkPartition(broker.address, "doomed", p, new Map(), context);
          expect(values, `${context}: the re-created partition ${p} is empty`).toEqual([]);
        }
      }
      for (let p = 0; p < PARTITIONS; p++) await expectWritable(broker.address, "doomed", p, context);
      await stopBroker(broker);
    });
});

describe("crash > kill points in adding partitions", () => {
  for (const c of GROW)
    it(`${c.name}: the topic keeps its old count and records, or has the new count`, async () => {
      const context = `kill point ${describeKillPoint(c.kill)} (${c.name})`;
      const dataDir = await newDataDir();
      const child = spawnKillPoint(dataDir, c.kill);
      const address = await child.ready;
      const admin = stubs(address);
      await api(admin).createTopic({ topic: "grown", partitions: PARTITIONS, config: undefined });
      admin.close();
      const acked: Map<bigint, string>[] = [];
      for (let p = 0; p < PARTITIONS; p++)
        acked.push(await produceUntilDead(address, child, "grown", p, { max: 5 }));
      const grown = addPartitions(address, "grown", 4);
      await expectKilledAtPoint(child, c.kill);
      expect(await grown, `${context}: the add was never acknowledged`).not.toBe("ok");

      const broker = await startNormalBroker(dataDir);
      await expectServing(broker.address);
      const count = c.survives ? 4 : PARTITIONS;
      expect(await listed(broker.address), context).toEqual([`grown:${count}`]);
      for (let p = 0; p < PARTITIONS; p++) {
        const { values } = await checkPartition(broker.address, "grown", p, acked[p]!, context);
        expect(values.length, `${context}: partition ${p} holds exactly its acked records`).toBe(5);
      }
      if (!c.survives)
        expect(await addPartitions(broker.address, "grown", 4), `${context}: add again`).toBe("ok");
      for (let p = 0; p < 4; p++) {
        if (p >= PARTITIONS) {
          const { values } = await checkPartition(broker.address, "grown", p, new Map(), context);
          expect(values, `${context}: the new partition ${p} starts empty`).toEqual([]);
        }
        await expectWritable(broker.address, "grown", p, context);
      }
      await stopBroker(broker);
      for (let p = 0; p < 4; p++)
        await expectCleanFiles(join(dataDir, "topics", "grown", String(p)), context);
    });
});
