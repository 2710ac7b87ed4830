/**
 * A throw-away PKI for TLS / mutual-TLS tests, made at run time with the `openssl` command (never
 * committed): a self-signed CA, a server certificate for 127.0.0.1 / localhost signed by it, and
 * client certificates on demand (signed by the CA, or by a second, untrusted CA).
 *
 * Invariants: every file lives in one mkdtemp directory that `cleanup()` removes; keys are EC P-256
 * (fast to make); every openssl run is bounded by a timeout; certificates are valid from now for
 * two days, so a test never depends on the wall clock beyond that.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One certificate and its private key, as files and as PEM bytes. */
export interface CertFiles {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

export interface TestPki {
  /** temp dir holding every file (mkdtemp) */
  dir: string;
  /** self-signed CA */
  ca: CertFiles;
  /** signed by ca; SAN IP:127.0.0.1, DNS:localhost */
  server: CertFiles;
  /** A client certificate with subject CN=<commonName> (plus O=<org> if given), signed by `ca`
   *  (or by a separate untrusted CA when `untrusted` is true). */
  client(commonName: string, opts?: { org?: string; untrusted?: boolean }): Promise<CertFiles>;
  /** rm -rf dir */
  cleanup(): Promise<void>;
}

const OPENSSL_TIMEOUT_MS = 15_000;
const VALID_DAYS = "2";

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd, timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 1 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `openssl ${args[0]} failed (is openssl installed? .ci/run installs it): ${e.stderr || e.message}`,
    );
  }
}

/** `/CN=..` subject; `/`, `+`, `=` and `\` are escaped so a test name cannot change its structure. */
function subject(commonName: string, org?: string): string {
  const esc = (s: string) => s.replace(/[\\/+=]/g, (c) => `\\${c}`);
  return `${org === undefined ? "" : `/O=${esc(org)}`}/CN=${esc(commonName)}`;
}

/** A fresh EC P-256 key plus a certificate for `subj` signed by `issuer` (self-signed when absent). */
async function issue(
  dir: string,
  name: string,
  subj: string,
  extensions: string,
  issuer?: CertFiles,
): Promise<CertFiles> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.crt`);
  const extPath = join(dir, `${name}.ext`);
  await writeFile(extPath, extensions);
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyPath], dir);
  await openssl(["req", "-new", "-key", keyPath, "-subj", subj, "-out", csrPath], dir);
  const signWith =
    issuer === undefined
      ? ["-signkey", keyPath]
      : ["-CA", issuer.certPath, "-CAkey", issuer.keyPath, "-CAcreateserial"];
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csrPath,
      ...signWith,
      "-days",
      VALID_DAYS,
      "-sha256",
      "-extfile",
      extPath,
      "-out",
      certPath,
    ],
    dir,
  );
  const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
  return { certPath, keyPath, cert, key };
}

const CA_EXT = [
  "basicConstraints=critical,CA:TRUE",
  "keyUsage=critical,keyCertSign,cRLSign",
  "subjectKeyIdentifier=hash",
  "",
].join("\n");
const SERVER_EXT = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=IP:127.0.0.1,DNS:localhost",
  "authorityKeyIdentifier=keyid",
  "",
].join("\n");
const CLIENT_EXT = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=clientAuth",
  "authorityKeyIdentifier=keyid",
  "",
].join("\n");

/** Makes a new PKI in a fresh temp dir (a few hundred ms). Call `cleanup()` in afterAll/finally. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), "rill-pki-"));
  try {
    const ca = await issue(dir, "ca", "/O=Rill Test/CN=Rill Test CA", CA_EXT);
    const server = await issue(dir, "server", "/O=Rill Test/CN=localhost", SERVER_EXT, ca);
    let untrustedCa: Promise<CertFiles> | undefined;
    let seq = 0;
    return {
      dir,
      ca,
      server,
      async client(commonName, opts = {}) {
        let issuer = ca;
        if (opts.untrusted) {
          untrustedCa ??= issue(dir, "untrusted-ca", "/O=Rill Untrusted/CN=Rill Untrusted CA", CA_EXT);
          issuer = await untrustedCa;
        }
        seq += 1;
        const name = `client-${seq}-${commonName.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)}`;
        return issue(dir, name, subject(commonName, opts.org), CLIENT_EXT, issuer);
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
