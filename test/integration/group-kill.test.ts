/**
 * Members that die without a goodbye, as real processes: three `rill consume --group` children
 * read a topic while a producer writes; one is SIGKILLed (its connection drops), one is SIGSTOPped
 * (its connection stays open but it stops heartbeating). Their partitions must move to the
 * survivor within the session timeout, consumption continues from the committed offsets, and the
 * group as a whole prints every record produced (at least once). Each child is stopped by its PID.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../clients/ts/src/index.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { flat, groupApi, groupStub } from "./helpers/group.js";

const root = join(import.meta.dirname, "..", "..");
const bin = join(root, "bin", "rill.js");
const SESSION_MS = 1500;
const children = new Set<ChildProcess>();
let broker: TestBroker | undefined;

beforeAll(() => {
  if (!existsSync(join(root, "dist", "clients", "cli", "src", "main.js"))) {
    execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
  }
}, 120_000);

afterEach(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL");
  }
  children.clear();
  await broker?.stop();
});

interface Printed {
  partition: number;
  offset: string;
  value: string;
  at: number;
}

function member(address: string, topic: string, group: string) {
  const child = spawn(
    process.execPath,
    [bin, "consume", topic, "--group", group, "--format", "json", "--broker", address],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RILL_BROKER: "" },
    },
  );
  children.add(child);
  const printed: Printed[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const r = JSON.parse(line) as Printed;
    printed.push({ ...r, at: performance.now() });
  });
  child.stderr!.resume();
  return { child, printed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

describe("integration > consumer group members killed without a goodbye", () => {
  it("moves a SIGKILLed and a frozen member's partitions within the session timeout, losing nothing", async () => {
    broker = await startTestBroker({ groupSessionTimeoutMs: SESSION_MS, groupMinSessionTimeoutMs: 100 });
    const client = createClient({ brokers: broker.address });
    const stub = groupStub(broker.address);
    try {
      const topic = randomTopic("kill");
      const group = randomTopic("grp");
      await client.admin().createTopic(topic, { partitions: 6 });
      const producer = client.producer({ lingerMs: 0 });
      let produced = 0;
      let producing = true;
      const production = (async () => {
        while (producing && produced < 20_000) {
          await producer.send(
            topic,
            Array.from({ length: 20 }, (_, i) => ({ key: `k${produced + i}`, value: `v${produced + i}` })),
          );
          produced += 20;
          await sleep(10);
        }
        await producer.flush();
      })();

      const members = [
        member(broker.address, topic, group),
        member(broker.address, topic, group),
        member(broker.address, topic, group),
      ];
      const describe = () => groupApi(stub).describe(group);
      await until(
        async () => {
          const d = await describe().catch(() => undefined);
          return (
            d !== undefined && d.members.length === 3 && d.members.every((m) => flat(m.assigned).length === 2)
          );
        },
        15_000,
        "three members with two partitions each",
      );
      await until(() => members.every((m) => m.printed.length > 0), 15_000, "every member to print");

      // 1. SIGKILL: the connection drops, the broker sees the stream end. Members are named
      // <host>-<pid> by default, which tells us whose partitions the victim held.
      const victim = members[0]!;
      const held = (await describe()).members.find((m) => m.memberName.endsWith(`-${victim.child.pid}`));
      expect(held).toBeDefined();
      const victimPartitions = new Set(flat(held!.assigned).map((k) => Number(k.split("/")[1])));
      expect(victimPartitions.size).toBe(2);
      const killedAt = performance.now();
      process.kill(victim.child.pid!, "SIGKILL");
      await until(
        async () => (await describe()).members.length === 2,
        SESSION_MS,
        "the killed member to be removed",
      );
      await until(
        () =>
          members
            .slice(1)
            .some((m) => m.printed.some((p) => p.at > killedAt && victimPartitions.has(p.partition))),
        10_000,
        "a survivor to print from the killed member's partitions",
      );
      const killFlowMs = performance.now() - killedAt;

      // 2. SIGSTOP: the connection stays open; only the missing heartbeats tell.
      const frozen = members[1]!;
      const frozenHeld = (await describe()).members.find((m) =>
        m.memberName.endsWith(`-${frozen.child.pid}`),
      );
      const frozenPartitions = new Set(flat(frozenHeld?.assigned ?? []).map((k) => Number(k.split("/")[1])));
      expect(frozenPartitions.size).toBeGreaterThan(0);
      const frozenAt = performance.now();
      process.kill(frozen.child.pid!, "SIGSTOP");
      await until(
        async () => (await describe()).members.length === 1,
        SESSION_MS + 1000,
        "the frozen member's removal",
      );
      const frozenRemovedMs = performance.now() - frozenAt;
      const survivor = members[2]!;
      await until(
        () =>
          survivor.printed.some(
            (p) => p.at > frozenAt + frozenRemovedMs && frozenPartitions.has(p.partition),
          ),
        10_000,
        "the survivor to print from the frozen member's partitions",
      );
      const frozenFlowMs = performance.now() - frozenAt;
      await until(
        async () => flat((await describe()).members[0]?.assigned ?? []).length === 6,
        5000,
        "the survivor to own all six partitions",
      );

      producing = false;
      await production;
      const all = () => new Set(members.flatMap((m) => m.printed.map((p) => p.value)));
      await until(() => all().size >= produced, 20_000, `every one of the ${produced} records to be printed`);
      const missing = Array.from({ length: produced }, (_, i) => `v${i}`).filter((v) => !all().has(v));
      expect(missing).toEqual([]);
      // The survivor ends cleanly on SIGINT and leaves the group.
      const exited = new Promise<number | null>((resolve) =>
        survivor.child.once("exit", (code) => resolve(code)),
      );
      process.kill(survivor.child.pid!, "SIGINT");
      expect(await exited).toBe(0);
      process.kill(frozen.child.pid!, "SIGKILL");
      const printedTotal = members.reduce((n, m) => n + m.printed.length, 0);
      console.log(
        `group kill: ${produced} records, ${printedTotal - produced} redelivered; SIGKILL → flowing again in ${killFlowMs.toFixed(0)} ms, SIGSTOP → removed in ${frozenRemovedMs.toFixed(0)} ms, flowing again in ${frozenFlowMs.toFixed(0)} ms (session timeout ${SESSION_MS} ms)`,
      );
    } finally {
      stub.close();
      await client.close();
    }
  }, 90_000);
});
