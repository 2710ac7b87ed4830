/**
 * The Python client (clients/python) against a real broker, byte for byte against the TS client:
 * stubs are generated from proto/ into a temp dir with clients/python/generate.sh, then
 * test/interop/python/rill_interop.py runs under /usr/bin/python3 as a child process (killed by PID
 * when it outlives its timeout) and exchanges records with this test as JSON with base64 bytes.
 *
 * Needs the Debian packages python3-grpcio, protobuf-compiler and protobuf-compiler-grpc (.ci/run
 * installs them). Without them the suite fails, it is not skipped.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConsumedRecord,
  createClient,
  murmur2,
  partitionForKey,
  type RillClient,
} from "../../clients/ts/src/index.js";
import { makeTestPki } from "../helpers/certs.js";
import { randomTopic, startTestBroker, type TestBroker } from "../integration/helpers/broker.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");
const PYTHON = "/usr/bin/python3";
const DRIVER = join(import.meta.dirname, "python", "rill_interop.py");
const APT_HINT =
  "install the Python gRPC toolchain: sudo apt-get install -y python3-grpcio protobuf-compiler protobuf-compiler-grpc (.ci/run does this)";

let genDir: string;
let tb: TestBroker;
let client: RillClient;

/** A record as the test and the Python driver exchange it: bytes as base64. */
interface WireRecord {
  key: string | null;
  value: string;
  headers: [string, string][];
  partition: number | null;
  timestamp?: number | null;
}

/** A record the Python consumer printed. */
interface PyRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string;
  headers: [string, string][];
  timestamp: number;
}

const b64 = (b: Buffer | Uint8Array): string => Buffer.from(b).toString("base64");

/**
 * Why the Python toolchain cannot run, if it cannot. Every test checks it first, so a machine without
 * the apt packages fails each test with the install hint (none is skipped).
 */
let toolchainError: Error | undefined;

function requireToolchain(): void {
  if (toolchainError) throw toolchainError;
}

beforeAll(async () => {
  tb = await startTestBroker();
  client = createClient({ brokers: tb.address });
  try {
    await run(PYTHON, ["-c", "import grpc, google.protobuf"], { timeout: 30_000 });
  } catch (e) {
    toolchainError = new Error(`${PYTHON} cannot import grpc: ${APT_HINT}\n${(e as Error).message}`);
    return;
  }
  genDir = await mkdtemp(join(tmpdir(), "rill-pygen-"));
  try {
    await run("bash", [join(ROOT, "clients", "python", "generate.sh"), genDir], { timeout: 60_000 });
  } catch (e) {
    const why = (e as { stderr?: string }).stderr || String(e);
    toolchainError = new Error(`generating the Python stubs failed: ${APT_HINT}\n${why}`);
  }
});

afterAll(async () => {
  await client?.close();
  await tb?.stop();
  if (genDir) await rm(genDir, { recursive: true, force: true });
});

const pyEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  RILL_PY_GEN_DIR: genDir,
  PYTHONDONTWRITEBYTECODE: "1",
});

/** Runs the driver to completion (killed after `timeout` ms) and returns its stdout. */
async function python(args: string[], input = "", timeout = 60_000): Promise<string> {
  const child = run(PYTHON, [DRIVER, ...args], {
    env: pyEnv(),
    timeout,
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024,
  });
  child.child.stdin!.end(input);
  try {
    return (await child).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`python ${args[0]} failed: ${err.message}\n${err.stderr ?? ""}`);
  }
}

async function pyConsume(topic: string, partition: number, extra: string[] = []): Promise<PyRecord[]> {
  const out = await python(["consume", tb.address, topic, String(partition), ...extra]);
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as PyRecord);
}

async function readAll(topic: string): Promise<ConsumedRecord[]> {
  const out: ConsumedRecord[] = [];
  for await (const r of client.consumer().read({ topic, from: "earliest", follow: false })) out.push(r);
  return out;
}

/** Deterministic bytes (a tiny LCG) so failures reproduce. */
function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Records covering the edge cases: binary keys and values, empty values, duplicate headers. */
function sampleRecords(n: number, partitions: number): WireRecord[] {
  const out: WireRecord[] = [];
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (let i = 0; i < n; i++) {
    const keyed = i % 4 !== 3;
    const value =
      i === 0 ? allBytes : i === 1 ? Buffer.alloc(0) : i === 2 ? bytes(i, 300_000) : bytes(i, i % 50);
    out.push({
      key: keyed ? b64(i % 5 === 0 ? bytes(1000 + i, 1 + (i % 9)) : Buffer.from(`user-${i % 17}`)) : null,
      value: b64(value),
      headers:
        i % 3 === 0
          ? [
              ["trace", b64(bytes(i, 8))],
              ["trace", b64(Buffer.from([0, 255, 0]))],
              ["ünïcode", b64(Buffer.from("välue"))],
            ]
          : [],
      partition: keyed ? null : i % partitions,
      timestamp: i % 7 === 0 ? 1_700_000_000_000 + i : null,
    });
  }
  return out;
}

describe("interop > python client", () => {
  it("passes its own unit tests", async () => {
    // Ensures the Python client's partitioner, record codec, producer and consumer logic hold.
    requireToolchain();
    const { stderr } = await run(PYTHON, ["-m", "unittest", "discover", "-s", "tests", "-t", "."], {
      cwd: join(ROOT, "clients", "python"),
      env: pyEnv(),
      timeout: 60_000,
      killSignal: "SIGKILL",
    });
    expect(stderr).toMatch(/\nOK\n?$/);
  });

  it("produces from Python and reads the same bytes with the TS client", async () => {
    // Ensures records produced by the Python client (keys, binary values, duplicate headers,
    // timestamps, a record larger than a batch) are read by the TS client byte for byte, at the
    // offsets the broker reported to Python and on the partitions the TS partitioner would pick.
    requireToolchain();
    const topic = randomTopic("py-produce");
    const partitions = 3;
    await client.admin().createTopic(topic, { partitions });
    const sent = sampleRecords(200, partitions);
    const { results } = JSON.parse(
      await python(["produce", tb.address, topic, "--batch-records", "16"], JSON.stringify(sent)),
    ) as { results: { partition: number; baseOffset: number; recordCount: number }[] };
    expect(results.reduce((s, r) => s + r.recordCount, 0)).toBe(sent.length);
    expect(results.length).toBeGreaterThan(partitions);

    const expected = new Map<number, WireRecord[]>();
    for (const r of sent) {
      const p = r.partition ?? partitionForKey(Buffer.from(r.key!, "base64"), partitions);
      expected.set(p, [...(expected.get(p) ?? []), r]);
    }
    const read = await readAll(topic);
    expect(read).toHaveLength(sent.length);
    for (let p = 0; p < partitions; p++) {
      const got = read.filter((r) => r.partition === p);
      const want = expected.get(p) ?? [];
      expect(got.map((r) => r.offset)).toEqual(want.map((_, i) => BigInt(i)));
      expect(
        got.map((r) => ({
          key: r.key === null ? null : b64(r.key),
          value: b64(r.value),
          headers: r.headers.map((h) => [h.key, b64(h.value)]),
        })),
      ).toEqual(want.map((r) => ({ key: r.key, value: r.value, headers: r.headers })));
      want.forEach((r, i) => {
        if (r.timestamp != null) expect(got[i]!.timestamp).toBe(r.timestamp);
      });
      // The batch results Python printed tile each partition's offsets without gaps, in order.
      let next = 0;
      for (const res of results.filter((x) => x.partition === p)) {
        expect(res.baseOffset).toBe(next);
        next += res.recordCount;
      }
      expect(next).toBe(want.length);
    }
  });

  it("reads with Python what the TS producer sent, byte for byte", async () => {
    // Ensures the Python consumer decodes batches produced by the TS client exactly: offsets,
    // keys, values, headers and timestamps, from the start and from an offset inside a batch.
    requireToolchain();
    const topic = randomTopic("py-consume");
    const partitions = 3;
    await client.admin().createTopic(topic, { partitions });
    const producer = client.producer({ lingerMs: 1 });
    const records = sampleRecords(150, partitions);
    const meta = await producer.send(
      topic,
      records.map((r) => ({
        key: r.key === null ? null : Buffer.from(r.key, "base64"),
        value: Buffer.from(r.value, "base64"),
        headers: r.headers.map(([key, value]) => ({ key, value: Buffer.from(value, "base64") })),
        timestamp: r.timestamp ?? undefined,
        partition: r.partition ?? undefined,
      })),
    );
    await producer.close();

    const appendTimes = new Map(
      (await readAll(topic)).map((r) => [`${r.partition}:${r.offset}`, r.timestamp]),
    );
    for (let p = 0; p < partitions; p++) {
      const want = records
        .map((r, i) => ({ r, m: meta[i]! }))
        .filter(({ m }) => m.partition === p)
        .map(({ r, m }) => ({
          partition: p,
          offset: Number(m.offset),
          key: r.key === "" ? null : r.key,
          value: r.value,
          headers: r.headers,
          timestamp: r.timestamp ?? appendTimes.get(`${p}:${m.offset}`),
        }));
      expect(await pyConsume(topic, p)).toEqual(want);
      expect(await pyConsume(topic, p, ["--offset", "5", "--max", "3"])).toEqual(want.slice(5, 8));
    }
  });

  it("produces and consumes over mutual TLS with a bearer token, under ACLs", async () => {
    // Ensures a secured broker is usable from Python as the README shows (Client(credentials=...,
    // metadata=[("authorization", "Bearer ...")])): alice's records arrive byte for byte and read
    // back in Python; a topic alice may not read, and a certificate without a token (principal
    // CN=py-client, granted nothing), are refused with PERMISSION_DENIED.
    requireToolchain();
    const pki = await makeTestPki();
    const secured: { tb?: TestBroker; client?: RillClient } = {};
    try {
      const cert = await pki.client("py-client");
      const tokens = join(pki.dir, "tokens.json");
      const acl = join(pki.dir, "acl.json");
      const aliceToken = join(pki.dir, "alice.token");
      await writeFile(
        tokens,
        JSON.stringify({
          tokens: [
            { token: "alice-token-0123456789", principal: "alice" },
            { token: "ops-token-0123456789ab", principal: "ops" },
          ],
        }),
      );
      await writeFile(aliceToken, "alice-token-0123456789\n");
      await writeFile(
        acl,
        JSON.stringify({
          acls: [
            { principal: "alice", resource: "topic", pattern: "py-secure*", operations: ["read", "write"] },
            { principal: "ops", resource: "topic", pattern: "*", operations: ["all"] },
          ],
        }),
      );
      secured.tb = await startTestBroker({
        tlsCert: pki.server.certPath,
        tlsKey: pki.server.keyPath,
        tlsClientCa: pki.ca.certPath,
        requireClientCert: true,
        authTokensFile: tokens,
        authAclFile: acl,
      });
      const address = secured.tb.address;
      secured.client = createClient({
        brokers: address,
        tls: { rootCerts: pki.ca.cert, certChain: cert.cert, privateKey: cert.key },
        token: "ops-token-0123456789ab",
      });
      const topic = randomTopic("py-secure");
      const other = randomTopic("other");
      await secured.client.admin().createTopic(topic, { partitions: 1 });
      await secured.client.admin().createTopic(other, { partitions: 1 });
      const tlsArgs = ["--ca", pki.ca.certPath, "--cert", cert.certPath, "--key", cert.keyPath];
      const sent = sampleRecords(20, 1).map((r) => ({ ...r, partition: 0 }));
      const { results } = JSON.parse(
        await python(
          ["produce", address, topic, ...tlsArgs, "--token-file", aliceToken],
          JSON.stringify(sent),
        ),
      ) as { results: { recordCount: number }[] };
      expect(results.reduce((n, r) => n + r.recordCount, 0)).toBe(sent.length);
      const read: ConsumedRecord[] = [];
      for await (const r of secured.client.consumer().read({ topic, from: "earliest", follow: false }))
        read.push(r);
      expect(read.map((r) => b64(r.value))).toEqual(sent.map((r) => r.value));
      const back = (
        await python(["consume", address, topic, "0", ...tlsArgs, "--token-file", aliceToken, "--max", "20"])
      )
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as PyRecord);
      expect(back.map((r) => r.value)).toEqual(sent.map((r) => r.value));
      const denied = python([
        "consume",
        address,
        other,
        "0",
        ...tlsArgs,
        "--token-file",
        aliceToken,
        "--max",
        "1",
      ]);
      await expect(denied).rejects.toThrow(/PERMISSION_DENIED[^\n]*alice/);
      const certOnly = python(["produce", address, topic, ...tlsArgs], JSON.stringify(sent.slice(0, 1)));
      await expect(certOnly).rejects.toThrow(/PERMISSION_DENIED[^\n]*CN=py-client/);
      expect((await secured.client.admin().listOffsets(topic))[0]?.latest).toBe(BigInt(sent.length));
    } finally {
      await secured.client?.close();
      await secured.tb?.stop();
      await pki.cleanup();
    }
  });

  it("agrees with the TS murmur2 partitioner", async () => {
    // Ensures a key lands on the same partition whichever client produced it.
    requireToolchain();
    const keys: Buffer[] = [Buffer.alloc(0), Buffer.from("foobar"), Buffer.from("ünïcode-kéy")];
    for (let n = 1; n <= 40; n++) keys.push(bytes(n * 7919, n));
    for (let i = 0; i < 50; i++) keys.push(Buffer.from(`order-${i}`));
    const counts = [1, 2, 3, 7, 12, 100, 1000];
    const out = JSON.parse(await python(["partition"], JSON.stringify({ keys: keys.map(b64), counts }))) as {
      hashes: number[];
      partitions: number[][];
    };
    expect(out.hashes).toEqual(keys.map((k) => murmur2(k)));
    expect(out.partitions).toEqual(keys.map((k) => counts.map((n) => partitionForKey(k, n))));
  });

  it("runs the README's Python example as written", async () => {
    // Ensures the README section "Use from other languages" works (only the address changes).
    requireToolchain();
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const example = /## Use from other languages[\s\S]*?```python\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toContain("from rill_client import Client");
    const dir = await mkdtemp(join(tmpdir(), "rill-pyreadme-"));
    try {
      const file = join(dir, "example.py");
      await writeFile(file, example!.replace('"127.0.0.1:50051"', JSON.stringify(tb.address)));
      const { stdout } = await run(PYTHON, [file], {
        env: { ...pyEnv(), PYTHONPATH: join(ROOT, "clients", "python") },
        timeout: 60_000,
        killSignal: "SIGKILL",
      });
      expect(stdout).toBe("sent 0 0\nread 0 0 b'user-1' b'hello' [('source', b'python')]\n");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("follows the tail and resumes after the broker restarts", async () => {
    // Ensures consume(follow=True) yields records as they are appended, survives the UNAVAILABLE
    // of a broker restart by resuming from the next offset, and misses or repeats nothing.
    requireToolchain();
    const port = await freePort();
    let own = await startTestBroker({ listen: `127.0.0.1:${port}` });
    let ownClient = createClient({ brokers: own.address });
    const topic = randomTopic("py-follow");
    let child: ChildProcess | undefined;
    try {
      await ownClient.admin().createTopic(topic, { partitions: 1 });
      child = spawn(
        PYTHON,
        [
          DRIVER,
          "consume",
          own.address,
          topic,
          "0",
          "--follow",
          "--max",
          "20",
          "--max-backoff",
          "0.5",
          "--max-retries",
          "60",
        ],
        { env: pyEnv(), stdio: ["ignore", "pipe", "pipe"] },
      );
      const lines = lineQueue(child);
      const send = async (from: number, to: number): Promise<void> => {
        const producer = ownClient.producer({ lingerMs: 0 });
        for (let i = from; i < to; i++) await producer.send(topic, { value: `v${i}`, partition: 0 });
        await producer.close();
      };
      await send(0, 10);
      const first = await lines.next(10, 30_000);
      own = await own.restart();
      await ownClient.close();
      ownClient = createClient({ brokers: own.address });
      await send(10, 20);
      const rest = await lines.next(10, 30_000);
      const exit = await lines.exit(30_000);
      expect(exit).toBe(0);
      expect([...first, ...rest].map((r) => [r.offset, Buffer.from(r.value, "base64").toString()])).toEqual(
        Array.from({ length: 20 }, (_, i) => [i, `v${i}`]),
      );
    } finally {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null)
        process.kill(child.pid, "SIGKILL");
      await ownClient.close();
      await own.stop();
    }
  });
});

/** A port that was free a moment ago (the broker binds it again right away). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Reads a child's stdout as JSON lines; `next(n)` waits for n more, `exit()` for its exit code. */
function lineQueue(child: ChildProcess): {
  next(n: number, timeoutMs: number): Promise<PyRecord[]>;
  exit(timeoutMs: number): Promise<number | null>;
} {
  const queue: PyRecord[] = [];
  let stderr = "";
  let wake: (() => void) | undefined;
  let exitCode: number | null | undefined;
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on("line", (l) => {
    queue.push(JSON.parse(l) as PyRecord);
    wake?.();
  });
  child.on("close", (code) => {
    exitCode = code;
    wake?.();
  });
  const until = async (done: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (exitCode !== undefined && !done())
        throw new Error(`python exited (${exitCode}) before ${what}:\n${stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; python stderr:\n${stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return {
    async next(n, timeoutMs) {
      await until(() => queue.length >= n, timeoutMs, `${n} records`);
      return queue.splice(0, n);
    },
    async exit(timeoutMs) {
      await until(() => exitCode !== undefined, timeoutMs, "exit");
      if (exitCode !== 0) throw new Error(`python exited with ${exitCode}:\n${stderr}`);
      return exitCode ?? null;
    },
  };
}
