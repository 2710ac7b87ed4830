/**
 * The Rill TypeScript client.
 *
 * ```ts
 * import { createClient } from "rill/clients/ts/src/index.js";
 * const client = createClient({ brokers: "127.0.0.1:50051" });
 * const producer = client.producer();
 * await producer.send("orders", [{ key: "customer-1", value: "hello" }]);
 * for await (const r of client.consumer().read({ topic: "orders", follow: false })) console.log(r.value);
 * await client.close();
 * ```
 */
export {
  Admin,
  type AdminOptions,
  parseTopicConfig,
  TOPIC_CONFIG_KEYS,
  type TopicSettings,
  topicConfigEntries,
  toTopicConfig,
} from "./admin/admin.js";
export {
  GroupAdmin,
  groupStateName,
  type ResetOffsetsTo,
  resetTarget,
  validateGroupId,
} from "./admin/group-admin.js";
export { createClient, RillClient, type RillClientOptions } from "./client.js";
export {
  Connection,
  type ConnectionOptions,
  DEFAULT_CHANNEL_OPTIONS,
  parseBrokerAddress,
  type TlsOptions,
} from "./connection.js";
export {
  type ConsumedBatch,
  Consumer,
  type ConsumerOptions,
  type ReadOptions,
  type StartPosition,
} from "./consumer/consumer.js";
export {
  GroupSubscription,
  type PartitionsListener,
  type SubscribeOptions,
  type SubscriptionEvent,
  type TopicPartition,
} from "./consumer/group-subscription.js";
export {
  AuthError,
  BrokerUnavailableError,
  CancelledError,
  ClientClosedError,
  Code,
  CorruptBatchError,
  FailedPreconditionError,
  fromGrpcError,
  InvalidArgumentError,
  isRetriableCode,
  OffsetOutOfRangeError,
  RequestTimeoutError,
  ResourceExhaustedError,
  RillError,
  type RillErrorOptions,
  TopicExistsError,
  TopicNotFoundError,
  UnsupportedCompressionError,
} from "./errors.js";
export type {
  PartitionDescription,
  TopicConfig,
  TopicDescription,
  TopicSummary,
} from "./gen/rill/v1/admin.js";
export type { GetMetadataResponse } from "./gen/rill/v1/cluster.js";
export {
  type CommittedOffset,
  type DescribeGroupResponse,
  type GroupMember,
  type GroupPartition,
  GroupState,
  type GroupSummary,
  type TopicPartitions,
} from "./gen/rill/v1/group.js";
export type { PartitionOffsets } from "./gen/rill/v1/log.js";
export {
  createLogger,
  type LogEntry,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogSink,
  silentLogger,
  stderrLogSink,
} from "./logger.js";
export {
  DefaultPartitioner,
  murmur2,
  type Partitioner,
  type PartitionerInput,
  partitionForKey,
  StickyPartitioner,
  toPositive,
} from "./producer/partitioner.js";
export {
  type BytesLike,
  Producer,
  type ProducerAcks,
  type ProducerDurability,
  type ProducerHeader,
  type ProducerOptions,
  type ProducerRecord,
  type RecordMetadata,
} from "./producer/producer.js";
export { type ConsumedRecord, decodeBatch, decodeBatches, type RecordHeader } from "./records.js";
export { backoffDelay, type RetryControl, type RetryOptions, retry, sleep } from "./retry.js";
