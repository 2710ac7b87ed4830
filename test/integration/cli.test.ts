import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { buildIfMissing, cli, finish, type Run } from "./helpers/cli.js";

let broker: TestBroker;
let scratch: string;
const cmd = cli(() => broker.address);

/** Runs `rill args...` with `input` on stdin; bounded by `timeoutMs`, killed by PID if it overruns. */
function rill(args: string[], input?: Buffer | string, timeoutMs = 30_000): Promise<Run<Buffer>> {
  return cmd.runBytes(args, { input: input ?? "", timeoutMs });
}

beforeAll(async () => {
  // `npm test` builds before running; build here too when the compiled CLI is missing.
  buildIfMissing("clients", "cli", "src", "main.js");
  broker = await startTestBroker();
  scratch = await mkdtemp(join(tmpdir(), "rill-cli-"));
}, 120_000);

afterEach(() => cmd.killAll());

afterAll(async () => {
  await broker?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("client > cli > end to end", () => {
  it("produces stdin lines and consumes them back byte-exact", async () => {
    // Ensures `rill produce` then `rill consume --max N` round-trips arbitrary line bytes unchanged.
    const topic = randomTopic("cli");
    const created = await rill(["topic", "create", topic, "--partitions", "1"]);
    expect(created.code, created.stderr).toBe(0);
    const lines: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      lines.push(
        Buffer.concat([
          Buffer.from(`line ${i} `),
          Buffer.from([0xff, 0x00, 0xc3, i % 256 === 0x0a ? 0x0b : i % 256, 0x0d]),
        ]),
      );
    }
    lines.push(Buffer.alloc(0)); // an empty line is an empty record
    lines.push(Buffer.from("last"));
    const input = Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")]));
    const produced = await rill(["produce", topic], input);
    expect(produced.code, produced.stderr).toBe(0);
    expect(produced.stderr).toContain(`produced ${lines.length} records to "${topic}"`);
    expect(produced.stderr).toContain(`partition 0: ${lines.length} records, offsets 0..${lines.length - 1}`);

    const consumed = await rill(["consume", topic, "--max", String(lines.length)]);
    expect(consumed.code, consumed.stderr).toBe(0);
    expect(consumed.stdout.length).toBe(input.length);
    expect(Buffer.compare(consumed.stdout, input)).toBe(0);

    // Without --max and --follow, consume stops at the high watermark.
    const all = await rill(["consume", topic]);
    expect(all.code).toBe(0);
    expect(Buffer.compare(all.stdout, input)).toBe(0);
  });

  it("splits keys, reads a file and prints JSON lines", async () => {
    // Ensures --key-separator, --file and --format json produce the documented output.
    const topic = randomTopic("json");
    const file = join(scratch, "input.txt");
    await writeFile(file, Buffer.concat([Buffer.from("k1=v1\nno key\nk2=a=b\n"), Buffer.from([0x80, 0x0a])]));
    const produced = await rill(["produce", topic, "--file", file, "--key-separator", "="]);
    expect(produced.code, produced.stderr).toBe(0);
    const consumed = await rill(["consume", topic, "--format", "json", "--from", "0"]);
    expect(consumed.code, consumed.stderr).toBe(0);
    const rows = consumed.stdout
      .toString()
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => [r.offset, r.key, r.value])).toEqual([
      ["0", "k1", "v1"],
      ["1", null, "no key"],
      ["2", "k2", "a=b"],
      ["3", null, Buffer.from([0x80]).toString("base64")],
    ]);
    expect(rows[3]!.valueEncoding).toBe("base64");
    expect(rows[0]).toMatchObject({ topic, partition: 0, headers: [] });
    expect(typeof rows[0]!.timestamp).toBe("number");
  });

  it("fails with one clear line and a non-zero code for a missing topic", async () => {
    // Ensures errors print a single actionable line on stderr and exit non-zero.
    const topic = randomTopic("missing");
    const r = await rill(["consume", topic]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rill: topic "${topic}" not found — create it with: rill topic create ${topic}\n`);
    const d = await rill(["topic", "describe", topic]);
    expect(d.code).toBe(1);
    expect(d.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exits 2 for usage errors: a missing argument, an unknown option, an offset past int64", async () => {
    // Ensures every kind of bad usage exits with 2 (as main.ts documents) before touching the broker.
    const missing = await rill(["produce"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^rill: error: missing required argument 'topic'/);
    const unknown = await rill(["consume", "t", "--bogus"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^rill: error: unknown option '--bogus'/);
    const huge = await rill(["consume", "t", "--from", "99999999999999999999"]);
    expect(huge.code).toBe(2);
    expect(huge.stderr).toBe(
      'rill: --from offset must be at most 9223372036854775807 (a signed 64-bit integer), got "99999999999999999999"\n',
    );
    expect((await rill(["--help"])).code).toBe(0);
  });

  it("stops with one clear line when an input line exceeds the topic's max.batch.bytes", async () => {
    // Ensures an over-long line fails fast (exit 1) instead of being buffered and refused later.
    const topic = randomTopic("long");
    const created = await rill(["topic", "create", topic, "-p", "1", "--config", "max.batch.bytes=4096"]);
    expect(created.code, created.stderr).toBe(0);
    const r = await rill(["produce", topic, "-q"], `short\n${"x".repeat(100_000)}\nafter\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `rill: line 2 is longer than 4096 bytes (the max.batch.bytes of topic "${topic}"); each line is one record and must fit in one batch\n`,
    );
  });

  it("lists, describes and deletes topics", async () => {
    // Ensures the topic subcommands print their tables and apply --config.
    const topic = randomTopic("adm");
    expect((await rill(["topic", "create", topic, "-p", "2", "--config", "retention.ms=1000"])).code).toBe(0);
    const list = await rill(["topic", "list"]);
    expect(list.stdout.toString()).toMatch(new RegExp(`^${topic}\\s+2$`, "m"));
    const describe = await rill(["topic", "describe", topic]);
    expect(describe.stdout.toString()).toMatch(/retention\.ms\s+1000/);
    expect(describe.stdout.toString()).toMatch(/^1\s+0\s+0/m);
    const bad = await rill(["topic", "create", randomTopic("bad"), "--config", "nope=1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^rill: unknown config key "nope"/);
    expect((await rill(["topic", "delete", topic])).code).toBe(0);
    expect((await rill(["topic", "describe", topic])).code).toBe(1);
  });

  it("ends quietly when stdout is closed early", async () => {
    // Ensures `rill consume ... | head` (EPIPE) exits 0 without an error message.
    const topic = randomTopic("pipe");
    const lines = `${Array.from({ length: 200_000 }, (_, i) => `record-${i}`).join("\n")}\n`;
    expect((await rill(["produce", topic, "-q"], lines, 60_000)).code).toBe(0);
    const run = cmd.start(["consume", topic]);
    run.child.stdout!.once("data", () => run.child.stdout!.destroy());
    const result = await finish(run, 30_000, "consume did not exit after its stdout closed");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("stops a following consumer cleanly on SIGINT", async () => {
    // Ensures --follow prints new records and SIGINT ends it with exit code 0.
    const topic = randomTopic("follow");
    expect((await rill(["topic", "create", topic])).code).toBe(0);
    const run = cmd.start(["consume", topic, "--follow"]);
    const closed = run.closed.then((r) => r.code);
    await new Promise((r) => setTimeout(r, 500));
    expect((await rill(["produce", topic, "-q"], "tail-1\ntail-2\n")).code).toBe(0);
    const deadline = Date.now() + 10_000;
    while (!run.out().includes("tail-2") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(run.out()).toBe("tail-1\ntail-2\n");
    process.kill(run.child.pid!, "SIGINT");
    expect(await closed).toBe(0);
  });
});
