/**
 * The compiled CLI (`node bin/rill.js`) as child processes for end-to-end tests: every run gets
 * `--broker ADDR` appended, runs from the repository root with RILL_BROKER cleared, and is tracked
 * so `killAll()` (in afterEach) can kill by PID whatever a test left running.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const bin = join(root, "bin", "rill.js");

/** Builds the project when `dist/<compiled...>` is missing (`npm test` builds before running). */
export function buildIfMissing(...compiled: string[]): void {
  if (!existsSync(join(root, "dist", ...compiled))) {
    execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
  }
}

/** How a finished run ended; `stdout` as text, or as the exact bytes for `runBytes`. */
export interface Run<Out = string> {
  code: number | null;
  stdout: Out;
  stderr: string;
}

/** A running `rill` process: its output so far, and its end. */
export interface Started {
  child: ChildProcess;
  /** Stdout so far, as text. */
  out: () => string;
  /** Stdout so far, as the exact bytes. */
  bytes: () => Buffer;
  err: () => string;
  closed: Promise<Run>;
}

export interface RunOptions {
  /** Written to stdin, which is then closed (no input: stdin is ignored). */
  input?: Buffer | string | undefined;
  /** Killed by PID, and the run rejected, when it takes longer (default 30 s). */
  timeoutMs?: number | undefined;
}

export interface Cli {
  /** Starts `rill args... --broker ADDR`; the caller waits for `closed`. */
  start(args: string[], input?: Buffer | string): Started;
  /** Runs `rill args...` to completion, with stdout as text. */
  run(args: string[], options?: RunOptions): Promise<Run>;
  /** Runs `rill args...` to completion, with stdout as the exact bytes. */
  runBytes(args: string[], options?: RunOptions): Promise<Run<Buffer>>;
  /** Kills (SIGKILL, by PID) every child still running; for afterEach. */
  killAll(): void;
}

/** Waits for `run` to end; past `timeoutMs` it is killed by PID and this rejects with `what`. */
export async function finish(run: Started, timeoutMs: number, what: string): Promise<Run> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (run.child.pid !== undefined && run.child.exitCode === null) process.kill(run.child.pid, "SIGKILL");
      reject(new Error(`${what}; stderr: ${run.err()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([run.closed, overrun]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A runner against the broker at `address()` (read at each start). Without `address`, no
 * `--broker` is passed (and RILL_BROKER stays empty): for a command that starts its own broker.
 */
export function cli(address?: () => string): Cli {
  const children = new Set<ChildProcess>();

  function start(args: string[], input?: Buffer | string): Started {
    const broker = address === undefined ? [] : ["--broker", address()];
    const child = spawn(process.execPath, [bin, ...args, ...broker], {
      cwd: root,
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: { ...process.env, RILL_BROKER: "" },
    });
    children.add(child);
    const out: Buffer[] = [];
    let err = "";
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const bytes = () => Buffer.concat(out);
    const closed = new Promise<Run>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => {
        children.delete(child);
        resolve({ code, stdout: bytes().toString(), stderr: err });
      });
    });
    if (input !== undefined) {
      child.stdin!.on("error", () => {}); // the command may exit before reading everything
      child.stdin!.end(input);
    }
    return { child, out: () => bytes().toString(), bytes, err: () => err, closed };
  }

  async function runBytes(
    args: string[],
    { input, timeoutMs = 30_000 }: RunOptions = {},
  ): Promise<Run<Buffer>> {
    const run = start(args, input);
    const { code, stderr } = await finish(run, timeoutMs, `rill ${args.join(" ")} timed out`);
    return { code, stdout: run.bytes(), stderr };
  }

  return {
    start,
    runBytes,
    async run(args, options) {
      const r = await runBytes(args, options);
      return { ...r, stdout: r.stdout.toString() };
    },
    killAll() {
      for (const c of children)
        if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, "SIGKILL");
      children.clear();
    },
  };
}
