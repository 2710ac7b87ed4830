/**
 * Partition counts per topic, from ClusterService.GetMetadata, cached for `maxAgeMs` and dropped on
 * demand (NOT_FOUND, an out-of-range partition, the first ack of an auto-created topic). One request
 * per topic at a time; retriable failures are retried with the producer's policy. A `null` count
 * means the broker does not know the topic (yet).
 */
import type { Metadata } from "@grpc/grpc-js";
import { type Connection, unaryCall } from "../connection.js";
import { fromGrpcError, TopicNotFoundError } from "../errors.js";
import type { GetMetadataRequest, GetMetadataResponse } from "../gen/rill/v1/cluster.js";
import { type RetryOptions, retry } from "../retry.js";

/** What the cache needs from the producer. */
export interface PartitionCountsContext {
  connection: Connection;
  retry: Partial<RetryOptions>;
  requestTimeoutMs: number;
}

/** Partition counts per topic; see the file header. */
export class PartitionCounts {
  private readonly counts = new Map<string, { count: number | null; at: number }>();
  private readonly inflight = new Map<string, Promise<number | null>>();

  constructor(
    private readonly ctx: PartitionCountsContext,
    private readonly maxAgeMs: number,
  ) {}

  /** The cached count (null: unknown topic), or undefined if it must be looked up. */
  cached(topic: string): number | null | undefined {
    const e = this.counts.get(topic);
    if (e === undefined) return undefined;
    if (Date.now() - e.at > this.maxAgeMs) return undefined;
    return e.count;
  }

  invalidate(topic: string): void {
    this.counts.delete(topic);
  }

  /** Looks the count up (one request per topic at a time). */
  fetch(topic: string): Promise<number | null> {
    const pending = this.inflight.get(topic);
    if (pending) return pending;
    const request: GetMetadataRequest = { topics: [topic] };
    const { connection, requestTimeoutMs } = this.ctx;
    const p = retry(
      () =>
        unaryCall<GetMetadataRequest, GetMetadataResponse>(
          (req, md: Metadata, opts, cb) => connection.cluster.getMetadata(req, md, opts, cb),
          request,
          connection.metadata(),
          requestTimeoutMs,
        ),
      this.ctx.retry,
    )
      .then(
        (res) => {
          const t = res.topics.find((x) => x.topic === topic);
          const count = t && t.partitions.length > 0 ? t.partitions.length : null;
          this.counts.set(topic, { count, at: Date.now() });
          return count;
        },
        (e: unknown) => {
          const err = fromGrpcError(e);
          if (err instanceof TopicNotFoundError) {
            this.counts.set(topic, { count: null, at: Date.now() });
            return null;
          }
          throw err;
        },
      )
      .finally(() => this.inflight.delete(topic));
    this.inflight.set(topic, p);
    return p;
  }
}
