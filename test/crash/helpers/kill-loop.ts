/**
 * The SIGKILL loop behind kill-loop.test.ts: a `rill broker` child process takes produces from
 * several concurrent producers over a few partitions while followers read every partition from
 * offset 0; it is SIGKILLed after a seeded random load interval, restarted on the same data dir
 * (a new port each time, new clients), and the partitions are checked after every restart.
 *
 * What is checked (each failure becomes a violation message naming the seed):
 * - after every restart, for every partition: log start 0; batches dense from 0 up to the high
 *   watermark; every served batch passes its CRC (frames walked with the storage parser); every
 *   record is one a producer sent, to that partition, and appears once; every produce acked before
 *   the kill is there at its acked offset with the same bytes; what was served after the previous
 *   restart is still served, unchanged (the log only grows by appends);
 * - followers: each sees a gapless, duplicate-free offset sequence across restarts, and at the end
 *   exactly the final log;
 * - each broker generation acks at least one produce before it is killed (producers carry on);
 * - at the end a graceful stop leaves segment files whose every byte is a good frame, holding
 *   exactly what was served.
 *
 * Bounds: every produce has a deadline, every wait a timeout; producers and followers loop only
 * until the run stops; the number of kills is fixed.
 */
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceError } from "@grpc/grpc-js";
import {
  type BrokerChild,
  peakRssKiB,
  sigkill,
  startBrokerProcess,
  within,
} from "../../helpers/broker-process.js";
import { api, stubs } from "../../integration/helpers/grpc.js";
import { type CheckedBatch, type Durability, RawLogClient, scanPartitionDir } from "./raw-log.js";
import { seededIntegers } from "./seed.js";

export interface KillLoopOptions {
  label: string;
  seed: number;
  durability: Durability;
  kills: number;
  partitions: number;
  producers: number;
  /** Load between a broker's start and its kill, ms (seeded uniform). */
  minLoadMs: number;
  maxLoadMs: number;
  /** segment.bytes of the topic: small, so segments roll during the run too. */
  segmentBytes: number;
}

export interface KillLoopResult {
  kills: number;
  sentRecords: number;
  ackedRecords: number;
  /** Records compared against the model over all post-restart checks. */
  checkedRecords: number;
  finalRecords: number;
  followedRecords: number;
  /** Partitions whose segment files ended in a torn or partial frame right after a kill. */
  tornTailsSeen: number;
  produceErrors: Record<string, number>;
  peakRssKiB: number;
  segmentFiles: number;
  violations: string[];
}

interface Live {
  generation: number;
  client: RawLogClient;
  acks: number;
}

const WAIT_MS = 30_000;

export async function runKillLoop(o: KillLoopOptions): Promise<KillLoopResult> {
  const dataDir = await mkdtemp(join(tmpdir(), `rill-crash-${o.label}-`));
  const topic = `crash-${o.label}`;
  const delays = seededIntegers(o.seed, o.kills, o.minLoadMs, o.maxLoadMs);
  const violations: string[] = [];
  const violate = (what: string) => {
    if (violations.length < 50) violations.push(`[seed ${o.seed}, ${o.label}] ${what}`);
  };
  const result: KillLoopResult = {
    kills: 0,
    sentRecords: 0,
    ackedRecords: 0,
    checkedRecords: 0,
    finalRecords: 0,
    followedRecords: 0,
    tornTailsSeen: 0,
    produceErrors: {},
    peakRssKiB: 0,
    segmentFiles: 0,
    violations,
  };

  // The model: every value sent (value → partition) and every acked one (per partition: offset → value).
  const sent = new Map<string, number>();
  const acked: Map<bigint, string>[] = Array.from({ length: o.partitions }, () => new Map());
  // What the last check served, per partition (index = offset).
  const served: string[][] = Array.from({ length: o.partitions }, () => []);
  const followed: string[][] = Array.from({ length: o.partitions }, () => []);

  let live: Live | null = null;
  let generation = 0;
  const liveWaiters: Array<() => void> = [];
  let stopProducers = false;
  let stopFollowers = false;
  const setLive = (l: Live | null) => {
    live = l;
    if (l) for (const w of liveWaiters.splice(0)) w();
  };
  const wakeAll = () => {
    for (const w of liveWaiters.splice(0)) w();
  };
  const waitLive = async (stopped: () => boolean): Promise<Live | null> => {
    const deadline = Date.now() + WAIT_MS;
    while (!stopped() && Date.now() < deadline) {
      if (live) return live;
      await within(new Promise<void>((r) => liveWaiters.push(r)), WAIT_MS, "a live broker").catch(() => {});
    }
    return live;
  };

  let broker: BrokerChild | undefined;
  let failed = false;
  const start = async () => {
    const started = await startBrokerProcess({ dataDir });
    broker = started.broker;
    generation++;
    return new RawLogClient(started.address);
  };

  async function producer(id: number): Promise<void> {
    let seq = 0;
    while (!stopProducers) {
      const l = await waitLive(() => stopProducers);
      if (!l || stopProducers) return;
      const partition = (id + seq) % o.partitions;
      const count = 1 + (seq % 4);
      const values: string[] = [];
      for (let i = 0; i < count; i++) {
        const v = `${o.label}|p${partition}|w${id}|${seq}|${i}|${"x".repeat((seq * 7 + i) % 200)}`;
        values.push(v);
        sent.set(v, partition);
      }
      result.sentRecords += count;
      seq++;
      const out = await l.client.produce(topic, partition, values, o.durability);
      if (out.baseOffset !== undefined) {
        for (let i = 0; i < count; i++) acked[partition]!.set(out.baseOffset + BigInt(i), values[i]!);
        result.ackedRecords += count;
        l.acks++;
      } else {
        const code = String((out.error as ServiceError).code);
        result.produceErrors[code] = (result.produceErrors[code] ?? 0) + 1;
        if (live === l) await sleep(20); // the broker may be dying; do not spin
      }
    }
  }

  const follows = new Set<{ stop(): void }>();
  async function follower(partition: number): Promise<void> {
    const seen = followed[partition]!;
    while (!stopFollowers) {
      const l = await waitLive(() => stopFollowers);
      if (!l) violate(`follower of partition ${partition} found no live broker in ${WAIT_MS} ms`);
      if (!l || stopFollowers) return;
      const f = l.client.follow(topic, partition, BigInt(seen.length), (b: CheckedBatch) => {
        for (let i = 0; i < b.recordCount; i++) {
          const offset = b.baseOffset + BigInt(i);
          const next = BigInt(seen.length);
          if (offset < next) continue; // a batch served whole from before the start offset
          if (offset > next) {
            violate(`follower of partition ${partition} jumped from offset ${next} to ${offset}`);
            return;
          }
          seen.push(b.values[i]!);
        }
      });
      follows.add(f);
      const err = await f.done;
      follows.delete(f);
      if (err !== null && !("code" in err)) violate(`follower of partition ${partition}: ${err.message}`);
      else if (err !== null && err.code === 11 /* OUT_OF_RANGE */)
        violate(`follower of partition ${partition} at ${seen.length} got OUT_OF_RANGE: ${err.details}`);
      if (live === l && !stopFollowers) await sleep(50);
    }
  }

  /** Checks every partition against the model through `client`; updates `served`. */
  async function check(client: RawLogClient, when: string): Promise<void> {
    for (let p = 0; p < o.partitions; p++) {
      const ackedNow = [...acked[p]!];
      const { batches, highWatermark, logStartOffset } = await client.fetchAll(topic, p, 0n);
      const where = `${when}, partition ${p}`;
      if (logStartOffset !== 0n) violate(`${where}: log start ${logStartOffset}, expected 0`);
      const values: string[] = [];
      for (const b of batches) {
        if (b.baseOffset !== BigInt(values.length))
          violate(`${where}: batch at ${b.baseOffset} where offset ${values.length} was expected`);
        values.push(...b.values);
      }
      if (BigInt(values.length) !== highWatermark)
        violate(`${where}: ${values.length} records served, high watermark ${highWatermark}`);
      const unique = new Set<string>();
      values.forEach((v, offset) => {
        if (sent.get(v) !== p)
          violate(`${where}: offset ${offset} holds a record never sent here: ${v.slice(0, 60)}`);
        if (unique.has(v)) violate(`${where}: offset ${offset} repeats ${v.slice(0, 60)}`);
        unique.add(v);
      });
      for (const [offset, v] of ackedNow) {
        const got = values[Number(offset)];
        if (got !== v)
          violate(
            `${where}: acked offset ${offset} holds ${got?.slice(0, 60) ?? "nothing"}, not ${v.slice(0, 60)}`,
          );
      }
      const before = served[p]!;
      for (let i = 0; i < before.length; i++) {
        if (values[i] !== before[i]) {
          violate(
            `${where}: offset ${i} served ${before[i]?.slice(0, 60)} before, now ${values[i]?.slice(0, 60)}`,
          );
          break;
        }
      }
      served[p] = values;
      result.checkedRecords += values.length;
    }
  }

  try {
    let client = await start();
    const admin = stubs(client.address);
    await api(admin).createTopic({
      topic,
      partitions: o.partitions,
      config: { segmentBytes: BigInt(o.segmentBytes) },
    });
    admin.close();
    setLive({ generation, client, acks: 0 });
    const workers = [
      ...Array.from({ length: o.producers }, (_, i) => producer(i)),
      ...Array.from({ length: o.partitions }, (_, p) => follower(p)),
    ];

    for (let k = 0; k < o.kills && violations.length === 0; k++) {
      await sleep(delays[k]!);
      const l = live as Live | null;
      if (!l) throw new Error("no live broker");
      const deadline = Date.now() + WAIT_MS;
      while (l.acks === 0 && Date.now() < deadline) await sleep(10);
      if (l.acks === 0) violate(`generation ${l.generation} acked no produce in ${WAIT_MS} ms`);
      result.peakRssKiB = Math.max(result.peakRssKiB, peakRssKiB(broker!.pid));
      setLive(null);
      await sigkill(broker!);
      result.kills++;
      for (let p = 0; p < o.partitions; p++) {
        const scan = await scanPartitionDir(join(dataDir, "topics", topic, String(p)));
        if (scan.problem !== null) result.tornTailsSeen++;
      }
      client = await start();
      l.client.close();
      await check(client, `after kill ${k + 1} (load ${delays[k]} ms)`);
      setLive({ generation, client, acks: 0 });
    }

    // Wind down: stop producing, let followers catch up, compare everything.
    const last = live as Live | null;
    stopProducers = true;
    wakeAll();
    await within(Promise.all(workers.slice(0, o.producers)), WAIT_MS, "producers to stop");
    if (last) {
      await check(last.client, "at the end");
      const deadline = Date.now() + WAIT_MS;
      while (Date.now() < deadline && followed.some((f, p) => f.length < served[p]!.length)) await sleep(20);
      stopFollowers = true;
      wakeAll();
      for (const f of follows) f.stop();
      await within(Promise.all(workers.slice(o.producers)), WAIT_MS, "followers to stop");
      for (let p = 0; p < o.partitions; p++) {
        const f = followed[p]!;
        const s = served[p]!;
        result.followedRecords += f.length;
        result.finalRecords += s.length;
        const differs = f.findIndex((v, i) => v !== s[i]);
        if (f.length !== s.length || differs >= 0)
          violate(
            `partition ${p}: the follower saw ${f.length} records, the log holds ${s.length}; first difference at ${differs}`,
          );
      }
      last.client.close();
    }

    // A graceful stop, then every byte of every segment file must be a good frame.
    const exited = broker!.exited;
    process.kill(broker!.pid, "SIGTERM");
    const { code } = await within(exited, WAIT_MS, "the broker to stop on SIGTERM");
    if (code !== 0) violate(`the broker exited with ${code} on SIGTERM`);
    for (let p = 0; p < o.partitions; p++) {
      const dir = join(dataDir, "topics", topic, String(p));
      const scan = await scanPartitionDir(dir);
      if (scan.problem !== null) violate(`segment files of partition ${p}: ${scan.problem}`);
      const onDisk = scan.batches.flatMap((b) => b.values);
      if (onDisk.length !== served[p]!.length || onDisk.some((v, i) => v !== served[p]![i]))
        violate(
          `partition ${p}: the segment files hold ${onDisk.length} records, ${served[p]!.length} were served`,
        );
      result.segmentFiles += (await readdir(dir)).filter((n) => n.endsWith(".log")).length;
    }
    return result;
  } catch (err) {
    failed = true;
    throw new Error(`[seed ${o.seed}, ${o.label}] ${(err as Error).message}`, { cause: err });
  } finally {
    stopProducers = true;
    stopFollowers = true;
    wakeAll();
    for (const f of follows) f.stop();
    if (broker) await sigkill(broker).catch(() => {});
    if (failed || violations.length > 0) {
      // Keep the evidence: the data dir as the failing check saw it.
      const kept = join(tmpdir(), `rill-crash-failed-${o.label}-${o.seed}`);
      await cp(dataDir, kept, { recursive: true }).catch(() => {});
      console.log(`[seed ${o.seed}, ${o.label}] data dir kept in ${kept}`);
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}
