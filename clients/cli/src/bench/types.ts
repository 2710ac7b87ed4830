/**
 * What the phases of `rill bench` share: the environment they run in and the result each returns.
 * A phase returns one or more {@link PhaseResult}s (one per durability, one per rate...).
 */
import type { Progress } from "./progress.js";
import type { BenchSecurity } from "./security.js";

/** Where and how the phases run. */
export interface BenchEnv {
  /** The broker's host:port. */
  address: string;
  /** TLS and token of every client of the run (empty for a plaintext broker; security.ts). */
  security: BenchSecurity;
  /** The broker's data directory when the bench started it (phase 6 reads its files). */
  dataDir: string | undefined;
  /** The broker's PID when the bench started it (its CPU time is read from /proc). */
  brokerPid: number | undefined;
  /** Records per phase (-n). */
  records: number;
  /** Upper bound on each phase's timed part, in seconds. */
  phaseSeconds: number;
  /** Prefix of every topic this run creates. */
  topicPrefix: string;
  /** Read every produced topic back (untimed) and count its records. */
  verify: boolean;
  progress: Progress;
  /** Topics created by this run (deleted at the end when the broker is not ours). */
  createdTopics: string[];
  /** When each timed part ran (CLOCK_MONOTONIC µs, the clock of V8's CPU profiles). */
  windows: TimeWindow[];
  /** The batch-50 data set of phases 4 and 6, made once on first use. */
  dataset?: { topic: string; records: number } | undefined;
}

/** A span of time in microseconds of the monotonic clock (process.hrtime). */
export interface TimeWindow {
  startUs: number;
  endUs: number;
}

/** Latency percentiles of phase 5, in milliseconds. */
export interface LatencySummary {
  rate: number;
  achievedRate: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** The records sent at the same rate just before the measured ones, kept apart (phase-latency.ts). */
  warmup?: { seconds: number; records: number; p50Ms: number; p99Ms: number; maxMs: number } | undefined;
}

/** Bytes on disk per record, phase 6. */
export interface StorageSummary {
  records: number;
  payloadBytes: number;
  logBytes: number;
  indexBytes: number;
  /** Bytes allocated on disk (st_blocks × 512) for .log plus indexes, when known. */
  allocatedBytes: number | undefined;
  /** .log bytes / record − payload. */
  overheadPerRecord: number;
  /** (.log + .index + .timeindex) bytes / record − payload. */
  overheadWithIndexes: number | undefined;
  /** Where the sizes come from: "files" (the data directory) or "DescribeTopic". */
  source: "files" | "DescribeTopic";
}

/** Phase 8's memory figures. */
export interface StalledMemory {
  /** Broker RSS when the consumer had stalled, before the load. */
  baselineMb: number;
  /** Highest broker RSS sampled while the producer ran. */
  peakMb: number;
  /** Payload produced meanwhile. */
  producedMb: number;
  /** Records the consumer read in all, once it read on (the warm-up record included). */
  readAfterStall: number;
}

/** One row of the results. */
export interface PhaseResult {
  /** Stable id, e.g. "1-written", "5-10000", "7-up-10k". */
  id: string;
  phase: number;
  name: string;
  /** Records the phase was asked for. */
  target: number;
  /** Records acknowledged / read / moved. */
  records: number;
  seconds: number;
  recordsPerSec: number | undefined;
  /** Payload MB/s (records × 200 / 10^6 / s). */
  mbPerSec: number | undefined;
  /** Bytes per second on the wire-equivalent (phase 7 and what it is compared with). */
  bytesPerSec?: number | undefined;
  /** True when the phase stopped at its time cap before reaching `target`. */
  capped: boolean;
  /** CPU seconds (user + system) of the broker process during the phase, when it is ours. */
  brokerCpuSeconds: number | undefined;
  /** CPU seconds of the client during the phase: this process, or phase 5's writer process. */
  clientCpuSeconds: number;
  /** Records read back by --verify (untimed). */
  consumed?: number | undefined;
  latency?: LatencySummary | undefined;
  storage?: StorageSummary | undefined;
  /** Phase 8: the broker's resident memory while a consumer stalls (MB = 10^6 bytes). */
  memory?: StalledMemory | undefined;
  /** Phase 9, many partitions: records/s over the 1-partition run of the same phase. */
  partitionRatio?: number | undefined;
  /** Phase 3/4 throughput over the phase-7 ceiling (bytes/s), set by the report. */
  ceilingRatio?: { small: number | undefined; large: number | undefined } | undefined;
  /** How it was done (API, settings). */
  note: string;
  /** Set when the phase failed; the other fields then hold what was done until then. */
  error?: string | undefined;
}
