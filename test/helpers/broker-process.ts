/**
 * Broker child processes for tests (crash, integration): start one (the real `rill broker`
 * command, or a fixture script), wait until it serves, SIGKILL it by PID, and make sure none
 * outlives its test.
 *
 * Invariants: every child started here is tracked until `killAll` (call it in afterEach) has
 * SIGKILLed it by PID and seen it exit; every wait is bounded by a timeout; the child's output is
 * kept only as its last LOG_LINES lines (for failure messages), and its JSON log entries up to
 * "broker serving" only as the first STARTUP_ENTRIES, never unbounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const ROOT = join(import.meta.dirname, "..", "..");
const LOG_LINES = 40;
const STARTUP_ENTRIES = 200;

/** A line of the broker's JSON log (pino), as far as tests read it. */
export interface LogEntry {
  level?: number;
  msg?: string;
  address?: string;
}

export interface BrokerChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the address once the child logs "broker serving"; rejects if it exits first. */
  readonly ready: Promise<string>;
  /** Resolves when the child has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines of its stdout and stderr, for failure messages. */
  readonly output: string[];
  /** Its JSON log entries up to and including "broker serving" (e.g. "metrics serving", warnings). */
  readonly startup: LogEntry[];
}

export interface SpawnOptions {
  /** Arguments after `node` (default: `bin/rill.js broker` with listen, data dir and plain logs). */
  args?: string[];
  dataDir: string;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/** The children of the running test, SIGKILLed by PID in afterEach (killAll). */
const tracked = new Set<BrokerChild>();

/** Arguments that run the real broker command on `listen` (default: a free port of 127.0.0.1). */
export function brokerArgs(dataDir: string, extra: string[] = [], listen = "127.0.0.1:0"): string[] {
  return [
    join(ROOT, "bin", "rill.js"),
    "broker",
    "--listen",
    listen,
    "--data-dir",
    dataDir,
    "--log-pretty",
    "false",
    ...extra,
  ];
}

export function spawnBroker(options: SpawnOptions): BrokerChild {
  const args = options.args ?? brokerArgs(options.dataDir);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  if (child.pid === undefined) throw new Error(`could not start ${args.join(" ")}`);
  const output: string[] = [];
  const startup: LogEntry[] = [];
  let serving = false;
  const keep = (line: string) => {
    output.push(line);
    if (output.length > LOG_LINES) output.shift();
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`broker pid ${child.pid} did not serve within ${timeoutMs} ms`)),
      timeoutMs,
    );
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      // Give the output streams a moment to deliver the last lines, which say why.
      setTimeout(() => {
        reject(
          new Error(
            `broker pid ${child.pid} exited (${code ?? signal}) before serving; its last output:\n${output.join("\n")}`,
          ),
        );
      }, 100);
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      keep(line);
      if (!line.startsWith("{")) return;
      const entry = JSON.parse(line) as LogEntry;
      if (!serving && startup.length < STARTUP_ENTRIES) startup.push(entry);
      if (!serving && entry.msg === "broker serving" && entry.address) {
        serving = true;
        clearTimeout(timer);
        resolve(entry.address);
      }
    });
    createInterface({ input: child.stderr! }).on("line", keep);
  });
  ready.catch(() => {}); // callers that only wait for the exit must not see an unhandled rejection
  const started: BrokerChild = { child, pid: child.pid, ready, exited, output, startup };
  tracked.add(started);
  void exited.then(() => tracked.delete(started));
  return started;
}

/** Starts a broker and waits until it serves; returns the child and its address. */
export async function startBrokerProcess(
  options: SpawnOptions,
): Promise<{ broker: BrokerChild; address: string }> {
  const broker = spawnBroker(options);
  const address = await broker.ready;
  return { broker, address };
}

/** SIGKILLs the child by PID and waits (bounded) for it to exit. */
export async function sigkill(broker: BrokerChild, timeoutMs = 10_000): Promise<void> {
  if (broker.child.exitCode === null && broker.child.signalCode === null) {
    try {
      process.kill(broker.pid, "SIGKILL");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }
  await within(broker.exited, timeoutMs, `pid ${broker.pid} to exit after SIGKILL`);
}

/** For afterEach: SIGKILLs every child still running and waits for each to exit. */
export async function killAll(): Promise<void> {
  await Promise.all([...tracked].map((b) => sigkill(b).catch(() => {})));
  tracked.clear();
}

/** The child's peak resident set size in KiB (VmHWM), or 0 if /proc cannot tell. */
export function peakRssKiB(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
