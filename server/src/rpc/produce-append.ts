/**
 * Appending one produced batch, shared by Produce (log-service.ts) and ProduceSession
 * (produce-session.ts) so both apply the same checks, limits, auto-creation and durability: a
 * batch arrives as a lazy view (codecs/produce-request.ts), is validated without decoding its
 * records (only counted, codecs/record-batch.ts), and is appended to the page cache at once.
 * Waiting for an fsync is the caller's business (`fsync` says whether the batch asked for one).
 */
import { Durability } from "../../../clients/ts/src/gen/rill/v1/log.js";
import {
  InvalidRequestError,
  LimitExceededError,
  PartitionNotFoundError,
  TopicNotFoundError,
} from "../broker/errors.js";
import type { Partition } from "../broker/partition.js";
import { validateTopicName } from "../broker/topic-name.js";
import { type AppendInput, type AppendResult, CompressionCode } from "../storage/log-api.js";
import type { Access } from "./auth/access.js";
import type { ProduceRequestView } from "./codecs/produce-request.js";
import { countRecords } from "./codecs/record-batch.js";
import type { RpcContext } from "./context.js";

/** One batch appended (to the page cache). */
export interface AppendedBatch {
  partition: Partition;
  appended: AppendResult;
  /** The batch asked (or its topic defaults) to be acknowledged only after an fsync. */
  fsync: boolean;
}

/**
 * Validates, authorizes (when `access` is given), waits out any produce-quota debt of the caller,
 * finds (or auto-creates) the partition and appends one batch; reports the records to the
 * observer; then charges the batch to the quota and waits out the debt it made, if any. Throws (or
 * rejects with) the broker error a refused batch maps to (status.ts).
 *
 * Synchronous when nothing has to be waited for (the topic exists, no quota debt): the result
 * itself, not a promise. That is the hot path of ProduceSession, where each promise hop costs
 * latency on every acknowledged batch; a caller that may wait anyway just `await`s the value.
 */
export function appendBatch(
  ctx: RpcContext,
  req: ProduceRequestView,
  access?: Access,
): AppendedBatch | Promise<AppendedBatch> {
  const input = validateBatch(ctx, req);
  // ACLs (auth/): write, and create for an auto-created topic, checked before anything changes.
  access?.require("topic", "write", req.topic);
  // Quota (auth/quota.ts): a principal in debt, from this call or another, waits before anything
  // is created or written; a call that ends meanwhile writes nothing (QuotaWaitEndedError).
  const debt = access?.payDebt("produce");
  if (debt) return debt.then(() => appendToPartition(ctx, req, input, access));
  return appendToPartition(ctx, req, input, access);
}

/** The rest of appendBatch, once no debt is left: find or create the partition, append. */
function appendToPartition(
  ctx: RpcContext,
  req: ProduceRequestView,
  input: AppendInput,
  access: Access | undefined,
): AppendedBatch | Promise<AppendedBatch> {
  const append = () => appendTo(ctx, req, input, access, existingPartition(ctx, req, input));
  if (ctx.core.topics.get(req.topic)) return append();
  return createTopic(ctx, req, input.records.length, access).then(append);
}

/** Appends to the partition, reports it, and charges the caller's produce quota. */
function appendTo(
  ctx: RpcContext,
  req: ProduceRequestView,
  input: AppendInput,
  access: Access | undefined,
  partition: Partition,
): AppendedBatch | Promise<AppendedBatch> {
  const [appended] = partition.append([input]);
  ctx.observer?.produced(req.topic, input.recordCount, input.records.length);
  const durability =
    req.durability === Durability.DURABILITY_UNSPECIFIED
      ? partition.defaultDurability === "fsynced"
        ? Durability.DURABILITY_FSYNCED
        : Durability.DURABILITY_WRITTEN
      : req.durability;
  const result = { partition, appended: appended!, fsync: durability === Durability.DURABILITY_FSYNCED };
  // Quota (auth/quota.ts): over its rate, the caller reads its next batch only after this wait.
  const wait = access?.throttle("produce", input.records.length);
  return wait ? wait.then(() => result) : result;
}

/** Checks a batch against everything that does not need the topic; returns what to append. */
function validateBatch(ctx: RpcContext, req: ProduceRequestView): AppendInput {
  if (req.malformed) throw new InvalidRequestError(req.malformed);
  validateTopicName(req.topic);
  if (req.partition < 0) throw new InvalidRequestError(`partition must be >= 0, not ${req.partition}`);
  if (req.durability < 0 || req.durability > Durability.DURABILITY_FSYNCED) {
    throw new InvalidRequestError(`unknown durability ${req.durability}; use WRITTEN or FSYNCED`);
  }
  const compression =
    req.compression === CompressionCode.Unspecified ? CompressionCode.None : req.compression;
  if (compression < CompressionCode.None || compression > CompressionCode.Lz4) {
    throw new InvalidRequestError(`unknown compression ${req.compression}; use NONE, GZIP, ZSTD or LZ4`);
  }
  const { maxRecordsPerBatch } = ctx.core.config;
  if (compression === CompressionCode.None) {
    if (req.compressedRecords?.length) {
      throw new InvalidRequestError(
        "compressed_records is set but compression is NONE; set compression or send records",
      );
    }
    const records = req.records;
    if (!records || records.length === 0)
      throw new InvalidRequestError("the batch is empty; send at least one record");
    // The walk stops one record past the limit: a hostile batch costs at most that much.
    const recordCount = countRecords(records, maxRecordsPerBatch);
    if (recordCount === 0) throw new InvalidRequestError("the batch is empty; send at least one record");
    if (recordCount > maxRecordsPerBatch) {
      throw new LimitExceededError(
        `the batch holds more than ${maxRecordsPerBatch} records (max.records.per.batch), split it`,
      );
    }
    return { records, recordCount, compression };
  }
  const records = req.compressedRecords;
  if (!records || records.length === 0) {
    throw new InvalidRequestError(
      "compression is set but compressed_records is empty; send the compressed RecordBatch",
    );
  }
  if (req.records?.length)
    throw new InvalidRequestError("send either records or compressed_records, not both");
  if (req.recordCount < 1) {
    throw new InvalidRequestError(
      "record_count must be >= 1 for a compressed batch (the broker does not decompress)",
    );
  }
  if (req.recordCount > maxRecordsPerBatch) {
    throw new LimitExceededError(
      `the batch holds ${req.recordCount} records; the limit is ${maxRecordsPerBatch}, split it`,
    );
  }
  return { records, recordCount: req.recordCount, compression };
}

/** Auto-creates the batch's topic (it does not exist), or throws why it may not. */
async function createTopic(
  ctx: RpcContext,
  req: ProduceRequestView,
  batchBytes: number,
  access: Access | undefined,
): Promise<void> {
  const { topics, config } = ctx.core;
  if (!config.autoCreateTopics) throw new TopicNotFoundError(req.topic);
  access?.require("topic", "create", req.topic);
  // Checked before the topic exists, so a refused first batch creates nothing.
  checkBatchSize(req.topic, batchBytes, config.topicDefaults.maxBatchBytes);
  if (req.partition >= config.defaultPartitions)
    throw new PartitionNotFoundError(req.topic, req.partition, config.defaultPartitions);
  await topics.getOrCreate(req.topic, config.defaultPartitions);
}

/** The batch's partition of an existing topic, once the batch is known to fit it. */
function existingPartition(ctx: RpcContext, req: ProduceRequestView, input: AppendInput): Partition {
  const partition = ctx.core.topics.partition(req.topic, req.partition);
  checkBatchSize(req.topic, input.records.length, partition.maxBatchBytes);
  return partition;
}

function checkBatchSize(topic: string, size: number, limit: number): void {
  if (size > limit) {
    throw new LimitExceededError(
      `the batch is ${size} bytes; topic "${topic}" accepts at most ${limit} (max.batch.bytes): send smaller batches`,
    );
  }
}
