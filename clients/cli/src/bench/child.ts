/**
 * Child processes of the bench (the broker, the ceiling server, phase 5's writer and reader):
 * started with this Node binary, ready once a line of their stdout matches, stopped by PID
 * (SIGTERM, then SIGKILL after a grace period). Every child still running when this process exits
 * is killed by PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of running) if (c.pid !== undefined) killQuietly(c.pid, "SIGKILL");
});

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export interface Child {
  readonly pid: number;
  /** The match of the ready line. */
  readonly ready: string[];
  /** The last lines of its stdout and stderr, for error messages. */
  tail(): string;
  /** Resolves with the exit code when the child exits (null: killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, wait up to `graceMs` for the exit, then SIGKILL. Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** How a child starts: see {@link startChild}. */
export interface ChildOptions {
  /** How long to wait for the ready line (default 30 s). */
  timeoutMs?: number;
  /** Called with every stdout line after the ready one. */
  onLine?: (line: string) => void;
  /** The child's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts `node ...args`; resolves once a stdout line matches `ready` (within `timeoutMs`). Every
 * stdout line after that one goes to `onLine`, if given.
 */
export function startChild(
  args: string[],
  ready: (line: string) => string[] | null,
  { timeoutMs = 30_000, onLine, env = process.env }: ChildOptions = {},
): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env });
  running.add(child);
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 40) lines.shift();
  };
  // 'close', not 'exit': by then its stdout and stderr are read to the end, so tail() has its last lines.
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  createInterface({ input: child.stderr! }).on("line", keep);
  const tail = () => lines.join("\n");
  return new Promise<Child>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) killQuietly(child.pid, "SIGKILL");
      reject(new Error(`${args.join(" ")} did not start within ${timeoutMs} ms:\n${tail()}`));
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited with ${code} before it was ready:\n${tail()}`));
    });
    let started = false;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      keep(line);
      if (started) {
        onLine?.(line);
        return;
      }
      const m = ready(line);
      if (m === null) return;
      started = true;
      clearTimeout(timer);
      const pid = child.pid!;
      resolve({
        pid,
        ready: m,
        tail,
        exited,
        async stop(graceMs = 25_000) {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          killQuietly(pid, "SIGTERM");
          const timer = setTimeout(() => killQuietly(pid, "SIGKILL"), graceMs);
          const code = await exited;
          clearTimeout(timer);
          return code;
        },
      });
    });
  });
}
