/**
 * The producer's settings: the public `ProducerOptions`, their defaults, and their validation into
 * a fully resolved form.
 *
 * Invariants: resolving either throws an `InvalidArgumentError` (checked in a fixed order, so the
 * same bad options always name the same setting) or yields only finite integers within range, a
 * known compression and durability, and retry options already validated, so the producer never
 * fails on a setting later.
 */
import { InvalidArgumentError } from "../errors.js";
import { Durability } from "../gen/rill/v1/log.js";
import { type RetryOptions, resolveRetryOptions } from "../retry.js";
import { DefaultPartitioner, type Partitioner } from "./partitioner.js";

/** How acknowledged writes must be (the topic's default when undefined). */
export type ProducerDurability = "written" | "fsynced";

/**
 * How batches are sent and acknowledged: "per-stream" (client-streaming Produce calls, each answered
 * once for all its batches) or "per-batch" (one long-lived, pipelined ProduceSession; each batch is
 * answered on its own). See producer.ts.
 */
export type ProducerAcks = "per-stream" | "per-batch";

/** Producer settings; all optional. */
export interface ProducerOptions {
  /**
   * How long a batch may wait for more records before it is sent (ms, default 5; 0: sealed once the
   * current turn of the event loop ends). With `acks: "per-batch"` and a linger above 0, a batch past
   * its linger also waits, filling, until its partition's previous batch is answered.
   */
  lingerMs?: number;
  /** A batch is sealed when it reaches this many bytes of records (default 256 KiB). */
  batchBytes?: number;
  /** How batches are sent and acknowledged (default "per-stream"; see producer.ts). */
  acks?: ProducerAcks;
  /** "per-stream": Produce streams open at once (default 1). */
  maxInFlight?: number;
  /**
   * "per-stream": encoded batch bytes sent on one Produce stream, at least one batch (default: half of
   * `bufferBytes`, 16 MiB, so the other half fills while a stream is out; BENCHMARKS.md phase 9).
   */
  maxStreamBytes?: number;
  /** "per-batch": batches sent on the session and not yet answered (default 1000). */
  maxInFlightBatches?: number;
  /** Records buffered and not yet acknowledged, in bytes; `send` waits above it (default 32 MiB). */
  bufferBytes?: number;
  /** When the broker acknowledges (default: the topic's setting). */
  durability?: ProducerDurability | undefined;
  /** Batch compression (default "none"). */
  compression?: "none" | "gzip";
  /** Chooses partitions for records without one (default: Kafka's murmur2 + sticky). */
  partitioner?: Partitioner;
  /** Retry policy for retriable failures (defaults from the client). */
  retry?: Partial<RetryOptions>;
  /**
   * Deadline of one Produce stream; "per-batch": how long a batch may wait for its answer before the
   * session is given up and its unanswered batches resent (ms, default: the client's requestTimeoutMs).
   */
  requestTimeoutMs?: number;
  /** Re-read a topic's partition count after this long (ms, default 5 min). */
  metadataMaxAgeMs?: number;
}

/** Producer settings with every default applied and every value checked. */
export interface ResolvedProducerOptions {
  lingerMs: number;
  batchBytes: number;
  acks: ProducerAcks;
  maxInFlight: number;
  maxStreamBytes: number;
  maxInFlightBatches: number;
  bufferBytes: number;
  requestTimeoutMs: number;
  compression: "none" | "gzip";
  retry: Partial<RetryOptions>;
  partitioner: Partitioner;
  metadataMaxAgeMs: number;
  durability: Durability;
}

/** The client-wide settings a producer's own options default to. */
export interface ProducerOptionDefaults {
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
}

const DEFAULTS = {
  lingerMs: 5,
  batchBytes: 256 * 1024,
  maxInFlight: 1,
  maxInFlightBatches: 1000,
  bufferBytes: 32 * 1024 * 1024,
  metadataMaxAgeMs: 5 * 60_000,
};

/** Applies the defaults and validates; throws an `InvalidArgumentError` on the first bad setting. */
export function resolveProducerOptions(
  options: ProducerOptions,
  client: ProducerOptionDefaults,
): ResolvedProducerOptions {
  const lingerMs = positiveInt("lingerMs", options.lingerMs, DEFAULTS.lingerMs, 0);
  const batchBytes = positiveInt("batchBytes", options.batchBytes, DEFAULTS.batchBytes);
  const acks = options.acks ?? "per-stream";
  if (acks !== "per-stream" && acks !== "per-batch") {
    throw new InvalidArgumentError(`acks must be "per-stream" or "per-batch", got ${String(acks)}`);
  }
  const maxInFlight = positiveInt("maxInFlight", options.maxInFlight, DEFAULTS.maxInFlight);
  const bufferBytes = positiveInt("bufferBytes", options.bufferBytes, DEFAULTS.bufferBytes);
  const maxStreamBytes = positiveInt(
    "maxStreamBytes",
    options.maxStreamBytes,
    Math.max(1, Math.floor(bufferBytes / 2)),
  );
  const maxInFlightBatches = positiveInt(
    "maxInFlightBatches",
    options.maxInFlightBatches,
    DEFAULTS.maxInFlightBatches,
  );
  const requestTimeoutMs = positiveInt("requestTimeoutMs", options.requestTimeoutMs, client.requestTimeoutMs);
  const compression = options.compression ?? "none";
  if (compression !== "none" && compression !== "gzip") {
    throw new InvalidArgumentError(`compression must be "none" or "gzip", got ${String(compression)}`);
  }
  const retry = { ...client.retry, ...options.retry };
  resolveRetryOptions(retry); // validate now, not on the first failure
  const partitioner = options.partitioner ?? new DefaultPartitioner();
  const metadataMaxAgeMs = positiveInt(
    "metadataMaxAgeMs",
    options.metadataMaxAgeMs,
    DEFAULTS.metadataMaxAgeMs,
    0,
  );
  const durability = durabilityOf(options.durability);
  return {
    lingerMs,
    batchBytes,
    acks,
    maxInFlight,
    maxStreamBytes,
    maxInFlightBatches,
    bufferBytes,
    requestTimeoutMs,
    compression,
    retry,
    partitioner,
    metadataMaxAgeMs,
    durability,
  };
}

function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (!(Number.isFinite(v) && v >= min))
    throw new InvalidArgumentError(`${name} must be >= ${min}, got ${v}`);
  return Math.floor(v);
}

function durabilityOf(d: ProducerDurability | undefined): Durability {
  if (d === undefined) return Durability.DURABILITY_UNSPECIFIED;
  if (d === "written") return Durability.DURABILITY_WRITTEN;
  if (d === "fsynced") return Durability.DURABILITY_FSYNCED;
  throw new InvalidArgumentError(`durability must be "written" or "fsynced", got ${String(d)}`);
}
