/**
 * Every broker setting in one typed, validated place (STYLE habit 8). Each setting has a dotted
 * key; its command-line flag and environment variable are derived mechanically from the key:
 * `retention.ms` → `--retention-ms` and `RILL_RETENTION_MS`. Precedence: flag > env > default.
 * Topic-level settings (the `topic` group) are the defaults for topics that do not override them
 * in CreateTopic; a topic's effective config is computed when it is opened, so changing a default
 * and restarting changes every topic that did not override it (Kafka semantics).
 */

export type Durability = "written" | "fsynced";

/** The per-topic settings; CreateTopic may override each one. */
export interface TopicSettings {
  retentionMs: number;
  retentionBytes: number;
  segmentBytes: number;
  segmentMs: number;
  flushMessages: number;
  flushMs: number;
  maxBatchBytes: number;
  durability: Durability;
  indexIntervalBytes: number;
}

export interface BrokerConfig {
  /** host:port to listen on. Port 0 picks a free port. */
  listen: string;
  /** PEM files for TLS (rpc/tls.ts reads them); undefined: plaintext. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** CA bundle verifying client certificates (mutual TLS). */
  tlsClientCa?: string | undefined;
  requireClientCert: boolean;
  /** Allow plaintext listeners on a non-loopback address (rpc/exposure.ts). */
  insecure: boolean;
  /** Bearer tokens → principals (rpc/auth/tokens.ts); set: calls must authenticate. */
  authTokensFile?: string | undefined;
  /** ACLs and quota overrides (rpc/auth/acl.ts); set: deny unless granted. */
  authAclFile?: string | undefined;
  authPublicHealth: boolean;
  authPublicReflection: boolean;
  /** Default per-principal byte rates (rpc/auth/quota.ts); -1 = unlimited. */
  quotaProduceBytesPerSecond: number;
  quotaFetchBytesPerSecond: number;
  dataDir: string;
  autoCreateTopics: boolean;
  defaultPartitions: number;
  maxPartitionsPerTopic: number;
  logLevel: string;
  /** undefined: pretty when stdout is a TTY. */
  logPretty: boolean | undefined;
  /** Port of the Prometheus /metrics endpoint on the listen host; -1 = off, 0 = any free port. */
  metricsPort: number;
  fetchHeartbeatMs: number;
  fetchDefaultMaxBytes: number;
  fetchMaxBytes: number;
  maxReceiveMessageBytes: number;
  maxRecordsPerBatch: number;
  maxBatchesPerProduceStream: number;
  maxInflightBatchesPerSession: number;
  shutdownTimeoutMs: number;
  /** -1: connections live as long as clients keep them. */
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  /** -1: an idle connection stays open. */
  maxConnectionIdleMs: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  maxConcurrentStreams: number;
  receiveWindowBytes: number;
  maxOpenStreams: number;
  /** -1: a client stream may stay silent for ever. */
  streamIdleTimeoutMs: number;
  retentionCheckIntervalMs: number;
  /** After a failed fsync, how often a partition tries the disk again (partition.ts probe). */
  storageFaultRetryMs: number;
  groupSessionTimeoutMs: number;
  groupMinSessionTimeoutMs: number;
  groupMaxSessionTimeoutMs: number;
  groupMaxMembers: number;
  topicDefaults: TopicSettings;
}

type Kind = "int" | "string" | "bool" | "durability" | "level";

export interface SettingSpec {
  /** Dotted lower-case key, e.g. `retention.ms`. */
  key: string;
  kind: Kind;
  doc: string;
  /** The default, as the user would type it. */
  default: string | undefined;
  min?: number;
  max?: number;
  /** Where the value goes in BrokerConfig (a topic setting goes in topicDefaults). */
  target: keyof BrokerConfig | `topic.${keyof TopicSettings}`;
}

const MiB = 1024 * 1024;
const DAY_MS = 24 * 60 * 60 * 1000;
const INT_MAX = Number.MAX_SAFE_INTEGER;
/** Node clamps longer timer delays to 1 ms. */
const TIMER_MAX = 2 ** 31 - 1;

export const SETTINGS: readonly SettingSpec[] = [
  {
    key: "listen",
    kind: "string",
    default: "127.0.0.1:50051",
    target: "listen",
    doc: "host:port to serve gRPC on (port 0 = any free port)",
  },
  {
    key: "tls.cert",
    kind: "string",
    default: undefined,
    target: "tlsCert",
    doc: "PEM file with the broker's certificate chain; serves gRPC (health and reflection too) over TLS only (needs tls.key)",
  },
  {
    key: "tls.key",
    kind: "string",
    default: undefined,
    target: "tlsKey",
    doc: "PEM file with the private key of tls.cert",
  },
  {
    key: "tls.client.ca",
    kind: "string",
    default: undefined,
    target: "tlsClientCa",
    doc: "PEM file of the CA(s) whose client certificates are verified (mutual TLS; needs tls.cert)",
  },
  {
    key: "require.client.cert",
    kind: "bool",
    default: "false",
    target: "requireClientCert",
    doc: "refuse TLS clients without a certificate signed by tls.client.ca (needs tls.client.ca)",
  },
  {
    key: "insecure",
    kind: "bool",
    default: "false",
    target: "insecure",
    doc: "allow plaintext (no TLS) gRPC, and the plain-HTTP metrics endpoint, on a non-loopback listen address, e.g. behind a mesh that terminates mTLS (logs a warning)",
  },
  {
    key: "auth.tokens.file",
    kind: "string",
    default: undefined,
    target: "authTokensFile",
    doc: 'JSON file of bearer tokens, {"tokens":[{"token" or "sha256":…,"principal":…}]}; set: every call must authenticate (token or client certificate)',
  },
  {
    key: "auth.acl.file",
    kind: "string",
    default: undefined,
    target: "authAclFile",
    doc: 'JSON file of ACLs on topic/group patterns and per-principal quotas, {"acls":[…],"quotas":{…}}; set: every operation is denied unless an ACL grants it',
  },
  {
    key: "auth.public.health",
    kind: "bool",
    default: "true",
    target: "authPublicHealth",
    doc: "serve grpc.health.v1.Health without credentials (probes); false: it needs a token or client certificate too",
  },
  {
    key: "auth.public.reflection",
    kind: "bool",
    default: "false",
    target: "authPublicReflection",
    doc: "serve server reflection without credentials when authentication is on",
  },
  {
    key: "quota.produce.bytes.per.second",
    kind: "int",
    default: "-1",
    min: -1,
    max: INT_MAX,
    target: "quotaProduceBytesPerSecond",
    doc: "per-principal Produce byte rate past which the broker slows reading (throttles, never fails); -1 = unlimited; auth.acl.file quotas override it",
  },
  {
    key: "quota.fetch.bytes.per.second",
    kind: "int",
    default: "-1",
    min: -1,
    max: INT_MAX,
    target: "quotaFetchBytesPerSecond",
    doc: "per-principal Fetch byte rate past which the broker delays sending; -1 = unlimited; auth.acl.file quotas override it",
  },
  {
    key: "data.dir",
    kind: "string",
    default: "./data",
    target: "dataDir",
    doc: "directory holding topics, segments and broker metadata",
  },
  {
    key: "auto.create.topics",
    kind: "bool",
    default: "true",
    target: "autoCreateTopics",
    doc: "create a topic on its first Produce",
  },
  {
    key: "max.partitions.per.topic",
    kind: "int",
    default: "1000",
    min: 1,
    max: 10_000,
    target: "maxPartitionsPerTopic",
    doc: "most partitions one topic may have (each keeps 3 files open); CreateTopic and AddPartitions past it get RESOURCE_EXHAUSTED",
  },
  {
    key: "default.partitions",
    kind: "int",
    default: "1",
    min: 1,
    max: 10_000,
    target: "defaultPartitions",
    doc: "partitions of auto-created topics and of CreateTopic with partitions 0",
  },
  {
    key: "log.level",
    kind: "level",
    default: "info",
    target: "logLevel",
    doc: "trace, debug, info, warn, error, fatal or silent",
  },
  {
    key: "log.pretty",
    kind: "bool",
    default: undefined,
    target: "logPretty",
    doc: "human-readable logs instead of JSON (default: when stdout is a TTY)",
  },
  {
    key: "metrics.port",
    kind: "int",
    default: "-1",
    min: -1,
    max: 65535,
    target: "metricsPort",
    doc: "serve Prometheus metrics at http://HOST:PORT/metrics, HOST being the listen host (-1 = off, 0 = any free port)",
  },
  {
    key: "fetch.heartbeat.ms",
    kind: "int",
    default: "5000",
    min: 100,
    max: 300_000,
    target: "fetchHeartbeatMs",
    doc: "a following Fetch sends an empty response after this long without data",
  },
  {
    key: "fetch.default.max.bytes",
    kind: "int",
    default: String(MiB),
    min: 1024,
    max: 64 * MiB,
    target: "fetchDefaultMaxBytes",
    doc: "bytes of batches per Fetch response when the request says 0",
  },
  {
    key: "fetch.max.bytes",
    kind: "int",
    default: String(4 * MiB),
    min: 1024,
    max: 64 * MiB,
    target: "fetchMaxBytes",
    doc: "upper bound on a request's max_bytes",
  },
  {
    key: "max.receive.message.bytes",
    kind: "int",
    default: String(8 * MiB),
    min: 64 * 1024,
    max: 256 * MiB,
    target: "maxReceiveMessageBytes",
    doc: "largest gRPC message the broker accepts",
  },
  {
    key: "max.records.per.batch",
    kind: "int",
    default: "1000000",
    min: 1,
    max: 100_000_000,
    target: "maxRecordsPerBatch",
    doc: "most records one produced batch may hold",
  },
  {
    key: "max.batches.per.produce.stream",
    kind: "int",
    default: "100000",
    min: 1,
    max: 10_000_000,
    target: "maxBatchesPerProduceStream",
    doc: "most batches one Produce stream may carry (its single response lists them all)",
  },
  {
    key: "max.inflight.batches.per.session",
    kind: "int",
    default: "1000",
    min: 1,
    max: 1_000_000,
    target: "maxInflightBatchesPerSession",
    doc: "most batches of one ProduceSession read but not yet answered; past it the broker stops reading that stream until its answers go out",
  },
  {
    key: "shutdown.timeout.ms",
    kind: "int",
    default: "10000",
    min: 0,
    max: 600_000,
    target: "shutdownTimeoutMs",
    doc: "how long a graceful shutdown waits for in-flight calls",
  },
  {
    key: "max.connection.age.ms",
    kind: "int",
    default: "-1",
    min: -1,
    max: TIMER_MAX,
    target: "maxConnectionAgeMs",
    doc: "ask clients to reconnect (GOAWAY) after a connection is this old, ±10%, so they spread over replicas (-1 = never)",
  },
  {
    key: "max.connection.age.grace.ms",
    kind: "int",
    default: "10000",
    min: 0,
    max: TIMER_MAX,
    target: "maxConnectionAgeGraceMs",
    doc: "after that GOAWAY, how long calls may go on before the connection is closed; following Fetch and JoinGroup streams are then cut with UNAVAILABLE and clients resume",
  },
  // Slow and vanished clients (rpc/stream-limits.ts; defaults argued in docs/design-decisions.md).
  {
    key: "max.connection.idle.ms",
    kind: "int",
    default: "-1",
    min: -1,
    max: TIMER_MAX,
    target: "maxConnectionIdleMs",
    doc: "close a connection (GOAWAY) that has had no call open for this long; clients reconnect on their next call (-1 = never)",
  },
  {
    key: "keepalive.time.ms",
    kind: "int",
    default: "60000",
    min: 100,
    max: TIMER_MAX,
    target: "keepaliveTimeMs",
    doc: "ping every connection this often; a client that does not answer within keepalive.timeout.ms is disconnected and its calls end (finds clients that vanished without closing)",
  },
  {
    key: "keepalive.timeout.ms",
    kind: "int",
    default: "20000",
    min: 100,
    max: TIMER_MAX,
    target: "keepaliveTimeoutMs",
    doc: "how long the broker waits for the answer to a keepalive ping before it closes the connection",
  },
  {
    key: "max.concurrent.streams",
    kind: "int",
    default: "10000",
    min: 1,
    max: 2 ** 31 - 1,
    target: "maxConcurrentStreams",
    doc: "most calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client's further calls wait in the client until one ends",
  },
  {
    key: "receive.window.bytes",
    kind: "int",
    default: "1048576",
    min: 65_535,
    max: 2 ** 31 - 1,
    target: "receiveWindowBytes",
    doc: "HTTP/2 receive window the broker advertises, per stream and per connection: what a client may send on a stream before the broker reads it (65535 = HTTP/2's default)",
  },
  {
    key: "max.open.streams",
    kind: "int",
    default: "10000",
    min: 1,
    max: 10_000_000,
    target: "maxOpenStreams",
    doc: "most streaming calls (Produce, ProduceSession, Fetch, JoinGroup) open in the whole broker, past it new ones get RESOURCE_EXHAUSTED; health Watch and reflection streams have their own pool of a tenth of it",
  },
  {
    key: "stream.idle.timeout.ms",
    kind: "int",
    default: "300000",
    min: -1,
    max: TIMER_MAX,
    target: "streamIdleTimeoutMs",
    doc: "end a Produce or ProduceSession stream (any client-streaming call) that sends no message for this long, with DEADLINE_EXCEEDED; clients open a new one (-1 = never)",
  },
  {
    key: "retention.check.interval.ms",
    kind: "int",
    default: "60000",
    min: 10,
    max: DAY_MS,
    target: "retentionCheckIntervalMs",
    doc: "how often retention runs",
  },
  {
    key: "storage.fault.retry.ms",
    kind: "int",
    default: "5000",
    min: 10,
    max: 3_600_000,
    target: "storageFaultRetryMs",
    doc: "after a failed fsync, how often a partition rewrites and fsyncs its unflushed data to resume writes",
  },
  {
    key: "group.session.timeout.ms",
    kind: "int",
    default: "10000",
    min: 1,
    max: 3_600_000,
    target: "groupSessionTimeoutMs",
    doc: "a group member's session timeout when it does not choose one: without a heartbeat, or without releasing revoked partitions, for this long it is removed",
  },
  {
    key: "group.min.session.timeout.ms",
    kind: "int",
    default: "1000",
    min: 1,
    max: 3_600_000,
    target: "groupMinSessionTimeoutMs",
    doc: "the shortest session timeout a member may ask for",
  },
  {
    key: "group.max.session.timeout.ms",
    kind: "int",
    default: "300000",
    min: 1,
    max: 3_600_000,
    target: "groupMaxSessionTimeoutMs",
    doc: "the longest session timeout a member may ask for",
  },
  {
    key: "group.max.members",
    kind: "int",
    default: "1000",
    min: 1,
    max: 100_000,
    target: "groupMaxMembers",
    doc: "most members one group may have (a JoinGroup past it gets RESOURCE_EXHAUSTED)",
  },
  {
    key: "retention.ms",
    kind: "int",
    default: String(7 * DAY_MS),
    min: -1,
    max: INT_MAX,
    target: "topic.retentionMs",
    doc: "delete segments older than this (-1 = keep forever)",
  },
  {
    key: "retention.bytes",
    kind: "int",
    default: "-1",
    min: -1,
    max: INT_MAX,
    target: "topic.retentionBytes",
    doc: "delete oldest segments while a partition is bigger (-1 = no limit)",
  },
  {
    key: "segment.bytes",
    kind: "int",
    default: String(1024 * MiB),
    min: 1024,
    max: 2 ** 31 - 1,
    target: "topic.segmentBytes",
    doc: "roll a new segment file past this size",
  },
  {
    key: "segment.ms",
    kind: "int",
    default: String(7 * DAY_MS),
    min: 1,
    max: INT_MAX,
    target: "topic.segmentMs",
    doc: "roll a new segment file when the active one is this old",
  },
  {
    key: "flush.messages",
    kind: "int",
    default: "-1",
    min: -1,
    max: INT_MAX,
    target: "topic.flushMessages",
    doc: "fsync after this many records (-1 = no count trigger)",
  },
  {
    key: "flush.ms",
    kind: "int",
    default: "1000",
    min: -1,
    max: TIMER_MAX,
    target: "topic.flushMs",
    doc: "fsync at most this long after an unflushed append (-1 = no time trigger)",
  },
  {
    key: "max.batch.bytes",
    kind: "int",
    default: String(MiB),
    min: 64,
    max: 64 * MiB,
    target: "topic.maxBatchBytes",
    doc: "largest batch a producer may append",
  },
  {
    key: "durability",
    kind: "durability",
    default: "written",
    target: "topic.durability",
    doc: "acknowledge produces when written (page cache) or fsynced, unless the request says",
  },
  {
    key: "index.interval.bytes",
    kind: "int",
    default: "4096",
    min: 1,
    max: 64 * MiB,
    target: "topic.indexIntervalBytes",
    doc: "bytes of log between two sparse offset-index entries",
  },
];

/** `retention.ms` → `retention-ms` (the flag without its dashes). */
export function flagName(key: string): string {
  return key.replaceAll(".", "-");
}

/** `retention.ms` → `RILL_RETENTION_MS`. */
export function envName(key: string): string {
  return `RILL_${key.replaceAll(".", "_").toUpperCase()}`;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

function parseValue(spec: SettingSpec, raw: string, source: string): unknown {
  const where = `${source} (${spec.key})`;
  switch (spec.kind) {
    case "string":
      if (raw.length === 0) throw new ConfigError(`${where} must not be empty`);
      return raw;
    case "bool": {
      const v = raw.toLowerCase();
      if (["true", "1", "yes", "on"].includes(v)) return true;
      if (["false", "0", "no", "off"].includes(v)) return false;
      throw new ConfigError(`${where} must be true or false, not "${raw}"`);
    }
    case "level":
      if (!LEVELS.has(raw))
        throw new ConfigError(`${where} must be one of ${[...LEVELS].join(", ")}, not "${raw}"`);
      return raw;
    case "durability":
      if (raw !== "written" && raw !== "fsynced")
        throw new ConfigError(`${where} must be written or fsynced, not "${raw}"`);
      return raw;
    case "int": {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${where} must be an integer, not "${raw}"`);
      const n = Number(raw);
      if (
        !Number.isSafeInteger(n) ||
        (spec.min !== undefined && n < spec.min) ||
        (spec.max !== undefined && n > spec.max)
      ) {
        throw new ConfigError(`${where} must be between ${spec.min} and ${spec.max}, not ${raw}`);
      }
      return n;
    }
  }
}

function assign(config: Record<string, unknown>, spec: SettingSpec, value: unknown): void {
  if (spec.target.startsWith("topic.")) {
    (config.topicDefaults as Record<string, unknown>)[spec.target.slice("topic.".length)] = value;
  } else {
    config[spec.target] = value;
  }
}

/**
 * Builds a validated BrokerConfig. `flags` maps dotted keys to raw strings from the command line;
 * `env` is usually process.env; `overrides` (typed, already-validated values — for tests and
 * embedding) win over both.
 */
export function loadConfig(
  flags: Record<string, string | undefined> = {},
  env: Record<string, string | undefined> = {},
  overrides: Partial<Omit<BrokerConfig, "topicDefaults">> & { topicDefaults?: Partial<TopicSettings> } = {},
): BrokerConfig {
  const config: Record<string, unknown> = { topicDefaults: {} };
  for (const spec of SETTINGS) {
    const fromFlag = flags[spec.key];
    const fromEnv = env[envName(spec.key)];
    let value: unknown;
    if (fromFlag !== undefined) value = parseValue(spec, fromFlag, `--${flagName(spec.key)}`);
    else if (fromEnv !== undefined && fromEnv !== "") value = parseValue(spec, fromEnv, envName(spec.key));
    else if (spec.default !== undefined) value = parseValue(spec, spec.default, "default");
    assign(config, spec, value);
  }
  const { topicDefaults, ...rest } = overrides;
  Object.assign(config, rest);
  Object.assign(config.topicDefaults as object, topicDefaults ?? {});
  const result = config as unknown as BrokerConfig;
  parseListen(result.listen);
  if (result.topicDefaults.maxBatchBytes > maxBatchBytesAllowed(result)) {
    throw new ConfigError(
      `max.batch.bytes (${result.topicDefaults.maxBatchBytes}) must leave ${REQUEST_OVERHEAD_BYTES} bytes of request overhead under max.receive.message.bytes (${result.maxReceiveMessageBytes})`,
    );
  }
  if (result.fetchDefaultMaxBytes > result.fetchMaxBytes) {
    throw new ConfigError(
      `fetch.default.max.bytes (${result.fetchDefaultMaxBytes}) must not exceed fetch.max.bytes (${result.fetchMaxBytes})`,
    );
  }
  checkTlsSettings(result);
  if (result.maxConnectionAgeMs === 0) {
    throw new ConfigError("max.connection.age.ms must be -1 (never) or a positive number of milliseconds");
  }
  for (const key of ["quotaProduceBytesPerSecond", "quotaFetchBytesPerSecond"] as const) {
    if (result[key] === 0) {
      const name = key === "quotaProduceBytesPerSecond" ? "produce" : "fetch";
      throw new ConfigError(`quota.${name}.bytes.per.second must be -1 (unlimited) or a positive byte rate`);
    }
  }
  for (const [key, value] of [
    ["max.connection.idle.ms", result.maxConnectionIdleMs],
    ["stream.idle.timeout.ms", result.streamIdleTimeoutMs],
  ] as const) {
    if (value !== -1 && value < 100)
      throw new ConfigError(`${key} must be -1 (never) or at least 100 milliseconds, not ${value}`);
  }
  const {
    groupSessionTimeoutMs: session,
    groupMinSessionTimeoutMs: min,
    groupMaxSessionTimeoutMs: max,
  } = result;
  if (!(min <= session && session <= max)) {
    throw new ConfigError(
      `group.session.timeout.ms (${session}) must lie between group.min.session.timeout.ms (${min}) and group.max.session.timeout.ms (${max})`,
    );
  }
  return result;
}

/**
 * The TLS settings that only make sense together (the files themselves are read by rpc/tls.ts,
 * which checks again: a config built without loadConfig must not fall back to plaintext).
 */
export function checkTlsSettings(
  c: Pick<BrokerConfig, "tlsCert" | "tlsKey" | "tlsClientCa" | "requireClientCert">,
): void {
  if (c.tlsKey !== undefined && c.tlsCert === undefined)
    throw new ConfigError(
      "tls.key is set but tls.cert is not: give --tls-cert with the certificate of that key",
    );
  if (c.tlsCert !== undefined && c.tlsKey === undefined)
    throw new ConfigError(
      "tls.cert is set but tls.key is not: give --tls-key with the certificate's private key",
    );
  if (c.tlsClientCa !== undefined && c.tlsCert === undefined)
    throw new ConfigError(
      "tls.client.ca needs TLS: give --tls-cert and --tls-key as well (client certificates are checked only over TLS)",
    );
  if (c.requireClientCert && c.tlsClientCa === undefined)
    throw new ConfigError(
      "require.client.cert needs --tls-client-ca (the CA that signs the client certificates) and --tls-cert/--tls-key",
    );
}

/** Room a ProduceRequest needs besides its batch (topic name, scalars, tags). */
export const REQUEST_OVERHEAD_BYTES = 1024;

/** The largest max.batch.bytes a batch can actually arrive with under max.receive.message.bytes. */
export function maxBatchBytesAllowed(config: Pick<BrokerConfig, "maxReceiveMessageBytes">): number {
  return config.maxReceiveMessageBytes - REQUEST_OVERHEAD_BYTES;
}

/** Splits `host:port` (IPv6 as `[::1]:port`); throws ConfigError when malformed. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535)
    throw new ConfigError(`listen must be HOST:PORT (e.g. 127.0.0.1:50051), not "${listen}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}
