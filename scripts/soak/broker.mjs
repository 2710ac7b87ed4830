// The broker under soak: `node bin/rill.js broker --listen 127.0.0.1:0 --data-dir <tmp>
// --metrics-port 0` in its own process, as a user starts it. Its gRPC address comes from its
// "broker serving" log line and its metrics URL from the "metrics serving" line logged before it.
// Started and stopped through the bench's child helper (dist/clients/cli/src/bench/child.js):
// stopped by PID, SIGTERM then SIGKILL after a bound; every child still running when this process
// exits is SIGKILLed by PID. The temporary data directory is removed after the stop.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rillBin } from "../../dist/clients/cli/src/bench/broker-process.js";
import { startChild } from "../../dist/clients/cli/src/bench/child.js";

/** How long a SIGTERMed broker may take to drain and exit before it is SIGKILLed. */
const STOP_GRACE_MS = 20_000;

export async function startSoakBroker() {
  const dataDir = await mkdtemp(join(tmpdir(), "rill-soak-"));
  let metricsUrl;
  const args = [
    rillBin(),
    "broker",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dataDir,
    "--metrics-port",
    "0",
    "--log-pretty",
    "false",
  ];
  let child;
  try {
    child = await startChild(args, (line) => {
      if (line.includes('"metrics serving"')) metricsUrl = JSON.parse(line).url;
      if (!line.includes('"broker serving"')) return null;
      const address = JSON.parse(line).address;
      return address === undefined ? null : [address];
    });
  } catch (e) {
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  if (metricsUrl === undefined) {
    await child.stop(STOP_GRACE_MS);
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`the broker logged no "metrics serving" line:\n${child.tail()}`);
  }
  let exitCode;
  return {
    address: child.ready[0],
    pid: child.pid,
    metricsUrl,
    dataDir,
    tail: () => child.tail(),
    /** Whether the process is still running (signal 0). */
    alive() {
      try {
        process.kill(child.pid, 0);
        return true;
      } catch {
        return false;
      }
    },
    /** SIGTERM, SIGKILL after the grace period; resolves with the exit code (null: killed). */
    async stop() {
      if (exitCode === undefined) exitCode = await child.stop(STOP_GRACE_MS);
      await rm(dataDir, { recursive: true, force: true });
      return exitCode;
    },
  };
}
