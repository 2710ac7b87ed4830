/**
 * docs/debugging.md runs as written. Every fenced block whose info string is `sh test ...` is run,
 * in document order, against one real broker (127.0.0.1:50051 in the doc becomes the broker's
 * address, `npx buf` becomes node_modules/.bin/buf), and the fenced block right after it is the
 * output it must print (stdout, then stderr), up to volatile values: append and commit times,
 * CRCs, the cluster id, member ids, client addresses and the deadline_exceeded message. A member
 * id the doc copies from one output into a later command is replaced by the real one.
 *
 * Words after `test` in the info string:
 * - `background`: the command keeps running (a stream); the next steps start once it has printed
 *   its first message. At the next `## ` heading the test waits for it to exit by itself (its own
 *   `--timeout`), or, with `ctrl-c`, interrupts it as Ctrl-C would.
 * - `needs:TOOL`: skipped when TOOL (e.g. jq) is not installed.
 *
 * Every child process is bounded (SIGKILL to its process group after STEP_TIMEOUT_MS) and stopped
 * by its pid. `RILL_UPDATE_DEBUGGING_DOC=1 npx vitest run test/integration/debugging-doc.test.ts`
 * rewrites the doc's output blocks (and copied member ids) from the run, for review in the diff.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

const ROOT = join(import.meta.dirname, "..", "..");
const DOC_PATH = join(ROOT, "docs", "debugging.md");
const BUF = join(ROOT, "node_modules", ".bin", "buf");
const DOC_ADDRESS = "127.0.0.1:50051";
const DOC_PORT = 50051;
const UPDATE = process.env.RILL_UPDATE_DEBUGGING_DOC === "1";
const STEP_TIMEOUT_MS = 20_000;
const FIRST_MESSAGE_TIMEOUT_MS = 10_000;
/** JSON fields whose values differ from run to run. */
const VOLATILE_KEYS = ["appendTimeMs", "crc32c", "clusterId", "commitTimeMs", "clientAddress", "memberId"];
/** Volatile values the doc copies from an output into later commands. */
const CARRIED_KEYS = ["memberId"];

interface Fence {
  info: string[];
  /** Line index of the first body line and one past the last one. */
  start: number;
  end: number;
  body: string;
}

interface Step {
  command: string;
  words: Set<string>;
  /** The fenced block that shows the command's output. */
  output: Fence;
  /** Index of the `## ` section the step is in. */
  section: number;
  /** 1-based line of the command, for messages. */
  line: number;
}

function parseDoc(lines: string[]): Step[] {
  const fences: (Fence & { section: number })[] = [];
  let section = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith("## ")) section++;
    const open = /^```(.*)$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trimEnd() !== "```") end++;
    fences.push({
      info: open[1].trim().split(/\s+/),
      start,
      end,
      body: lines.slice(start, end).join("\n"),
      section,
    });
    i = end;
  }
  const steps: Step[] = [];
  fences.forEach((f, k) => {
    if (f.info[0] !== "sh" || f.info[1] !== "test") return;
    const output = fences[k + 1];
    if (!output || output.info[0] === "sh") {
      throw new Error(
        `docs/debugging.md:${f.start}: a \`sh test\` block must be followed by its output block`,
      );
    }
    steps.push({
      command: f.body,
      words: new Set(f.info.slice(2)),
      output,
      section: f.section,
      line: f.start,
    });
  });
  return steps;
}

/** One command run by `sh -c` in its own process group, so it and its children stop together. */
class Run {
  stdout = "";
  stderr = "";
  timedOut = false;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly timer: NodeJS.Timeout;

  constructor(command: string) {
    this.child = spawn("sh", ["-c", command], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      this.stdout += d;
    });
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => this.child.once("close", () => resolve()));
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.signal("SIGKILL");
    }, STEP_TIMEOUT_MS);
    void this.exited.then(() => clearTimeout(this.timer));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signals the whole process group (sh, the buf wrapper and the buf binary) by pid. */
  signal(sig: NodeJS.Signals): void {
    if (this.child.pid === undefined || !this.running) return;
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      // Already gone.
    }
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /** Resolves once the command printed a whole top-level JSON message (or exited). */
  async firstMessage(): Promise<boolean> {
    const deadline = Date.now() + FIRST_MESSAGE_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (/^}$/m.test(this.stdout) || !this.running) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }
}

function normalize(text: string): string {
  return text
    .replace(new RegExp(`"(${VOLATILE_KEYS.join("|")})": ("[^"]*"|-?\\d+)`, "g"), '"$1": "…"')
    .replace(/("code": "deadline_exceeded",\s*"message": )"[^"]*"/g, '$1"…"')
    .split("\n")
    .map((l) => l.trimEnd())
    .join("\n")
    .trim();
}

function carriedValues(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`"${key}": "([^"]*)"`, "g"))].map((m) => m[1]);
}

function installed(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

let tb: TestBroker;
const runs: Run[] = [];

beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  for (const r of runs) r.signal("SIGKILL");
  await Promise.all(runs.map((r) => r.exited));
  await tb?.stop();
});

describe("integration > docs/debugging.md", () => {
  const lines = readFileSync(DOC_PATH, "utf8").split("\n");
  const steps = parseDoc(lines);

  it("tests a command for every service the doc covers", () => {
    // Ensures the doc keeps a tested example of each kind of call (a removed `test` marker fails here).
    const tested = steps.map((s) => s.command).join("\n");
    for (const needle of [
      "--list-services",
      "--list-methods",
      "npx buf build --type",
      "rill.v1.AdminService/CreateTopic",
      "rill.v1.AdminService/ListTopics",
      "rill.v1.AdminService/DescribeTopic",
      "rill.v1.LogService/Produce",
      "rill.v1.LogService/Fetch",
      '"follow":true',
      "rill.v1.LogService/ListOffsets",
      "rill.v1.ClusterService/GetMetadata",
      "rill.v1.GroupService/JoinGroup",
      "rill.v1.GroupService/Heartbeat",
      "rill.v1.GroupService/CommitOffsets",
      "rill.v1.GroupService/FetchCommittedOffsets",
      "rill.v1.GroupService/ListGroups",
      "rill.v1.GroupService/DescribeGroup",
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/Watch",
      "rill-appended-batches",
    ]) {
      expect(tested, needle).toContain(needle);
    }
  });

  it("shows in the README's Debugging section only commands the doc tests", () => {
    // Ensures the README's buf curl example cannot rot on its own.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = /^## Debugging\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? "";
    expect(section).toContain("(docs/debugging.md)");
    const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1].trim());
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) expect(steps.map((s) => s.command)).toContain(block);
  });

  it("runs every `sh test` command against a real broker and prints what the doc shows", async () => {
    // Ensures the debugging doc does not rot: its commands work as written and its outputs are real.
    const port = Number(tb.address.split(":").pop());
    const fromBroker = (text: string) =>
      text.replaceAll(tb.address, DOC_ADDRESS).replaceAll(`"port": ${port}`, `"port": ${DOC_PORT}`);
    const carried = new Map<string, string>(); // doc value -> this run's value
    const learn = (step: Step, actual: string) => {
      for (const key of CARRIED_KEYS) {
        const real = carriedValues(actual, key);
        carriedValues(step.output.body, key).forEach((v, i) => {
          if (real[i] !== undefined && !carried.has(v)) carried.set(v, real[i]);
        });
      }
    };
    const results: { step: Step; run: Run }[] = [];
    let background: { step: Step; run: Run }[] = [];
    const finishBackground = async () => {
      for (const b of background) {
        if (b.step.words.has("ctrl-c")) b.run.signal("SIGINT");
        await b.run.exited;
      }
      background = [];
    };

    for (const step of steps) {
      if (background.length > 0 && background[0].step.section !== step.section) await finishBackground();
      const tool = [...step.words].find((w) => w.startsWith("needs:"))?.slice("needs:".length);
      if (tool && !installed(tool)) continue;
      let command = step.command.replaceAll("npx buf ", `${BUF} `).replaceAll(DOC_ADDRESS, tb.address);
      for (const [docValue, real] of carried) command = command.replaceAll(docValue, real);
      const run = new Run(command);
      runs.push(run);
      results.push({ step, run });
      if (step.words.has("background")) {
        expect(await run.firstMessage(), `line ${step.line}: no first message`).toBe(true);
        learn(step, run.stdout);
        background.push({ step, run });
      } else {
        await run.exited;
        learn(step, run.output);
      }
    }
    await finishBackground();

    // An interrupted command may or may not report `canceled` on stderr: only its stdout counts.
    const shown = (step: Step, run: Run) => fromBroker(step.words.has("ctrl-c") ? run.stdout : run.output);
    for (const { step, run } of results) {
      expect.soft(run.timedOut, `docs/debugging.md:${step.line} ran too long`).toBe(false);
      if (UPDATE) continue;
      expect
        .soft(normalize(shown(step, run)), `docs/debugging.md:${step.line}: ${step.command}`)
        .toBe(normalize(step.output.body));
    }
    if (UPDATE) {
      const updated = [...lines];
      for (const { step, run } of [...results].reverse()) {
        const text = shown(step, run).trimEnd();
        updated.splice(step.output.start, step.output.end - step.output.start, ...text.split("\n"));
      }
      let doc = updated.join("\n");
      for (const [docValue, real] of carried) doc = doc.replaceAll(docValue, real);
      writeFileSync(DOC_PATH, doc);
    }

    // What the doc claims, checked on the real outputs.
    const outputOf = (re: RegExp) => results.filter((r) => re.test(r.step.command)).map((r) => r.run.output);
    expect(outputOf(/AdminService\/ListTopics/)[0]).toContain('"topic": "orders"');
    const firstProduce = steps.find((s) => /LogService\/Produce <</.test(s.command));
    const produced = [...(firstProduce?.command.matchAll(/"value":"([^"]+)"/g) ?? [])].map((m) => m[1]);
    expect(produced.length).toBeGreaterThan(1);
    const fetched = outputOf(/LogService\/Fetch$/m)[0];
    for (const value of produced) expect(fetched).toContain(`"value": "${value}"`);
    // The follow shows the record appended by the next step, then ends with its own --timeout.
    const follow = steps.findIndex((s) => s.command.includes('"follow":true'));
    const appended = /"value":"([^"]+)"/.exec(steps[follow + 1]?.command ?? "")?.[1];
    expect(outputOf(/"follow":true/)[0]).toContain(`"value": "${appended}"`);
    expect(outputOf(/"follow":true/)[0]).toContain("deadline_exceeded");
    expect(outputOf(/GroupService\/DescribeGroup/)[0]).toContain("GROUP_STATE_STABLE");
    for (const health of outputOf(/Health\/(Check|Watch)/)) expect(health).toContain('"status": "SERVING"');
  }, 120_000);
});
