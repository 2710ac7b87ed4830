/**
 * `rill bench --broker` against a secured broker: TLS with the test PKI's certificates (made at run
 * time, test/helpers/certs.ts) and bearer tokens with ACLs. The bench's clients, the phase-5 reader
 * and writer processes included, connect with the global --tls-ca and --token-file. Only counts and
 * the report's contents are checked, never timings. Every connection goes to 127.0.0.1; the bench
 * runs as a child process, killed by PID past its time limit.
 */
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../../clients/cli/src/bench/report.js";
import { createClient } from "../../clients/ts/src/index.js";
import { makeTestPki, type TestPki } from "../helpers/certs.js";
import { type AuthFiles, writeAuthFiles } from "./helpers/auth.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { buildIfMissing, cli } from "./helpers/cli.js";

const TOKEN = "bench-token-0123456789abcdef";
const N = 2000;

let pki: TestPki;
let auth: AuthFiles;
let tb: TestBroker;
let out: string;
let tokenFile: string;
const rill = cli(() => tb.address);

beforeAll(async () => {
  buildIfMissing("clients", "cli", "src", "commands", "bench.js");
  pki = await makeTestPki();
  auth = await writeAuthFiles(
    [{ token: TOKEN, principal: "bencher" }],
    [
      { principal: "bencher", resource: "topic", pattern: "*", operations: ["all"] },
      { principal: "bencher", resource: "group", pattern: "*", operations: ["all"] },
    ],
  );
  tb = await startTestBroker({
    tlsCert: pki.server.certPath,
    tlsKey: pki.server.keyPath,
    authTokensFile: auth.tokensFile,
    authAclFile: auth.aclFile,
  });
  out = await mkdtemp(join(tmpdir(), "rill-bench-secured-"));
  tokenFile = join(out, "token");
  await writeFile(tokenFile, `${TOKEN}\n`);
}, 60_000);

afterEach(() => rill.killAll());

afterAll(async () => {
  await tb?.stop();
  await pki?.cleanup();
  await auth?.cleanup();
  if (out) await rm(out, { recursive: true, force: true });
});

/** The report of the newest run written to `dir`. */
function lastReport(dir: string): { json: BenchReport; raw: string; md: string; svg: string } {
  const stamp = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .at(-1)!
    .replace(/\.json$/, "");
  const raw = readFileSync(join(dir, `${stamp}.json`), "utf8");
  const md = readFileSync(join(dir, `${stamp}.md`), "utf8");
  return {
    json: JSON.parse(raw) as BenchReport,
    raw,
    md,
    svg: readFileSync(join(dir, `${stamp}.svg`), "utf8"),
  };
}

describe("rill bench > a secured broker", () => {
  it("runs phases 1-5 and 7 over TLS with a bearer token, and writes no secret anywhere", async () => {
    // Ensures every client of the run (phases 1-4 in the bench, phase 5's reader and writer
    // processes) uses the TLS and token options, and that the topics it made are deleted.
    const dir = join(out, "ok");
    const r = await rill.run(
      [
        "bench",
        ...["--phases", "1,2,3,4,5,7", "-n", String(N), "--durability", "written"],
        ...["--rates", "1000", "--rate-seconds", "1", "--rate-warmup", "1", "--out", dir],
        ...["--tls-ca", pki.ca.certPath, "--token-file", tokenFile],
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.stderr).not.toContain("FAILED");
    expect(r.code).toBe(0);
    const { json, raw, md, svg } = lastReport(dir);
    expect(json.broker).toMatchObject({ address: tb.address, spawned: false, security: "TLS, bearer token" });
    expect(md).toContain("(TLS, bearer token)");
    const byId = new Map(json.results.map((x) => [x.id, x]));
    for (const id of ["1-written", "2-written", "3", "4"]) {
      expect(byId.get(id)?.error, id).toBeUndefined();
      expect(byId.get(id)?.records, id).toBe(N);
    }
    const latency = json.results.find((x) => x.phase === 5)!;
    expect(latency.error).toBeUndefined();
    expect(latency.records).toBe(1000);
    expect(latency.latency?.warmup?.records).toBe(1000);
    // Phase 7's ceiling is the bench's own plaintext server: its rows say so.
    const ceiling = json.results.filter((x) => x.phase === 7);
    expect(ceiling.length).toBeGreaterThan(0);
    for (const c of ceiling) expect(c.note).toContain("include TLS's cost");
    // Neither the token nor a PEM, as text or as the base64 the children get it in, is written
    // to the results or printed.
    for (const text of [raw, md, svg, r.stdout, r.stderr]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain("BEGIN");
      expect(text).not.toContain(Buffer.from("-----BEGIN").toString("base64").slice(0, 12));
    }
    // The topics the run created are gone again.
    const client = createClient({
      brokers: tb.address,
      tls: { rootCerts: pki.ca.cert, serverName: "localhost" },
      token: TOKEN,
    });
    try {
      const names = (await client.admin().listTopics()).map((t) => t.topic);
      expect(names.filter((t) => t.startsWith("bench-"))).toEqual([]);
    } finally {
      await client.close();
    }
  }, 150_000);

  it("without the token, fails its phases with the broker's UNAUTHENTICATED message", async () => {
    // Ensures a refused bench says why (the broker's own message), exits 1 and reports the failure.
    const dir = join(out, "no-token");
    const r = await rill.run(
      [
        "bench",
        "--phases",
        "1",
        "-n",
        "100",
        "--durability",
        "written",
        "--out",
        dir,
        "--tls-ca",
        pki.ca.certPath,
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.code).toBe(1);
    const { json, md } = lastReport(dir);
    expect(json.failed).toBe(true);
    expect(json.broker.security).toBe("TLS");
    expect(md).toMatch(/FAILED: .*(token|UNAUTHENTICATED)/i);
  }, 90_000);

  it("refuses --tls-ca without --broker: the broker it starts itself is plaintext", async () => {
    // Ensures the security flags are not silently ignored when the bench starts its own broker.
    const own = cli();
    try {
      const r = await own.run(["bench", "--phases", "6", "--tls-ca", pki.ca.certPath]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--tls* and --token-file are for the broker given with --broker");
    } finally {
      own.killAll();
    }
  }, 60_000);
});
