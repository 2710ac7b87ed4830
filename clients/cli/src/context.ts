/**
 * What every `rill` client command shares: the global options, opening a client, turning any
 * failure into one clear line on stderr with a non-zero exit code, and writing to stdout with
 * backpressure.
 *
 * Connection security (global options): `--tls` (system roots), `--tls-ca`, `--tls-cert` +
 * `--tls-key` (mutual TLS), `--tls-server-name`, and a bearer token from `--token-file` or the
 * RILL_TOKEN variable — never from argv, where `ps` and shell history would show it. The files are
 * read when a client is opened; a missing or unreadable one is a usage error (exit 2) naming it.
 */
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import type { Command } from "commander";
import type { TlsOptions } from "../../ts/src/connection.js";
import {
  AuthError,
  BrokerUnavailableError,
  createClient,
  InvalidArgumentError,
  RequestTimeoutError,
  type RillClient,
  RillError,
  stderrLogSink,
  TopicExistsError,
  TopicNotFoundError,
} from "../../ts/src/index.js";

/** The default broker address when neither --broker nor RILL_BROKER is given. */
export const DEFAULT_BROKER = "127.0.0.1:50051";

/** Options every command can take (declared on the program). */
export interface GlobalOptions {
  broker: string;
  verbose: boolean;
  /** `--tls`: TLS even without a CA file (the system roots). */
  tls?: boolean | undefined;
  /** `--tls-ca`, `--tls-cert`, `--tls-key`, `--token-file`: paths, read by securityOptions. */
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsServerName?: string | undefined;
  tokenFile?: string | undefined;
  /** The RILL_TOKEN variable (read when the options are taken, not a flag). */
  token?: string | undefined;
}

/** A failure that already has its one-line message and exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** The global options as seen from a (sub)command. */
export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<Omit<GlobalOptions, "token">>();
  const token = process.env.RILL_TOKEN;
  return {
    broker: o.broker ?? process.env.RILL_BROKER ?? DEFAULT_BROKER,
    verbose: o.verbose === true,
    tls: o.tls === true,
    tlsCa: o.tlsCa,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    tlsServerName: o.tlsServerName,
    tokenFile: o.tokenFile,
    token: token === undefined || token === "" ? undefined : token,
  };
}

/** True when a TLS or token flag was given (RILL_TOKEN aside): `rill bench` takes them only with --broker. */
export function usesSecurityOptions(g: GlobalOptions): boolean {
  return (
    g.tls === true ||
    [g.tlsCa, g.tlsCert, g.tlsKey, g.tlsServerName, g.tokenFile].some((v) => v !== undefined)
  );
}

function readOptionFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new CliError(`${flag}: cannot read "${file}" (${code})`, 2);
  }
}

let ipServernameWarningDropped = false;

/**
 * grpc-js gives TLS the broker's host as the SNI name even when it is an IP address, and Node then
 * prints a deprecation warning (DEP0123) on stderr, on every `rill --tls-ca ... --broker 10.0.0.5:50051`.
 * The CLI drops exactly that warning; every other one still goes to Node's own printer.
 */
export function dropIpServernameWarning(): void {
  if (ipServernameWarningDropped) return;
  ipServernameWarningDropped = true;
  const printers = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", (w: Error & { code?: string }) => {
    if (w.code === "DEP0123") return;
    for (const print of printers) print(w);
  });
}

/** The client's TLS and token settings from the global options; reads the files they name. */
export function securityOptions(g: GlobalOptions): {
  tls?: TlsOptions | undefined;
  token?: string | undefined;
} {
  if ((g.tlsCert === undefined) !== (g.tlsKey === undefined)) {
    throw new CliError("--tls-cert and --tls-key go together (a client certificate and its private key)", 2);
  }
  const useTls =
    g.tls === true || g.tlsCa !== undefined || g.tlsCert !== undefined || g.tlsServerName !== undefined;
  const tls: TlsOptions | undefined = useTls
    ? {
        rootCerts: g.tlsCa === undefined ? undefined : readOptionFile("--tls-ca", g.tlsCa),
        certChain: g.tlsCert === undefined ? undefined : readOptionFile("--tls-cert", g.tlsCert),
        privateKey: g.tlsKey === undefined ? undefined : readOptionFile("--tls-key", g.tlsKey),
        serverName: g.tlsServerName,
      }
    : undefined;
  let token = g.token;
  if (g.tokenFile !== undefined) {
    token = readOptionFile("--token-file", g.tokenFile).toString("utf8").trim();
    if (token.length === 0) throw new CliError(`--token-file: "${g.tokenFile}" is empty`, 2);
  }
  return { tls, token };
}

/** {@link securityOptions}, and over TLS Node's warning about an IP address as SNI name dropped. */
export function clientSecurity(globals: GlobalOptions): ReturnType<typeof securityOptions> {
  const security = securityOptions(globals);
  if (security.tls) dropIpServernameWarning();
  return security;
}

/**
 * A client for the command. The CLI retries less patiently than the library's defaults: a person
 * is waiting, and a broker that is not there should be reported within seconds.
 */
export function openClient(globals: GlobalOptions): RillClient {
  const security = clientSecurity(globals);
  return createClient({
    brokers: globals.broker,
    ...security,
    log: globals.verbose ? stderrLogSink : undefined,
    logLevel: "debug",
    retry: { maxAttempts: 4, maxElapsedMs: 10_000, initialDelayMs: 100, maxDelayMs: 2_000 },
  });
}

/** Runs `fn` with a client that is closed afterwards, whatever happens. */
export async function withClient<T>(
  globals: GlobalOptions,
  fn: (client: RillClient) => Promise<T>,
): Promise<T> {
  const client = openClient(globals);
  try {
    return await fn(client);
  } finally {
    await client.close().catch(() => {});
  }
}

/** One line, without the "rill: " prefix, saying what went wrong and, where possible, what to do. */
export function describeError(e: unknown, context: { broker?: string; topic?: string } = {}): string {
  if (e instanceof CliError) return e.message;
  const topic = context.topic;
  if (e instanceof TopicNotFoundError) {
    if (topic !== undefined && !/partition/i.test(e.message)) {
      return `topic "${topic}" not found — create it with: rill topic create ${topic}`;
    }
    return e.message;
  }
  if (e instanceof TopicExistsError) {
    return topic !== undefined ? `topic "${topic}" already exists` : e.message;
  }
  if (e instanceof BrokerUnavailableError) {
    const where = context.broker ? ` at ${context.broker}` : "";
    const why = e.message.replace(/\.? *Resolution note: *$/, "");
    return `cannot reach the broker${where} (${why}) — is it running? (rill broker starts one)`;
  }
  if (e instanceof RequestTimeoutError) {
    return `the broker${context.broker ? ` at ${context.broker}` : ""} did not answer in time (${e.message})`;
  }
  if (e instanceof AuthError) {
    // UNAUTHENTICATED: who you are is missing or wrong; PERMISSION_DENIED: you may not do this.
    return e.code === status.UNAUTHENTICATED
      ? `not authenticated: ${e.message} (rill sends a token from --token-file or RILL_TOKEN, a client certificate from --tls-cert and --tls-key)`
      : `not allowed: ${e.message}`;
  }
  if (e instanceof InvalidArgumentError) return e.message;
  if (e instanceof RillError) return `${e.message} (${e.codeName})`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Writes to stdout, waiting for 'drain' when its buffer is full. */
export function writeOut(chunk: Buffer | string): Promise<void> | undefined {
  if (process.stdout.write(chunk)) return undefined;
  return new Promise((resolve) => {
    const done = (): void => {
      process.stdout.off("drain", done);
      process.stdout.off("close", done);
      resolve();
    };
    process.stdout.once("drain", done);
    process.stdout.once("close", done);
  });
}

/** Parses a non-negative integer option, or throws a CliError naming it. */
export function parseCount(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new CliError(`${name} must be an integer >= ${min}, got "${value}"`, 2);
  }
  return Number(value);
}
