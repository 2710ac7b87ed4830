/**
 * AdminService: create, delete, list and describe topics. Config values are checked against the
 * same bounds as the broker's own settings (config.ts) before anything touches the disk.
 */
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type {
  AddPartitionsRequest,
  AddPartitionsResponse,
  CreateTopicRequest,
  CreateTopicResponse,
  DeleteTopicRequest,
  DeleteTopicResponse,
  DescribeTopicRequest,
  DescribeTopicResponse,
  ListTopicsResponse,
  TopicConfig,
  TopicDescription,
} from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { Durability } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { InvalidRequestError } from "../broker/errors.js";
import type { Topic } from "../broker/topic-registry.js";
import { maxBatchBytesAllowed, SETTINGS, type TopicSettings } from "../config.js";
import type { RpcContext } from "./context.js";
import { unary } from "./unary.js";

export function adminServiceImplementation(ctx: RpcContext): UntypedServiceImplementation {
  return {
    createTopic: unary(ctx, createTopic),
    deleteTopic: unary(ctx, deleteTopic),
    listTopics: unary(ctx, listTopics),
    describeTopic: unary(ctx, describeTopic),
    addPartitions: unary(ctx, addPartitions),
  };
}

const INT_FIELDS: [keyof TopicConfig & keyof TopicSettings, string][] = [
  ["retentionMs", "retention.ms"],
  ["retentionBytes", "retention.bytes"],
  ["segmentBytes", "segment.bytes"],
  ["segmentMs", "segment.ms"],
  ["flushMessages", "flush.messages"],
  ["flushMs", "flush.ms"],
  ["maxBatchBytes", "max.batch.bytes"],
];

/** Validates a TopicConfig and returns the overrides it sets. */
export function topicOverrides(config: TopicConfig | undefined): Partial<TopicSettings> {
  const out: Partial<TopicSettings> = {};
  if (!config) return out;
  for (const [field, key] of INT_FIELDS) {
    const value = config[field];
    if (value === undefined) continue;
    const spec = SETTINGS.find((s) => s.key === key)!;
    if (value < BigInt(spec.min ?? 0) || value > BigInt(spec.max ?? Number.MAX_SAFE_INTEGER)) {
      throw new InvalidRequestError(`${key} must be between ${spec.min} and ${spec.max}, not ${value}`);
    }
    (out as Record<string, number>)[field] = Number(value);
  }
  if (config.durability !== undefined && config.durability !== Durability.DURABILITY_UNSPECIFIED) {
    if (config.durability === Durability.DURABILITY_WRITTEN) out.durability = "written";
    else if (config.durability === Durability.DURABILITY_FSYNCED) out.durability = "fsynced";
    else throw new InvalidRequestError(`unknown durability ${config.durability}; use WRITTEN or FSYNCED`);
  }
  return out;
}

function toTopicConfig(settings: TopicSettings): TopicConfig {
  return {
    retentionMs: BigInt(settings.retentionMs),
    retentionBytes: BigInt(settings.retentionBytes),
    segmentBytes: BigInt(settings.segmentBytes),
    segmentMs: BigInt(settings.segmentMs),
    flushMessages: BigInt(settings.flushMessages),
    flushMs: BigInt(settings.flushMs),
    maxBatchBytes: BigInt(settings.maxBatchBytes),
    durability:
      settings.durability === "fsynced" ? Durability.DURABILITY_FSYNCED : Durability.DURABILITY_WRITTEN,
  };
}

export function describe(topic: Topic): TopicDescription {
  return {
    topic: topic.name,
    config: toTopicConfig(topic.settings),
    partitions: topic.partitions.map((p) => ({
      partition: p.index,
      logStartOffset: p.logStartOffset,
      highWatermark: p.highWatermark,
      sizeBytes: BigInt(p.log.sizeBytes),
      segmentCount: p.log.segmentCount,
    })),
  };
}

async function createTopic(ctx: RpcContext, req: CreateTopicRequest): Promise<CreateTopicResponse> {
  const overrides = topicOverrides(req.config);
  const allowed = maxBatchBytesAllowed(ctx.core.config);
  if (overrides.maxBatchBytes !== undefined && overrides.maxBatchBytes > allowed) {
    throw new InvalidRequestError(
      `max.batch.bytes ${overrides.maxBatchBytes} could never arrive: the broker receives messages up to ${ctx.core.config.maxReceiveMessageBytes} bytes (max.receive.message.bytes), so use at most ${allowed}`,
    );
  }
  const partitions = req.partitions === 0 ? ctx.core.config.defaultPartitions : req.partitions;
  const topic = await ctx.core.topics.create(req.topic, partitions, overrides);
  return { topic: describe(topic) };
}

async function deleteTopic(ctx: RpcContext, req: DeleteTopicRequest): Promise<DeleteTopicResponse> {
  await ctx.core.topics.delete(req.topic);
  return {};
}

function listTopics(ctx: RpcContext): ListTopicsResponse {
  return { topics: ctx.core.topics.list().map((t) => ({ topic: t.name, partitions: t.partitions.length })) };
}

function describeTopic(ctx: RpcContext, req: DescribeTopicRequest): DescribeTopicResponse {
  return { topic: describe(ctx.core.topics.require(req.topic)) };
}

async function addPartitions(ctx: RpcContext, req: AddPartitionsRequest): Promise<AddPartitionsResponse> {
  return { topic: describe(await ctx.core.topics.addPartitions(req.topic, req.partitions)) };
}
