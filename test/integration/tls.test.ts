/**
 * TLS and mutual TLS end to end: a real broker with certificates made at run time
 * (test/helpers/certs.ts), the TS client and the `rill` CLI as child processes, and the safe
 * default (no TLS → loopback only). Every connection goes to 127.0.0.1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChannelCredentials,
  credentials,
  makeGenericClientConstructor,
  Server,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createClient, type RillClient, RillError, type TlsOptions } from "../../clients/ts/src/index.js";
import { ConfigError } from "../../server/src/config.js";
import { startBroker } from "../../server/src/main.js";
import { buildServerCredentials } from "../../server/src/rpc/tls.js";
import { brokerArgs, killAll, startBrokerProcess } from "../helpers/broker-process.js";
import { type CertFiles, makeTestPki, type TestPki } from "../helpers/certs.js";
import { randomTopic, startTestBroker, type TestBroker } from "./helpers/broker.js";
import { bin, buildIfMissing, cli, finish, root } from "./helpers/cli.js";

let pki: TestPki;
let otherPki: TestPki;
let alice: CertFiles;
let mallory: CertFiles;

beforeAll(async () => {
  pki = await makeTestPki();
  otherPki = await makeTestPki();
  alice = await pki.client("alice", { org: "payments" });
  mallory = await pki.client("mallory", { untrusted: true });
  buildIfMissing("clients", "cli", "src", "main.js");
});

afterAll(async () => {
  await pki?.cleanup();
  await otherPki?.cleanup();
});

const cleanups: (() => Promise<unknown> | unknown)[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL");
  }
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A broker serving TLS with the test PKI's server certificate (plus `overrides`). */
async function tlsBroker(overrides: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const tb = await startTestBroker({
    tlsCert: pki.server.certPath,
    tlsKey: pki.server.keyPath,
    ...overrides,
  });
  cleanups.push(() => tb.stop());
  return tb;
}

function client(address: string, tls: TlsOptions | boolean | undefined): RillClient {
  const c = createClient({
    brokers: address,
    tls,
    requestTimeoutMs: 10_000,
    retry: { maxAttempts: 1, maxElapsedMs: 5_000 },
  });
  cleanups.push(() => c.close());
  return c;
}

/** Produces `values` to a new topic and reads them back; returns what came back. */
async function roundTrip(c: RillClient, values: Buffer[]): Promise<Buffer[]> {
  const topic = randomTopic("tls");
  await c.admin().createTopic(topic, { partitions: 1 });
  const producer = c.producer({ lingerMs: 0 });
  await producer.send(
    topic,
    values.map((value) => ({ value })),
  );
  await producer.close();
  const out: Buffer[] = [];
  for await (const r of c.consumer().read({ topic, from: "earliest", follow: false })) {
    out.push(Buffer.from(r.value));
    if (out.length > values.length) break; // bounded: more than sent is already a failure
  }
  return out;
}

const PAYLOADS = [
  Buffer.from("hello over tls"),
  Buffer.from([0, 255, 1, 254, 10, 13]),
  Buffer.alloc(70_000, 7),
];

/** The gRPC code a call to `c` fails with (fails the test if it succeeds). */
async function failureCode(c: RillClient): Promise<string> {
  const err = await c
    .admin()
    .listTopics()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err, "the call should have failed").toBeInstanceOf(RillError);
  return (err as RillError).codeName;
}

describe("integration > tls > server TLS", () => {
  it("a client trusting the CA produces and fetches byte-exact; health answers over TLS", async () => {
    // Ensures --tls-cert/--tls-key serve every service (health included) over TLS, end to end.
    const tb = await tlsBroker();
    const c = client(tb.address, { rootCerts: pki.ca.cert });
    expect(await roundTrip(c, PAYLOADS)).toEqual(PAYLOADS);
    const Health = makeGenericClientConstructor(healthService, "Health");
    const health = new Health(tb.address, credentials.createSsl(pki.ca.cert)) as unknown as {
      check(r: { service: string }, cb: (e: ServiceError | null, r: { status: string }) => void): void;
      close(): void;
    };
    cleanups.push(() => health.close());
    const served = await new Promise<string>((resolve, reject) =>
      health.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r.status))),
    );
    expect(served).toBe("SERVING");
  });

  it("refuses a plaintext client and a client trusting another CA (UNAVAILABLE)", async () => {
    // Ensures TLS is not optional once configured, and that the client really checks the chain.
    const tb = await tlsBroker();
    expect(await failureCode(client(tb.address, undefined))).toBe("UNAVAILABLE");
    expect(await failureCode(client(tb.address, { rootCerts: otherPki.ca.cert }))).toBe("UNAVAILABLE");
  });

  it("checks the certificate's name: a wrong tls.serverName fails, the right one works", async () => {
    // Ensures the client verifies the broker's identity, and serverName overrides the host.
    const tb = await tlsBroker();
    const wrong = client(tb.address, { rootCerts: pki.ca.cert, serverName: "rill.example.com" });
    expect(await failureCode(wrong)).toBe("UNAVAILABLE");
    const right = client(tb.address, { rootCerts: pki.ca.cert, serverName: "localhost" });
    expect(await right.admin().listTopics()).toBeInstanceOf(Array);
  });
});

describe("integration > tls > mutual TLS", () => {
  it("required: no client certificate and one from an untrusted CA fail, a good one works", async () => {
    // Ensures --require-client-cert admits only certificates signed by --tls-client-ca.
    const tb = await tlsBroker({ tlsClientCa: pki.ca.certPath, requireClientCert: true });
    const anonymous = client(tb.address, { rootCerts: pki.ca.cert });
    expect(await failureCode(anonymous)).toBe("UNAVAILABLE");
    const untrusted = client(tb.address, {
      rootCerts: pki.ca.cert,
      certChain: mallory.cert,
      privateKey: mallory.key,
    });
    expect(await failureCode(untrusted)).toBe("UNAVAILABLE");
    const good = client(tb.address, { rootCerts: pki.ca.cert, certChain: alice.cert, privateKey: alice.key });
    expect(await roundTrip(good, PAYLOADS)).toEqual(PAYLOADS);
  });

  it("optional (client CA without require): clients with and without a certificate both work", async () => {
    // Ensures tls.client.ca alone requests a certificate but still admits token or anonymous clients.
    const tb = await tlsBroker({ tlsClientCa: pki.ca.certPath });
    const withCert = client(tb.address, {
      rootCerts: pki.ca.cert,
      certChain: alice.cert,
      privateKey: alice.key,
    });
    expect(await roundTrip(withCert, [Buffer.from("a")])).toEqual([Buffer.from("a")]);
    const without = client(tb.address, { rootCerts: pki.ca.cert });
    expect(await roundTrip(without, [Buffer.from("b")])).toEqual([Buffer.from("b")]);
    expect(await failureCode(client(tb.address, undefined))).toBe("UNAVAILABLE");
  });
});

describe("integration > tls > peer identity", () => {
  it("a call sees the client certificate only when the CA verified it (optional and required mTLS)", async () => {
    // Ensures what the auth layer builds on: getAuthContext() carries the subject of a verified
    // client certificate, and nothing for no certificate or one from an untrusted CA.
    const echo = {
      whoami: {
        path: "/rill.test.Echo/WhoAmI",
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    const logger = { warn: () => {}, info: () => {} } as unknown as Parameters<
      typeof buildServerCredentials
    >[1];
    for (const requireClientCert of [false, true]) {
      const built = await buildServerCredentials(
        {
          listen: "127.0.0.1:0",
          tlsCert: pki.server.certPath,
          tlsKey: pki.server.keyPath,
          tlsClientCa: pki.ca.certPath,
          requireClientCert,
          insecure: false,
          metricsPort: -1,
        },
        logger,
      );
      expect(built.mode).toBe(requireClientCert ? "mtls-required" : "mtls-optional");
      const server = new Server();
      server.addService(echo, {
        whoami: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
          const subject = call.getAuthContext().sslPeerCertificate?.subject;
          cb(null, Buffer.from(subject ? `${subject.O}/${subject.CN}` : "-"));
        },
      });
      cleanups.push(() => server.forceShutdown());
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", built.credentials, (e, p) => (e ? reject(e) : resolve(p))),
      );
      const Echo = makeGenericClientConstructor(echo, "Echo");
      const ask = (creds: ChannelCredentials) =>
        new Promise<string>((resolve) => {
          const c = new Echo(`127.0.0.1:${port}`, creds) as unknown as {
            whoami(r: Buffer, cb: (e: ServiceError | null, v?: Buffer) => void): void;
            close(): void;
          };
          c.whoami(Buffer.alloc(0), (e, v) => {
            c.close();
            resolve(e ? `error ${status[e.code]}` : v!.toString());
          });
        });
      const expectFailure = requireClientCert ? "error UNAVAILABLE" : "-";
      expect(await ask(credentials.createSsl(pki.ca.cert, alice.key, alice.cert))).toBe("payments/alice");
      expect(await ask(credentials.createSsl(pki.ca.cert))).toBe(expectFailure);
      expect(await ask(credentials.createSsl(pki.ca.cert, mallory.key, mallory.cert))).toBe(expectFailure);
    }
  });
});

describe("integration > tls > CLI", () => {
  it("produces and consumes over mutual TLS with --tls-ca/--tls-cert/--tls-key", async () => {
    // Ensures the CLI's global TLS options reach every command, end to end through bin/rill.js.
    const tb = await tlsBroker({ tlsClientCa: pki.ca.certPath, requireClientCert: true });
    const runner = cli(() => tb.address);
    cleanups.push(() => runner.killAll());
    const tlsArgs = ["--tls-ca", pki.ca.certPath, "--tls-cert", alice.certPath, "--tls-key", alice.keyPath];
    const topic = randomTopic("clitls");
    const created = await runner.run(["topic", "create", topic, "-p", "1", ...tlsArgs]);
    expect(created.code, created.stderr).toBe(0);
    const lines = ["one", "two", "three"];
    const produced = await runner.run(["produce", topic, "-q", ...tlsArgs], {
      input: `${lines.join("\n")}\n`,
    });
    expect(produced.code, produced.stderr).toBe(0);
    const consumed = await runner.run(["consume", topic, "--max", "3", ...tlsArgs]);
    expect(consumed.code, consumed.stderr).toBe(0);
    expect(consumed.stdout.trim().split("\n")).toEqual(lines);
    expect(consumed.stderr).not.toMatch(/DeprecationWarning/); // grpc-js's IP SNI name (DEP0123)

    const noCert = await runner.run(["topic", "list", "--tls-ca", pki.ca.certPath]);
    expect(noCert.code).not.toBe(0);
    expect(noCert.stderr).toMatch(/cannot reach the broker/);
    const missing = await runner.run(["topic", "list", "--tls-ca", join(pki.dir, "nope.pem")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--tls-ca: cannot read ".*nope\.pem" \(ENOENT\)/);
    const half = await runner.run(["topic", "list", "--tls-cert", alice.certPath]);
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/--tls-cert and --tls-key go together/);
  });
});

/** Runs `rill broker ...` to its exit (it must exit: these configurations are refused). */
async function brokerExit(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, "broker", "--log-pretty", "false", ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const closed = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: out, stderr: err }));
  });
  return finish(
    { child, closed, out: () => out, err: () => err, bytes: () => Buffer.from(out) },
    20_000,
    `rill broker ${args.join(" ")} did not exit`,
  );
}

/** Holds 127.0.0.1:<port> so a broker that tried to bind 0.0.0.0 on it would fail with EADDRINUSE. */
async function holdPort(): Promise<{ server: NetServer; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { server, port: (server.address() as { port: number }).port };
}

describe("integration > tls > safe defaults", () => {
  it("rill broker on 0.0.0.0 without TLS exits non-zero, telling what to do, before it binds", async () => {
    // Ensures the loopback-only default: the refusal comes before bindAsync (the port is held on
    // 127.0.0.1, so a bind of 0.0.0.0 would have failed with EADDRINUSE instead) and no data dir
    // is opened.
    const dataDir = await mkdtemp(join(tmpdir(), "rill-tls-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const { port } = await holdPort();
    const r = await brokerExit(["--listen", `0.0.0.0:${port}`, "--data-dir", join(dataDir, "d")]);
    expect(r.code).not.toBe(0);
    const output = r.stdout + r.stderr;
    expect(output).toMatch(/refusing to serve gRPC without TLS on non-loopback address 0\.0\.0\.0/);
    expect(output).toMatch(/--tls-cert and --tls-key.*--insecure/);
    expect(output).not.toMatch(/EADDRINUSE|address already in use|broker listening/i);
  });

  it("--insecure lets it listen on 0.0.0.0 with a warning (reached on 127.0.0.1)", async () => {
    // Ensures the documented escape hatch (a mesh terminates mTLS) works from the bare flag.
    const dataDir = await mkdtemp(join(tmpdir(), "rill-tls-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const args = brokerArgs(dataDir, ["--insecure"], "0.0.0.0:0");
    const { broker, address } = await startBrokerProcess({ dataDir, args });
    const port = Number(address.split(":").pop());
    const warning = broker.startup.find((e) =>
      /--insecure: serving gRPC without TLS on 0\.0\.0\.0/.test(e.msg ?? ""),
    );
    expect(warning?.level).toBe(40); // pino's warn
    const c = client(`127.0.0.1:${port}`, undefined);
    expect(await roundTrip(c, [Buffer.from("x")])).toEqual([Buffer.from("x")]);
  });

  it("refuses bad TLS setting combinations and files with messages naming them", async () => {
    // Ensures a misconfigured TLS setup stops the start with the fix, never serves, never crashes.
    const dir = await mkdtemp(join(tmpdir(), "rill-tls-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const notPem = join(dir, "not.pem");
    await writeFile(notPem, "hello\n");
    const garbled = join(dir, "garbled.pem");
    await writeFile(garbled, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const s = { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath };
    const cases: [Parameters<typeof startBroker>[0], RegExp][] = [
      [{ tlsKey: pki.server.keyPath }, /tls\.key is set but tls\.cert is not/],
      [{ tlsCert: pki.server.certPath }, /tls\.cert is set but tls\.key is not/],
      [{ tlsClientCa: pki.ca.certPath }, /tls\.client\.ca needs TLS/],
      [{ ...s, requireClientCert: true }, /require\.client\.cert needs --tls-client-ca/],
      [{ ...s, tlsCert: join(dir, "missing.pem") }, /tls\.cert: cannot read ".*missing\.pem" \(ENOENT\)/],
      [{ ...s, tlsKey: notPem }, /tls\.key: ".*not\.pem" is not a PEM file/],
      [{ ...s, tlsCert: garbled }, /tls\.cert: ".*garbled\.pem" holds no valid PEM certificate/],
      [{ ...s, tlsCert: pki.server.keyPath }, /tls\.cert: ".*server\.key" holds no valid PEM certificate/],
      [{ ...s, tlsKey: pki.server.certPath }, /tls\.key: ".*server\.crt" holds no valid .*private key/],
      [{ ...s, tlsKey: alice.keyPath }, /tls\.key ".*alice\.key" is not the private key of .*server\.crt/],
      [{ ...s, tlsClientCa: notPem }, /tls\.client\.ca: ".*not\.pem" is not a PEM file/],
    ];
    for (const [overrides, message] of cases) {
      // loadConfig may throw synchronously (setting combinations), the files fail asynchronously.
      const started = Promise.resolve().then(() =>
        startBroker({ listen: "127.0.0.1:0", dataDir: join(dir, "data"), ...overrides }),
      );
      const err = await started.then(
        async (b) => {
          await b.shutdown();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, String(message)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    }

    // Through the real command: a usage error exits 2, a bad file exits 1, both with the message.
    const combo = await brokerExit(["--listen", "127.0.0.1:0", "--tls-key", pki.server.keyPath]);
    expect(combo.code).toBe(2);
    expect(combo.stderr).toMatch(/tls\.key is set but tls\.cert is not: give --tls-cert/);
    const bad = await brokerExit([
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      join(dir, "data"),
      "--tls-cert",
      notPem,
      "--tls-key",
      pki.server.keyPath,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/tls\.cert: .*not\.pem.* is not a PEM file/);
    const clientOnly = await brokerExit(["--listen", "127.0.0.1:0", "--tls-ca", pki.ca.certPath]);
    expect(clientOnly.code).toBe(2);
    expect(clientOnly.stderr).toMatch(/--tls-ca is a client option/);
  });

  it("an in-process broker (startBroker) refuses a non-loopback listen before binding", async () => {
    // Ensures embedders get the same rule as the command: plaintext gRPC, or the plain-HTTP metrics
    // port beside TLS, on a wildcard address is refused before anything (data dir included) opens.
    const dataDir = join(tmpdir(), `rill-never-made-${process.pid}`);
    // The port is held on 127.0.0.1: a bind of 0.0.0.0 on it would fail with EADDRINUSE instead.
    const { port } = await holdPort();
    await expect(startBroker({ listen: `0.0.0.0:${port}`, dataDir })).rejects.toThrow(
      /refusing to serve gRPC without TLS on non-loopback address 0\.0\.0\.0/,
    );
    const tls = { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath };
    await expect(startBroker({ listen: "[::]:0", metricsPort: 0, ...tls, dataDir })).rejects.toThrow(
      /refusing to serve the plain-HTTP metrics endpoint \(metrics\.port\) on non-loopback address ::/,
    );
    await expect(access(dataDir)).rejects.toThrow(/ENOENT/);
  });
});
