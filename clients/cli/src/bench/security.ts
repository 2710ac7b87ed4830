/**
 * How `rill bench` reaches a secured broker (one given with --broker): the TLS settings and bearer
 * token of the CLI's global options (`--tls`, `--tls-ca`, `--tls-cert` + `--tls-key`,
 * `--tls-server-name`, `--token-file` or RILL_TOKEN), already read from their files by the command.
 * Every client of the run uses them, the phase-5 reader and writer processes included: those get
 * them through one environment variable (the file contents, not the paths, so a child reads the
 * same certificates the parent did). The report says only whether TLS (mutual or not) and a token
 * were used; no secret is written to the results. While a child runs, its environment (so the
 * token and any client key) is readable by the same user, in /proc/<pid>/environ, as RILL_TOKEN
 * itself is.
 */
import type { TlsOptions } from "../../../ts/src/index.js";

/** The clients' TLS settings and token; both undefined for a plaintext broker. */
export interface BenchSecurity {
  tls?: TlsOptions | undefined;
  token?: string | undefined;
}

/** The environment variable carrying a BenchSecurity to the bench's child processes. */
export const SECURITY_ENV = "RILL_BENCH_SECURITY";

const PEM_FIELDS = ["rootCerts", "certChain", "privateKey"] as const;

/** The environment of a child process that must connect like the bench does (ours, plus the variable). */
export function securityEnv(security: BenchSecurity): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[SECURITY_ENV]; // never a value this process was itself given
  if (security.tls === undefined && security.token === undefined) return env;
  const tls =
    security.tls === undefined
      ? undefined
      : {
          serverName: security.tls.serverName,
          ...Object.fromEntries(PEM_FIELDS.map((f) => [f, security.tls?.[f]?.toString("base64")])),
        };
  env[SECURITY_ENV] = JSON.stringify({ tls, token: security.token });
  return env;
}

/** The BenchSecurity a child process was given (plaintext when the variable is unset). */
export function securityFromEnv(env: NodeJS.ProcessEnv = process.env): BenchSecurity {
  const raw = env[SECURITY_ENV];
  if (raw === undefined || raw === "") return {};
  let parsed: { tls?: Record<string, string | undefined>; token?: string } | null = null;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // reported below
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw new Error(`${SECURITY_ENV} is not a JSON object; it is set by rill bench for its child processes`);
  }
  const t = parsed.tls;
  const pem = (f: (typeof PEM_FIELDS)[number]) =>
    typeof t?.[f] === "string" ? Buffer.from(t[f], "base64") : undefined;
  return {
    tls:
      t === undefined
        ? undefined
        : {
            rootCerts: pem("rootCerts"),
            certChain: pem("certChain"),
            privateKey: pem("privateKey"),
            serverName: t.serverName,
          },
    token: typeof parsed.token === "string" ? parsed.token : undefined,
  };
}

/** "TLS" or "mutual TLS", and/or "bearer token", or "plaintext": what the report says. */
export function describeSecurity(security: BenchSecurity): string {
  const parts: string[] = [];
  if (security.tls !== undefined) parts.push(security.tls.certChain ? "mutual TLS" : "TLS");
  if (security.token !== undefined) parts.push("bearer token");
  return parts.length === 0 ? "plaintext" : parts.join(", ");
}
