/**
 * Topic administration and offset/metadata look-ups. Every call is unary with a deadline
 * (`requestTimeoutMs`, default from the client: 30 s). Reads (list, describe, listOffsets, metadata)
 * are retried on retriable errors; createTopic, deleteTopic and addPartitions are not (a retry after a
 * lost answer would report ALREADY_EXISTS / NOT_FOUND / INVALID_ARGUMENT for the caller's own success).
 * The consumer-group methods (listGroups, describeGroup, ...) come from {@link GroupAdmin}.
 *
 * Topic config uses Kafka's dotted keys at the edges (`retention.ms`, ...): {@link parseTopicConfig}
 * turns `key=value` strings into a typed {@link TopicSettings}; {@link topicConfigEntries} turns an
 * effective config back into dotted pairs.
 */
import type { CallOptions, Metadata, ServiceError } from "@grpc/grpc-js";
import { type Connection, unaryCall } from "../connection.js";
import { InvalidArgumentError, RillError } from "../errors.js";
import type {
  AddPartitionsRequest,
  AddPartitionsResponse,
  CreateTopicRequest,
  CreateTopicResponse,
  DeleteTopicRequest,
  DeleteTopicResponse,
  DescribeTopicRequest,
  DescribeTopicResponse,
  ListTopicsRequest,
  ListTopicsResponse,
  TopicConfig,
  TopicDescription,
  TopicSummary,
} from "../gen/rill/v1/admin.js";
import type { GetMetadataRequest, GetMetadataResponse } from "../gen/rill/v1/cluster.js";
import type { GroupServiceClient } from "../gen/rill/v1/group.js";
import {
  Durability,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  type PartitionOffsets,
} from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { type RetryOptions, retry } from "../retry.js";
import { GroupAdmin } from "./group-admin.js";

/** Per-topic settings; unset fields take the broker's defaults. Integers may be numbers or bigints. */
export interface TopicSettings {
  /** retention.ms: delete a segment once its newest batch is older than this; -1 keeps forever. */
  retentionMs?: number | bigint;
  /** retention.bytes: keep a partition under this size; -1 means no limit. */
  retentionBytes?: number | bigint;
  /** segment.bytes: roll segment files at this size. */
  segmentBytes?: number | bigint;
  /** segment.ms: roll segment files at this age. */
  segmentMs?: number | bigint;
  /** flush.messages: fsync after this many records. */
  flushMessages?: number | bigint;
  /** flush.ms: fsync at most this long after an unflushed append. */
  flushMs?: number | bigint;
  /** max.batch.bytes: the largest batch a producer may append. */
  maxBatchBytes?: number | bigint;
  /** durability: the default acknowledgement of produces to this topic. */
  durability?: "written" | "fsynced";
}

type IntSetting = Exclude<keyof TopicSettings, "durability">;

/** Dotted config keys, as the CLI and the docs spell them, and the setting each one sets. */
export const TOPIC_CONFIG_KEYS: Readonly<Record<string, keyof TopicSettings>> = Object.freeze({
  "retention.ms": "retentionMs",
  "retention.bytes": "retentionBytes",
  "segment.bytes": "segmentBytes",
  "segment.ms": "segmentMs",
  "flush.messages": "flushMessages",
  "flush.ms": "flushMs",
  "max.batch.bytes": "maxBatchBytes",
  durability: "durability",
});

/**
 * Parses `key=value` pairs with dotted keys (see {@link TOPIC_CONFIG_KEYS}) into settings. Throws an
 * InvalidArgumentError naming the bad key or value.
 */
export function parseTopicConfig(pairs: Iterable<string>): TopicSettings {
  const out: TopicSettings = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`config "${pair}" is not key=value`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const field = TOPIC_CONFIG_KEYS[key];
    if (field === undefined) {
      throw new InvalidArgumentError(
        `unknown config key "${key}" (known: ${Object.keys(TOPIC_CONFIG_KEYS).join(", ")})`,
      );
    }
    if (field === "durability") {
      if (value !== "written" && value !== "fsynced") {
        throw new InvalidArgumentError(`durability must be "written" or "fsynced", got "${value}"`);
      }
      out.durability = value;
      continue;
    }
    if (!/^-?\d+$/.test(value))
      throw new InvalidArgumentError(`config ${key} must be an integer, got "${value}"`);
    out[field] = BigInt(value);
  }
  return out;
}

function toBigInt(name: string, v: number | bigint | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "bigint") return v;
  if (!Number.isInteger(v)) throw new InvalidArgumentError(`${name} must be an integer, got ${v}`);
  return BigInt(v);
}

const INT_FIELDS: readonly IntSetting[] = [
  "retentionMs",
  "retentionBytes",
  "segmentBytes",
  "segmentMs",
  "flushMessages",
  "flushMs",
  "maxBatchBytes",
];

/** Settings → the wire TopicConfig. */
export function toTopicConfig(settings: TopicSettings = {}): TopicConfig {
  const config: TopicConfig = {};
  for (const f of INT_FIELDS) {
    const v = toBigInt(f, settings[f]);
    if (v !== undefined) config[f] = v;
  }
  if (settings.durability === "written") config.durability = Durability.DURABILITY_WRITTEN;
  else if (settings.durability === "fsynced") config.durability = Durability.DURABILITY_FSYNCED;
  else if (settings.durability !== undefined) {
    throw new InvalidArgumentError(
      `durability must be "written" or "fsynced", got ${String(settings.durability)}`,
    );
  }
  return config;
}

/** A wire TopicConfig → dotted `[key, value]` pairs of the fields that are set, in key order. */
export function topicConfigEntries(config: TopicConfig | undefined): [string, string][] {
  const out: [string, string][] = [];
  if (!config) return out;
  for (const [key, field] of Object.entries(TOPIC_CONFIG_KEYS)) {
    const v = config[field];
    if (v === undefined) continue;
    if (field === "durability") {
      const d = v as Durability;
      const name =
        d === Durability.DURABILITY_WRITTEN
          ? "written"
          : d === Durability.DURABILITY_FSYNCED
            ? "fsynced"
            : "default";
      out.push([key, name]);
    } else {
      out.push([key, String(v)]);
    }
  }
  return out;
}

/** Admin settings. */
export interface AdminOptions {
  /** Deadline of each call (ms; default: the client's requestTimeoutMs). */
  requestTimeoutMs?: number;
  /** Retry policy for the read calls (defaults from the client). */
  retry?: Partial<RetryOptions>;
}

/** What the admin gets from its client. */
export interface AdminContext {
  connection: Connection;
  logger: Logger;
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
}

type Method<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Creates, deletes, lists and describes topics; looks up offsets and metadata; manages groups. */
export class Admin extends GroupAdmin {
  private readonly timeoutMs: number;
  private readonly retryOptions: Partial<RetryOptions>;

  constructor(
    private readonly ctx: AdminContext,
    options: AdminOptions = {},
  ) {
    super();
    const t = options.requestTimeoutMs ?? ctx.requestTimeoutMs;
    if (!(t > 0)) throw new InvalidArgumentError(`requestTimeoutMs must be > 0, got ${t}`);
    this.timeoutMs = t;
    this.retryOptions = { ...ctx.retry, ...options.retry };
  }

  /** Creates a topic (partitions default: the broker's). Rejects with TopicExistsError if it exists. */
  async createTopic(
    name: string,
    options: { partitions?: number; config?: TopicSettings } = {},
  ): Promise<TopicDescription> {
    const partitions = options.partitions ?? 0;
    if (!(Number.isInteger(partitions) && partitions >= 0)) {
      throw new InvalidArgumentError(`partitions must be a positive integer, got ${partitions}`);
    }
    const request: CreateTopicRequest = { topic: name, partitions, config: toTopicConfig(options.config) };
    const res = await this.call<CreateTopicRequest, CreateTopicResponse>(
      (r, m, o, cb) => this.ctx.connection.admin.createTopic(r, m, o, cb),
      request,
      false,
    );
    if (!res.topic) throw new RillError("broker returned no topic description", { retriable: false });
    return res.topic;
  }

  /** Deletes a topic and its data. Rejects with TopicNotFoundError if it does not exist. */
  async deleteTopic(name: string): Promise<void> {
    await this.call<DeleteTopicRequest, DeleteTopicResponse>(
      (r, m, o, cb) => this.ctx.connection.admin.deleteTopic(r, m, o, cb),
      { topic: name },
      false,
    );
  }

  /** Every topic with its partition count, sorted by name. */
  async listTopics(): Promise<TopicSummary[]> {
    const res = await this.call<ListTopicsRequest, ListTopicsResponse>(
      (r, m, o, cb) => this.ctx.connection.admin.listTopics(r, m, o, cb),
      {},
      true,
    );
    return res.topics;
  }

  /** A topic's effective config and the state of each partition. */
  async describeTopic(name: string): Promise<TopicDescription> {
    const res = await this.call<DescribeTopicRequest, DescribeTopicResponse>(
      (r, m, o, cb) => this.ctx.connection.admin.describeTopic(r, m, o, cb),
      { topic: name },
      true,
    );
    if (!res.topic) throw new RillError("broker returned no topic description", { retriable: false });
    return res.topic;
  }

  /**
   * Earliest and latest (high watermark) offsets of a topic's partitions (default all), and with
   * `timestamp` the first offset appended at or after it.
   */
  async listOffsets(
    topic: string,
    options: { partitions?: readonly number[]; timestamp?: Date | number | bigint } = {},
  ): Promise<PartitionOffsets[]> {
    const t = options.timestamp;
    const timestampMs =
      t === undefined
        ? undefined
        : t instanceof Date
          ? BigInt(t.getTime())
          : typeof t === "bigint"
            ? t
            : BigInt(t);
    const res = await this.call<ListOffsetsRequest, ListOffsetsResponse>(
      (r, m, o, cb) => this.ctx.connection.log.listOffsets(r, m, o, cb),
      { topic, partitions: [...(options.partitions ?? [])], timestampMs },
      true,
    );
    return res.partitions;
  }

  /**
   * Raises a topic's partition count to `partitions` (the new total, larger than the current one;
   * the broker refuses anything else with INVALID_ARGUMENT). Resolves with the topic as it is now.
   */
  async addPartitions(topic: string, partitions: number): Promise<TopicDescription> {
    if (typeof topic !== "string" || topic.length === 0) {
      throw new InvalidArgumentError("topic must be a non-empty string");
    }
    if (!(Number.isInteger(partitions) && partitions >= 1 && partitions <= 2 ** 31 - 1)) {
      throw new InvalidArgumentError(`partitions must be a positive integer, got ${partitions}`);
    }
    const res = await this.call<AddPartitionsRequest, AddPartitionsResponse>(
      (r, m, o, cb) => this.ctx.connection.admin.addPartitions(r, m, o, cb),
      { topic, partitions },
      false,
    );
    if (!res.topic) throw new RillError("broker returned no topic description", { retriable: false });
    return res.topic;
  }

  /** Brokers and partition leaders, for the given topics (default: every topic). */
  metadata(topics: readonly string[] = []): Promise<GetMetadataResponse> {
    return this.call<GetMetadataRequest, GetMetadataResponse>(
      (r, m, o, cb) => this.ctx.connection.cluster.getMetadata(r, m, o, cb),
      { topics: [...topics] },
      true,
    );
  }

  protected override get groupService(): GroupServiceClient {
    return this.ctx.connection.group;
  }

  protected override call<Req, Res>(
    method: Method<Req, Res>,
    request: Req,
    idempotent: boolean,
  ): Promise<Res> {
    const once = (): Promise<Res> =>
      unaryCall(method, request, this.ctx.connection.metadata(), this.timeoutMs);
    return idempotent ? retry(once, this.retryOptions) : once();
  }
}
