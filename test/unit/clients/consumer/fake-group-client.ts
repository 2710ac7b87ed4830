/**
 * Setup shared by the group subscription unit tests: a fresh fake group broker
 * (fake-group-broker.ts) and a client of it for every test, with short retries and timeouts and
 * every log entry collected; plus small waiting helpers.
 */
import { afterEach, beforeEach } from "vitest";
import {
  type ConsumedRecord,
  createClient,
  type LogEntry,
  type RillClient,
} from "../../../../clients/ts/src/index.js";
import { type FakeGroupBroker, startFakeGroupBroker } from "./fake-group-broker.js";

export interface FakeGroupClient {
  fake: FakeGroupBroker;
  client: RillClient;
  /** Every entry the client logged (level debug and up). */
  logs: LogEntry[];
}

/**
 * Registers beforeEach/afterEach hooks: before each test a new fake broker and client are handed to
 * `use`; after it the client is closed and the broker stopped.
 */
export function useFakeGroupClient(use: (setup: FakeGroupClient) => void): void {
  let current: FakeGroupClient | undefined;
  beforeEach(async () => {
    const fake = await startFakeGroupBroker();
    const logs: LogEntry[] = [];
    const client = createClient({
      brokers: fake.address,
      retry: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 3, maxElapsedMs: 2_000 },
      requestTimeoutMs: 2_000,
      log: (e) => logs.push(e),
      logLevel: "debug",
    });
    current = { fake, client, logs };
    use(current);
  });
  afterEach(async () => {
    await current?.client.close().catch(() => {});
    await current?.fake.stop();
    current = undefined;
  });
}

/** Resolves once `cond()` holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const text = (r: ConsumedRecord) => r.value.toString();
