/**
 * The broker the bench runs against when no --broker is given: `node bin/rill.js broker --listen
 * 127.0.0.1:0 --data-dir <fresh dir>`, as a user would start it, in its own process. Its address
 * comes from its "broker serving" log line; it is stopped by PID (SIGTERM: it drains, fsyncs and
 * exits) and its data directory removed. With `cpuProf`, Node writes a CPU profile of the broker
 * when it exits.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Child, startChild } from "./child.js";

export interface BrokerProcess {
  address: string;
  pid: number;
  dataDir: string;
  /** Stops the broker (by PID) and removes its data directory. */
  stop(): Promise<void>;
}

/** The repository's bin/rill.js, found upwards from this file (in dist/ or in the sources). */
export function rillBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const bin = join(dir, "bin", "rill.js");
    if (existsSync(bin) && existsSync(join(dir, "package.json"))) return bin;
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find bin/rill.js above the bench's files");
    dir = up;
  }
}

export interface BrokerStartOptions {
  /** Where to make the data directory (default: the OS temp dir). */
  parentDir?: string | undefined;
  /** Write a CPU profile (`node --cpu-prof`) to this file when the broker exits. */
  cpuProfile?: string | undefined;
}

export async function startBrokerProcess(options: BrokerStartOptions = {}): Promise<BrokerProcess> {
  const dataDir = await mkdtemp(join(options.parentDir ?? tmpdir(), "rill-bench-"));
  const node: string[] = [];
  if (options.cpuProfile !== undefined) {
    const file = resolve(options.cpuProfile);
    node.push(
      "--cpu-prof",
      `--cpu-prof-dir=${dirname(file)}`,
      `--cpu-prof-name=${file.slice(dirname(file).length + 1)}`,
    );
  }
  const args = [
    ...node,
    rillBin(),
    "broker",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dataDir,
    "--log-pretty",
    "false",
  ];
  let child: Child;
  try {
    child = await startChild(args, (line) => {
      if (!line.includes('"broker serving"')) return null;
      const address = (JSON.parse(line) as { address?: string }).address;
      return address === undefined ? null : [address];
    });
  } catch (e) {
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    address: child.ready[0]!,
    pid: child.pid,
    dataDir,
    async stop() {
      const code = await child.stop();
      await rm(dataDir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`the broker exited with ${code}:\n${child.tail()}`);
    },
  };
}
