import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError, globalOptions, securityOptions } from "../../../clients/cli/src/context.js";
import { buildProgram } from "../../../clients/cli/src/program.js";
import { Connection } from "../../../clients/ts/src/connection.js";
import { InvalidArgumentError } from "../../../clients/ts/src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rill-secopts-"));
  await writeFile(join(dir, "token"), "  s3cr3t-token\n");
  await writeFile(join(dir, "empty"), "\n");
  await writeFile(join(dir, "ca.pem"), "CA");
  await writeFile(join(dir, "c.pem"), "CERT");
  await writeFile(join(dir, "k.pem"), "KEY");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("client > connection > token and TLS options", () => {
  it("sends the token as `authorization: Bearer` on every call's metadata", () => {
    // Ensures createClient({ token }) authenticates each call (every call takes connection.metadata()).
    const c = new Connection("127.0.0.1:1", {
      token: "abc.DEF-123",
      metadata: { authorization: "x", a: "b" },
    });
    try {
      const md = c.metadata();
      expect(md.get("authorization")).toEqual(["Bearer abc.DEF-123"]);
      expect(md.get("a")).toEqual(["b"]);
      expect(c.metadata()).not.toBe(md); // a fresh object each call (grpc-js mutates it)
    } finally {
      c.close();
    }
  });

  it("refuses a blank or multi-word token and a half client certificate", () => {
    // Ensures a misconfigured client fails at once with what to fix, not with a confusing status.
    for (const token of ["", "  ", "two words", "new\nline"]) {
      expect(() => new Connection("127.0.0.1:1", { token }), JSON.stringify(token)).toThrow(
        InvalidArgumentError,
      );
    }
    expect(() => new Connection("127.0.0.1:1", { tls: { certChain: Buffer.from("x") } })).toThrow(
      /certChain and privateKey go together/,
    );
  });
});

describe("cli > security options", () => {
  function globalsFor(args: string[], env: Record<string, string | undefined> = {}) {
    const program = buildProgram();
    let captured: ReturnType<typeof globalOptions> | undefined;
    program.command("probe").action((_o, cmd) => {
      const saved = process.env.RILL_TOKEN;
      if (env.RILL_TOKEN === undefined) delete process.env.RILL_TOKEN;
      else process.env.RILL_TOKEN = env.RILL_TOKEN;
      try {
        captured = globalOptions(cmd);
      } finally {
        if (saved === undefined) delete process.env.RILL_TOKEN;
        else process.env.RILL_TOKEN = saved;
      }
    });
    program.parse(["probe", ...args], { from: "user" });
    return captured!;
  }

  it("reads the CA, client certificate, key and token files the flags name", () => {
    // Ensures each global flag reaches the client options with the file's bytes (token trimmed).
    const g = globalsFor([
      "--tls-ca",
      join(dir, "ca.pem"),
      "--tls-cert",
      join(dir, "c.pem"),
      "--tls-key",
      join(dir, "k.pem"),
      "--tls-server-name",
      "rill.internal",
      "--token-file",
      join(dir, "token"),
    ]);
    const s = securityOptions(g);
    expect(s.tls?.rootCerts?.toString()).toBe("CA");
    expect(s.tls?.certChain?.toString()).toBe("CERT");
    expect(s.tls?.privateKey?.toString()).toBe("KEY");
    expect(s.tls?.serverName).toBe("rill.internal");
    expect(s.token).toBe("s3cr3t-token");
  });

  it("uses plaintext without flags, system roots with --tls, and RILL_TOKEN when no --token-file", () => {
    // Ensures the defaults: no TLS unless asked; the token never needs to be on argv.
    expect(securityOptions(globalsFor([]))).toEqual({ tls: undefined, token: undefined });
    expect(securityOptions(globalsFor(["--tls"])).tls).toEqual({
      rootCerts: undefined,
      certChain: undefined,
      privateKey: undefined,
      serverName: undefined,
    });
    expect(securityOptions(globalsFor([], { RILL_TOKEN: "from-env" })).token).toBe("from-env");
    const both = globalsFor(["--token-file", join(dir, "token")], { RILL_TOKEN: "from-env" });
    expect(securityOptions(both).token).toBe("s3cr3t-token");
  });

  it("names the flag and the file when a file is missing or empty, as a usage error (exit 2)", () => {
    // Ensures a typo in a path is reported as such, not as a TLS handshake failure.
    const cases: [string[], RegExp][] = [
      [["--tls-ca", join(dir, "nope")], /--tls-ca: cannot read ".*nope" \(ENOENT\)/],
      [["--tls-cert", join(dir, "c.pem")], /--tls-cert and --tls-key go together/],
      [["--tls-key", join(dir, "k.pem")], /--tls-cert and --tls-key go together/],
      [["--token-file", join(dir, "empty")], /--token-file: ".*empty" is empty/],
      [["--token-file", dir], /--token-file: cannot read ".*" \(EISDIR\)/],
    ];
    for (const [args, message] of cases) {
      let err: unknown;
      try {
        securityOptions(globalsFor(args));
      } catch (e) {
        err = e;
      }
      expect(err, args.join(" ")).toBeInstanceOf(CliError);
      expect((err as CliError).message).toMatch(message);
      expect((err as CliError).exitCode).toBe(2);
    }
  });
});
