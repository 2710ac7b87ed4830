// The soak's worker processes (producer-worker.mjs, consumer-worker.mjs): forked with an IPC
// channel, their messages awaited with a time bound, stopped by PID.
//
// Invariants: every forked worker is in `running` until it exits; stopWorker sends SIGTERM, then
// SIGKILL after a bound, to that PID only; on this process's exit every worker still running is
// SIGKILLed by PID. A wait for a message rejects when the worker is gone (exited and its IPC
// channel closed) first, or the bound passes.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const running = new Set();
process.once("exit", () => {
  for (const w of running) kill(w.pid, "SIGKILL");
});

function kill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Forks `./<file>` (next to this module) and wraps its messages. */
export function startWorker(file, name) {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const worker = {
    name,
    pid: child.pid,
    child,
    exitCode: undefined,
    listeners: new Set(),
    exited: new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        running.delete(worker);
        worker.exitCode = code ?? signal;
        resolve(worker.exitCode);
      });
    }),
  };
  // 'exit' can come before the last messages are read from the IPC pipe; 'disconnect' comes after
  // them. A worker is gone once both happened.
  const disconnected = new Promise((resolve) => child.once("disconnect", resolve));
  worker.gone = Promise.all([worker.exited, disconnected]).then(() => worker.exitCode);
  running.add(worker);
  child.on("message", (m) => {
    for (const l of [...worker.listeners]) l(m);
  });
  return worker;
}

/** Sends a message unless the worker is gone. */
export function tell(worker, message) {
  if (worker.child.connected) worker.child.send(message);
}

/** Calls `fn` on every message of the worker (e.g. progress). */
export function onMessage(worker, fn) {
  worker.listeners.add(fn);
}

/** The worker's next message of `type`; rejects on an "error" message, an exit or after `timeoutMs`. */
export function waitFor(worker, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const done = (fn, value) => {
      clearTimeout(timer);
      worker.listeners.delete(listener);
      fn(value);
    };
    const listener = (m) => {
      if (m?.type === type) done(resolve, m);
      else if (m?.type === "error") done(reject, new Error(`${worker.name}: ${m.message}`));
    };
    const timer = setTimeout(
      () => done(reject, new Error(`${worker.name} sent no "${type}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    worker.listeners.add(listener);
    void worker.gone.then((code) =>
      done(reject, new Error(`${worker.name} exited (${code}) before sending "${type}"`)),
    );
  });
}

/** Waits up to `graceMs` for the worker to exit by itself, then SIGTERM, then SIGKILL. */
export async function stopWorker(worker, graceMs = 5_000) {
  const within = (ms) =>
    Promise.race([
      worker.exited.then(() => true),
      new Promise((r) => setTimeout(() => r(false), ms).unref()),
    ]);
  if (await within(graceMs)) return worker.exitCode;
  kill(worker.pid, "SIGTERM");
  if (await within(graceMs)) return worker.exitCode;
  kill(worker.pid, "SIGKILL");
  await within(graceMs);
  return worker.exitCode;
}
