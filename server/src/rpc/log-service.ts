/**
 * LogService: Produce, ProduceSession (produce-session.ts), Fetch, ListOffsets. Thin: it validates,
 * calls the broker layer and maps errors through status.ts. Produce requests arrive as lazy views
 * (codecs/produce-request.ts, codecs/produce-session.ts) and are appended by produce-append.ts;
 * Fetch responses leave as raw segment bytes (codecs/fetch-response.ts): no record is decoded or
 * re-encoded on this path.
 */
import { once } from "node:events";
import {
  Metadata,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  type FetchRequest,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  LogServiceService,
  OffsetPosition,
  type ProduceResponse,
  type ProduceResult,
} from "../../../clients/ts/src/gen/rill/v1/log.js";
import {
  InvalidRequestError,
  LimitExceededError,
  PartitionNotFoundError,
  ShuttingDownError,
  TopicNotFoundError,
} from "../broker/errors.js";
import type { Partition } from "../broker/partition.js";
import { validateTopicName } from "../broker/topic-name.js";
import { LogClosedError, OffsetOutOfRangeError } from "../storage/errors.js";
import { accessOf } from "./auth/access.js";
import { buildFetchResponse } from "./codecs/fetch-response.js";
import { decodeProduceRequestView, type ProduceRequestView } from "./codecs/produce-request.js";
import { decodeProduceSessionRequestView } from "./codecs/produce-session.js";
import { type OpenStream, type RpcContext, track } from "./context.js";
import { appendBatch } from "./produce-append.js";
import { produceSession, type SessionCall } from "./produce-session.js";
import { toServiceError } from "./status.js";

/** The trailer that tells a producer how many batches of a failed stream were appended. */
export const APPENDED_BATCHES_TRAILER = "rill-appended-batches";

/** LogService with the broker's own codecs on the hot path; everything else is generated. */
export const logServiceDefinition: ServiceDefinition = {
  ...LogServiceService,
  produce: { ...LogServiceService.produce, requestDeserialize: decodeProduceRequestView },
  produceSession: {
    ...LogServiceService.produceSession,
    requestDeserialize: decodeProduceSessionRequestView,
    responseSerialize: (answer: Buffer) => answer,
  },
  fetch: { ...LogServiceService.fetch, responseSerialize: (frames: Buffer) => frames },
} as unknown as ServiceDefinition;

export function logServiceImplementation(ctx: RpcContext): UntypedServiceImplementation {
  return {
    produce: (
      call: ServerReadableStream<ProduceRequestView, ProduceResponse>,
      cb: sendUnaryData<ProduceResponse>,
    ) => void track(ctx, produce(ctx, call, cb)),
    produceSession: (call: SessionCall) => void track(ctx, produceSession(ctx, call)),
    fetch: (call: ServerWritableStream<FetchRequest, Buffer>) => void track(ctx, fetch(ctx, call)),
    listOffsets: (
      call: ServerUnaryCall<ListOffsetsRequest, ListOffsetsResponse>,
      cb: sendUnaryData<ListOffsetsResponse>,
    ) =>
      void track(ctx, listOffsets(ctx, call.request)).then(
        (r) => cb(null, r),
        (err) => cb(toServiceError(err, ctx.logger)),
      ),
  };
}

// ---------------------------------------------------------------------------------------------
// Produce

async function produce(
  ctx: RpcContext,
  call: ServerReadableStream<ProduceRequestView, ProduceResponse>,
  cb: sendUnaryData<ProduceResponse>,
): Promise<void> {
  const { maxBatchesPerProduceStream } = ctx.core.config;
  const access = accessOf(call);
  const results: ProduceResult[] = [];
  /** The fsyncs FSYNCED batches wait for, with the index of the first batch each covers. */
  const syncs: { index: number; done: Promise<void> }[] = [];
  const onCancel = () => call.destroy();
  call.once("cancelled", onCancel);
  try {
    for await (const req of call as AsyncIterable<ProduceRequestView>) {
      if (ctx.draining) throw new ShuttingDownError();
      if (results.length >= maxBatchesPerProduceStream) {
        throw new LimitExceededError(
          `a Produce stream may carry at most ${maxBatchesPerProduceStream} batches (max.batches.per.produce.stream): end this stream and open another`,
        );
      }
      const { partition, appended, fsync } = await appendBatch(ctx, req, access);
      results.push({
        topic: req.topic,
        partition: req.partition,
        baseOffset: appended.baseOffset,
        recordCount: appended.recordCount,
        appendTimeMs: BigInt(appended.appendTimeMs),
      });
      if (fsync) {
        const done = partition.sync();
        done.catch(() => {}); // awaited below; a failure while the stream is open must not go unhandled
        syncs.push({ index: results.length - 1, done });
      }
    }
    await Promise.all(syncs.map((s) => s.done));
    cb(null, { results });
  } catch (err) {
    // Batches whose fsync failed are not acknowledged: the trailer counts only the batches before
    // the first of them, so the producer resends the rest (at least once, never silently lost).
    let acknowledged = results.length;
    let cause = err;
    const settled = await Promise.allSettled(syncs.map((s) => s.done));
    settled.forEach((r, i) => {
      if (r.status === "rejected" && syncs[i]!.index < acknowledged) {
        acknowledged = syncs[i]!.index;
        cause = r.reason;
      }
    });
    const trailer = new Metadata();
    trailer.set(APPENDED_BATCHES_TRAILER, String(acknowledged));
    cb(toServiceError(cause, ctx.logger, trailer));
  } finally {
    call.off("cancelled", onCancel);
  }
}

// ---------------------------------------------------------------------------------------------
// Fetch

async function resolveStart(partition: Partition, req: FetchRequest): Promise<bigint> {
  const start = req.start;
  switch (start?.$case) {
    case "offset":
      return start.value;
    case "position":
      if (start.value === OffsetPosition.OFFSET_POSITION_EARLIEST) return partition.logStartOffset;
      if (start.value === OffsetPosition.OFFSET_POSITION_LATEST) return partition.highWatermark;
      throw new InvalidRequestError(`unknown position ${start.value}; use EARLIEST or LATEST`);
    case "timestampMs":
      return (await partition.log.offsetForTimestamp(toTimestamp(start.value))) ?? partition.highWatermark;
    default:
      throw new InvalidRequestError("set where to start: offset, position (EARLIEST/LATEST) or timestamp_ms");
  }
}

function toTimestamp(ms: bigint): number {
  if (ms < 0n) throw new InvalidRequestError(`timestamp_ms must be >= 0, not ${ms}`);
  return ms > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(ms);
}

async function fetch(ctx: RpcContext, call: ServerWritableStream<FetchRequest, Buffer>): Promise<void> {
  const { config, topics } = ctx.core;
  const abort = new AbortController();
  let ended = false;
  const end = (err?: unknown) => {
    if (ended) return;
    ended = true;
    abort.abort();
    ctx.streams.delete(stream);
    if (err === undefined) call.end();
    else call.emit("error", toServiceError(err, ctx.logger));
  };
  const stream: OpenStream = { drain: () => end(new ShuttingDownError()), sentBytes: 0, blocked: false };
  call.once("cancelled", () => end());
  call.once("error", () => end());
  // Registered before the first await, so a drain that begins meanwhile still ends this stream.
  ctx.streams.add(stream);
  try {
    if (ctx.draining) throw new ShuttingDownError();
    const req = call.request;
    const access = accessOf(call);
    validateTopicName(req.topic);
    if (req.start === undefined) {
      throw new InvalidRequestError("set where to start: offset, position (EARLIEST/LATEST) or timestamp_ms");
    }
    const partition = topics.partition(req.topic, req.partition);
    const maxBytes = Math.min(
      req.maxBytes === 0 ? config.fetchDefaultMaxBytes : req.maxBytes,
      config.fetchMaxBytes,
    );
    let next = await resolveStart(partition, req);
    const stopAt = req.follow ? undefined : partition.highWatermark;
    if (next < partition.logStartOffset || next > partition.highWatermark) {
      throw new OffsetOutOfRangeError(next, partition.logStartOffset, partition.highWatermark);
    }
    while (!ended) {
      if (partition.isClosed) {
        throw ctx.draining ? new ShuttingDownError() : new TopicNotFoundError(req.topic);
      }
      if (stopAt !== undefined && next >= stopAt) break;
      if (next >= partition.highWatermark) {
        const woke = await partition.waitForData(next, config.fetchHeartbeatMs, abort.signal);
        if (!woke && !ended)
          await write(
            call,
            stream,
            buildFetchResponse(Buffer.alloc(0), partition.highWatermark, partition.logStartOffset),
            abort.signal,
          );
        continue;
      }
      // Quota (auth/quota.ts): a principal in debt, from this call or another, waits before reading.
      const debt = access?.payDebt("fetch", abort.signal);
      if (debt) {
        await debt.catch(() => {}); // ended: the check below stops the loop
        if (ended) break;
      }
      const read = await partition.log.read(next, maxBytes, stopAt);
      if (ended) break;
      if (read.batchCount === 0) {
        // Storage returns at least one whole batch for any offset below the high watermark; if it
        // ever does not, fail the stream rather than spin.
        throw new Error(
          `no batch readable at offset ${next} below the high watermark ${partition.highWatermark}`,
        );
      }
      next = read.nextOffset;
      ctx.observer?.fetched(req.topic, read.data, read.batchCount);
      await write(
        call,
        stream,
        buildFetchResponse(read.data, partition.highWatermark, partition.logStartOffset, read.spare),
        abort.signal,
      );
      // Quota (auth/quota.ts): over its rate, the next read waits.
      const wait = access?.throttle("fetch", read.data.length, abort.signal);
      if (wait) await wait;
    }
    end();
  } catch (err) {
    if (ended) return;
    // A log closed under a read: its topic was deleted, unless the broker is draining.
    end(err instanceof LogClosedError && !ctx.draining ? new TopicNotFoundError(call.request.topic) : err);
  }
}

/** Writes one response, waiting for `drain` when gRPC's buffer is full (bounded memory per stream). */
async function write(
  call: ServerWritableStream<FetchRequest, Buffer>,
  stream: OpenStream,
  message: Buffer,
  signal: AbortSignal,
): Promise<void> {
  stream.sentBytes += message.length;
  if (call.write(message)) return;
  stream.blocked = true;
  try {
    await once(call, "drain", { signal });
  } catch {
    // aborted: the stream is ending
  } finally {
    stream.blocked = false;
  }
}

// ---------------------------------------------------------------------------------------------
// ListOffsets

async function listOffsets(ctx: RpcContext, req: ListOffsetsRequest): Promise<ListOffsetsResponse> {
  const topic = ctx.core.topics.require(req.topic);
  const wanted =
    req.partitions.length > 0
      ? [...new Set(req.partitions)].sort((a, b) => a - b)
      : topic.partitions.map((p) => p.index);
  const timestamp = req.timestampMs === undefined ? undefined : toTimestamp(req.timestampMs);
  const partitions = [];
  for (const index of wanted) {
    // From the topic looked up once: a concurrent delete and re-create cannot mix two topics here.
    const p = topic.partitions[index];
    if (!Number.isInteger(index) || index < 0 || !p) {
      throw new PartitionNotFoundError(req.topic, index, topic.partitions.length);
    }
    const entry: ListOffsetsResponse["partitions"][number] = {
      partition: index,
      earliest: p.logStartOffset,
      latest: p.highWatermark,
      timestampOffset: undefined,
    };
    if (timestamp !== undefined)
      entry.timestampOffset = (await p.log.offsetForTimestamp(timestamp)) ?? p.highWatermark;
    partitions.push(entry);
  }
  return { partitions };
}
