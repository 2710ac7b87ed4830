import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  brokerArgs,
  killAll,
  type LogEntry,
  sigkill,
  startBrokerProcess,
} from "../helpers/broker-process.js";
import { groupApi, groupStub, RawMember } from "./helpers/group.js";
import { follow, produce, produceRequest, record, stubs } from "./helpers/grpc.js";

const dirs: string[] = [];

afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("integration > broker process", () => {
  it("on SIGTERM ends following fetches with UNAVAILABLE, writes the clean marker and exits 0", async () => {
    // Ensures the graceful drain a service mesh relies on, against the real `rill broker` process.
    const dataDir = await mkdtemp(join(tmpdir(), "rill-proc-"));
    dirs.push(dataDir);
    const { broker, address } = await startBrokerProcess({ dataDir });
    const s = stubs(address);
    const out = await produce(s.log, [produceRequest("drain", 0, [record("a")])]);
    expect(out.error).toBeUndefined();
    const call = follow(s.log, "drain");
    const firstData = new Promise((resolve) => call.once("data", resolve));
    const ended = new Promise<ServiceError>((resolve) => call.on("error", resolve));
    await firstData;
    process.kill(broker.pid, "SIGTERM");
    const err = await ended;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect((await broker.exited).code).toBe(0);
    expect(existsSync(join(dataDir, "meta", "clean-shutdown"))).toBe(true);
    s.close();
  });

  it("sets V8's GC flags in the broker process, except a group node was started with", async () => {
    // Ensures runBroker applies gc-tuning.ts (and that a node flag wins), in the real process.
    const triggers = (startup: LogEntry[]) =>
      startup.find((e) => e.msg === "V8 garbage-collection flags set (gc-tuning.ts)") as
        | (LogEntry & { flags: string[] })
        | undefined;
    const dataDir = await mkdtemp(join(tmpdir(), "rill-proc-"));
    dirs.push(dataDir);
    const tuned = await startBrokerProcess({ dataDir, args: brokerArgs(dataDir, ["--log-level", "debug"]) });
    expect(triggers(tuned.broker.startup)?.flags).toEqual([
      "--incremental-marking-soft-trigger=80",
      "--incremental-marking-hard-trigger=95",
      "--no-concurrent-array-buffer-sweeping",
    ]);
    await sigkill(tuned.broker);
    const own = await startBrokerProcess({
      dataDir,
      args: ["--incremental-marking-soft-trigger=0", ...brokerArgs(dataDir, ["--log-level", "debug"])],
    });
    expect(own.broker.startup.some((e) => e.msg === "broker serving")).toBe(true);
    expect(triggers(own.broker.startup)?.flags).toEqual(["--no-concurrent-array-buffer-sweeping"]);
  });

  it("keeps committed group offsets across a kill -9 of the broker", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "rill-proc-"));
    dirs.push(dataDir);
    const first = await startBrokerProcess({ dataDir });
    const s = stubs(first.address);
    const out = await produce(s.log, [produceRequest("kept", 0, [record("a"), record("b"), record("c")])]);
    expect(out.error).toBeUndefined();
    const stub = groupStub(first.address);
    const member = new RawMember(stub, "survivors", { topics: ["kept"] });
    await member.until((m) => m.assigned.length === 1);
    await member.commit([{ topic: "kept", partition: 0, offset: 2n }]);
    // CommitOffsets returns once the offset is fsynced: nothing the kill can undo.
    await sigkill(first.broker);
    member.kill();
    stub.close();
    s.close();
    expect(existsSync(join(dataDir, "meta", "clean-shutdown"))).toBe(false);
    const second = await startBrokerProcess({ dataDir });
    const again = groupStub(second.address);
    const got = await groupApi(again).committed("survivors");
    expect(got.offsets.map((o) => [o.topic, o.partition, o.offset])).toEqual([["kept", 0, 2n]]);
    again.close();
  });
});
