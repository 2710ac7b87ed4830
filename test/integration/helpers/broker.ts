/**
 * A real broker for integration tests: port 0 on 127.0.0.1, a fresh temp data dir, silent logs.
 * `stop()` shuts it down gracefully and removes the data dir; `restart()` keeps the data dir.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../../server/src/clock.js";
import { type Broker, type ConfigOverrides, startBroker } from "../../../server/src/main.js";

export interface TestBroker {
  address: string;
  dataDir: string;
  broker: Broker;
  /** Graceful shutdown, then the same data dir served again (on a new port). */
  restart(overrides?: ConfigOverrides): Promise<TestBroker>;
  /** Graceful shutdown and removal of the data dir. */
  stop(): Promise<void>;
}

export async function startTestBroker(
  overrides: ConfigOverrides = {},
  options: { clock?: Clock } = {},
): Promise<TestBroker> {
  const dataDir = await mkdtemp(join(tmpdir(), "rill-test-"));
  return serve(dataDir, overrides, options.clock);
}

async function serve(dataDir: string, overrides: ConfigOverrides, clock?: Clock): Promise<TestBroker> {
  const broker = await startBroker({ listen: "127.0.0.1:0", ...overrides, dataDir }, clock ? { clock } : {});
  const self: TestBroker = {
    address: broker.address,
    dataDir,
    broker,
    async restart(next = overrides) {
      await broker.shutdown();
      return serve(dataDir, next, clock);
    },
    async stop() {
      await broker.shutdown();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}

/** A topic name no other test uses. */
export function randomTopic(prefix = "t"): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
