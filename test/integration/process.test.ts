import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { groupApi, groupStub, RawMember } from "./helpers/group.js";
import { follow, produce, produceRequest, record, stubs } from "./helpers/grpc.js";

const ROOT = join(import.meta.dirname, "..", "..");
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, "SIGKILL");
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Starts `rill broker` as a child process on a free port; resolves with its address. */
async function spawnBroker(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "bin", "rill.js"),
      "broker",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      "--log-pretty",
      "false",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("broker did not start in 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`broker exited with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; address?: string };
      if (entry.msg === "broker serving" && entry.address) {
        clearTimeout(timer);
        resolve(entry.address);
      }
    });
  });
  return { child, address };
}

describe("integration > broker process", () => {
  it("on SIGTERM ends following fetches with UNAVAILABLE, writes the clean marker and exits 0", async () => {
    // Ensures the graceful drain a service mesh relies on, against the real `rill broker` process.
    const dataDir = await mkdtemp(join(tmpdir(), "rill-proc-"));
    dirs.push(dataDir);
    const { child, address } = await spawnBroker(dataDir);
    const s = stubs(address);
    const out = await produce(s.log, [produceRequest("drain", 0, [record("a")])]);
    expect(out.error).toBeUndefined();
    const call = follow(s.log, "drain");
    const firstData = new Promise((resolve) => call.once("data", resolve));
    const ended = new Promise<ServiceError>((resolve) => call.on("error", resolve));
    await firstData;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    const err = await ended;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await exited).toBe(0);
    expect(existsSync(join(dataDir, "meta", "clean-shutdown"))).toBe(true);
    s.close();
  });

  it("keeps committed group offsets across a kill -9 of the broker", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "rill-proc-"));
    dirs.push(dataDir);
    const first = await spawnBroker(dataDir);
    const s = stubs(first.address);
    const out = await produce(s.log, [produceRequest("kept", 0, [record("a"), record("b"), record("c")])]);
    expect(out.error).toBeUndefined();
    const stub = groupStub(first.address);
    const member = new RawMember(stub, "survivors", { topics: ["kept"] });
    await member.until((m) => m.assigned.length === 1);
    await member.commit([{ topic: "kept", partition: 0, offset: 2n }]);
    // CommitOffsets returns once the offset is fsynced: nothing the kill can undo.
    const exited = new Promise((resolve) => first.child.once("exit", resolve));
    process.kill(first.child.pid!, "SIGKILL");
    await exited;
    member.kill();
    stub.close();
    s.close();
    expect(existsSync(join(dataDir, "meta", "clean-shutdown"))).toBe(false);
    const second = await spawnBroker(dataDir);
    const again = groupStub(second.address);
    const got = await groupApi(again).committed("survivors");
    expect(got.offsets.map((o) => [o.topic, o.partition, o.offset])).toEqual([["kept", 0, 2n]]);
    again.close();
  });
});
