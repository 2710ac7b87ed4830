/**
 * What every `rill` client command shares: the global options, opening a client, turning any
 * failure into one clear line on stderr with a non-zero exit code, and writing to stdout with
 * backpressure.
 */
import type { Command } from "commander";
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
  const o = cmd.optsWithGlobals<{ broker?: string; verbose?: boolean }>();
  return { broker: o.broker ?? process.env.RILL_BROKER ?? DEFAULT_BROKER, verbose: o.verbose === true };
}

/**
 * A client for the command. The CLI retries less patiently than the library's defaults: a person
 * is waiting, and a broker that is not there should be reported within seconds.
 */
export function openClient(globals: GlobalOptions): RillClient {
  return createClient({
    brokers: globals.broker,
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
  if (e instanceof AuthError) return `not allowed: ${e.message}`;
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
