/**
 * The broker's Prometheus metrics, in a Registry of its own (never prom-client's global one), so
 * several brokers in one process (tests) do not collide. Metrics observe the broker through small
 * interfaces the broker and RPC layers define (PartitionHooks, RpcObserver): nothing outside this
 * folder imports prom-client, and the hot path pays a few map lookups and additions per batch.
 *
 * Counted as it happens:
 *   rill_records_in_total{topic}, rill_bytes_in_total{topic}     batches appended by Produce
 *   rill_records_out_total{topic}, rill_bytes_out_total{topic}   batches sent by Fetch
 *     (bytes are stored-frame bytes both ways — the records as the producer sent them plus the
 *     broker's 48-56 byte frame header per batch — so out/in is the read fan-out; records out are
 *     counted from the frame headers' record_count, never by decoding records)
 *   rill_rpc_handled_total{service,method,code}, rill_rpc_duration_seconds{service,method,code},
 *   rill_rpc_in_flight{service,method}     (a stream's duration runs to its end: Fetch, JoinGroup)
 *   rill_fsync_duration_seconds, rill_fsync_errors_total   every partition fsync (group commit)
 * Read on each scrape:
 *   rill_partition_high_watermark / _log_start_offset / _size_bytes / _segments{topic,partition}
 *   rill_group_members{group}, rill_group_lag{group,topic,partition} (as `rill group describe`)
 *   rill_streams_blocked   open Fetch/JoinGroup streams waiting for their client to read
 *   rill_quota_throttle_seconds_total{kind}   waits imposed by byte-rate quotas (produce, fetch)
 * Plus prom-client's default process metrics (nodejs_*, process_*: event-loop lag, heap, GC, CPU,
 * file descriptors) under their usual names.
 *
 * Cardinality: labels are topics, partitions, groups, gRPC methods and status codes only — never
 * clients, members or offsets. Topics x partitions is bounded by what the broker holds (at most
 * 10,000 partitions a topic); a deleted topic's series are removed. Groups are bounded by the
 * groups with members or committed offsets (`rill group delete` removes one).
 */
import { status as Status } from "@grpc/grpc-js";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BrokerCore } from "../broker/broker.js";
import type { Partition } from "../broker/partition.js";
import type { RpcContext } from "../rpc/context.js";
import type { RpcObserver } from "../rpc/observe.js";
import { frameBytes } from "../storage/batch-frame.js";
import { countFrameRecords } from "./frames.js";

const RPC_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];
const FSYNC_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

interface TopicCounters {
  recordsIn: Counter.Internal;
  bytesIn: Counter.Internal;
  recordsOut: Counter.Internal;
  bytesOut: Counter.Internal;
}

interface CallMetrics {
  handled: Counter.Internal;
  duration: Histogram.Internal<"service" | "method" | "code">;
}

export class BrokerMetrics implements RpcObserver {
  readonly registry = new Registry();
  private readonly recordsIn: Counter<"topic">;
  private readonly bytesIn: Counter<"topic">;
  private readonly recordsOut: Counter<"topic">;
  private readonly bytesOut: Counter<"topic">;
  private readonly rpcHandled: Counter<"service" | "method" | "code">;
  private readonly rpcDuration: Histogram<"service" | "method" | "code">;
  private readonly rpcInFlight: Gauge<"service" | "method">;
  private readonly fsyncDuration: Histogram;
  private readonly fsyncErrors: Counter;
  private readonly topicCounters = new Map<string, TopicCounters>();
  private readonly callMetrics = new Map<string, CallMetrics>();
  private readonly inFlight = new Map<string, Gauge.Internal<"service" | "method">>();
  private unsubscribe: (() => void) | undefined;
  private readonly onFlushed = (_partition: Partition, seconds: number, ok: boolean) => {
    this.fsyncDuration.observe(seconds);
    if (!ok) this.fsyncErrors.inc();
  };

  constructor(
    private readonly core: BrokerCore,
    private readonly rpc: RpcContext,
  ) {
    const registers = [this.registry];
    const topicCounter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ["topic"] as const, registers });
    this.recordsIn = topicCounter("rill_records_in_total", "Records appended by Produce.");
    this.bytesIn = topicCounter(
      "rill_bytes_in_total",
      "Bytes of stored batches appended by Produce (records plus frame headers).",
    );
    this.recordsOut = topicCounter("rill_records_out_total", "Records sent by Fetch.");
    this.bytesOut = topicCounter(
      "rill_bytes_out_total",
      "Bytes of stored batches sent by Fetch (records plus frame headers).",
    );
    const callLabels = ["service", "method", "code"] as const;
    this.rpcHandled = new Counter({
      name: "rill_rpc_handled_total",
      help: "RPCs that ended, by gRPC method and final status code.",
      labelNames: callLabels,
      registers,
    });
    this.rpcDuration = new Histogram({
      name: "rill_rpc_duration_seconds",
      help: "Time from the start of an RPC to its end (for a stream: until it ended), by method and status code.",
      labelNames: callLabels,
      buckets: RPC_BUCKETS,
      registers,
    });
    this.rpcInFlight = new Gauge({
      name: "rill_rpc_in_flight",
      help: "RPCs in progress, open streams included (Fetch, JoinGroup, health Watch).",
      labelNames: ["service", "method"] as const,
      registers,
    });
    this.fsyncDuration = new Histogram({
      name: "rill_fsync_duration_seconds",
      help: "Duration of partition fsyncs (one per group commit, shared by every produce it covers).",
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.fsyncErrors = new Counter({
      name: "rill_fsync_errors_total",
      help: "Partition fsyncs that failed (each takes its partition offline for writes).",
      registers,
    });
    this.partitionGauges();
    this.groupGauges();
    new Gauge({
      name: "rill_streams_blocked",
      help: "Open Fetch and JoinGroup streams waiting for their client to read (backpressure).",
      registers,
      collect() {
        let blocked = 0;
        for (const s of rpc.streams) if (s.blocked) blocked++;
        this.set(blocked);
      },
    });
    new Counter({
      name: "rill_quota_throttle_seconds_total",
      help: "Time Produce and Fetch calls were made to wait by byte-rate quotas (rpc/auth/quota.ts).",
      labelNames: ["kind"] as const,
      registers,
      collect() {
        const ms = rpc.auth?.quotas?.throttledMs;
        this.reset();
        for (const kind of ["produce", "fetch"] as const) this.inc({ kind }, (ms?.[kind] ?? 0) / 1000);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Starts observing the broker: RPCs, appends, fetches, fsyncs, topic deletions. */
  attach(): void {
    this.rpc.observer = this;
    this.core.topics.hooks.flushed = this.onFlushed;
    this.unsubscribe = this.core.topics.onChange((change) => {
      if (change.kind === "deleted") this.forgetTopic(change.topic);
    });
  }

  /** Stops observing (what was counted stays readable). */
  detach(): void {
    if (this.rpc.observer === this) this.rpc.observer = undefined;
    if (this.core.topics.hooks.flushed === this.onFlushed) this.core.topics.hooks.flushed = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  // RpcObserver -------------------------------------------------------------------------------

  started(service: string, method: string): void {
    this.inFlightOf(service, method).inc();
  }

  ended(service: string, method: string, code: Status, seconds: number): void {
    this.inFlightOf(service, method).dec();
    const key = `${service}/${method}/${code}`;
    let m = this.callMetrics.get(key);
    if (!m) {
      const labels = { service, method, code: Status[code] ?? String(code) };
      m = { handled: this.rpcHandled.labels(labels), duration: this.rpcDuration.labels(labels) };
      this.callMetrics.set(key, m);
    }
    m.handled.inc();
    m.duration.observe(seconds);
  }

  produced(topic: string, records: number, recordsBytes: number): void {
    const c = this.countersOf(topic);
    c.recordsIn.inc(records);
    c.bytesIn.inc(frameBytes(recordsBytes));
  }

  fetched(topic: string, frames: Buffer, batches: number): void {
    if (batches === 0) return;
    const c = this.countersOf(topic);
    c.recordsOut.inc(countFrameRecords(frames));
    c.bytesOut.inc(frames.length);
  }

  // -------------------------------------------------------------------------------------------

  private inFlightOf(service: string, method: string): Gauge.Internal<"service" | "method"> {
    const key = `${service}/${method}`;
    let g = this.inFlight.get(key);
    if (!g) {
      g = this.rpcInFlight.labels({ service, method });
      this.inFlight.set(key, g);
    }
    return g;
  }

  private countersOf(topic: string): TopicCounters {
    let c = this.topicCounters.get(topic);
    if (!c) {
      c = {
        recordsIn: this.recordsIn.labels(topic),
        bytesIn: this.bytesIn.labels(topic),
        recordsOut: this.recordsOut.labels(topic),
        bytesOut: this.bytesOut.labels(topic),
      };
      this.topicCounters.set(topic, c);
    }
    return c;
  }

  private forgetTopic(topic: string): void {
    if (!this.topicCounters.delete(topic)) return;
    for (const counter of [this.recordsIn, this.bytesIn, this.recordsOut, this.bytesOut])
      counter.remove(topic);
  }

  /** Gauges of every partition, read from the topic registry on each scrape. */
  private partitionGauges(): void {
    const { topics } = this.core;
    const registers = [this.registry];
    const labelNames = ["topic", "partition"] as const;
    const gauge = (name: string, help: string, value: (p: Partition) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const topic of topics.list()) {
            for (const p of topic.partitions) {
              if (p.isClosed) continue;
              this.set({ topic: topic.name, partition: String(p.index) }, value(p));
            }
          }
        },
      });
    gauge(
      "rill_partition_high_watermark",
      "The offset the next record of the partition will get (readable up to here).",
      (p) => Number(p.highWatermark),
    );
    gauge("rill_partition_log_start_offset", "The oldest retained offset of the partition.", (p) =>
      Number(p.logStartOffset),
    );
    gauge("rill_partition_size_bytes", "Bytes of the partition's segment files.", (p) => p.log.sizeBytes);
    gauge("rill_partition_segments", "Segment files of the partition.", (p) => p.log.segmentCount);
  }

  /** Group gauges, from the coordinator on each scrape (what `rill group describe` shows). */
  private groupGauges(): void {
    const { groups } = this.core;
    const registers = [this.registry];
    new Gauge({
      name: "rill_group_members",
      help: "Members of the consumer group.",
      labelNames: ["group"] as const,
      registers,
      collect() {
        this.reset();
        for (const g of groups.list()) this.set({ group: g.groupId }, g.memberCount);
      },
    });
    new Gauge({
      name: "rill_group_lag",
      help: "Records of the partition the group has not committed: high watermark minus committed offset (minus log start when nothing is committed).",
      labelNames: ["group", "topic", "partition"] as const,
      registers,
      collect() {
        this.reset();
        for (const g of groups.list()) {
          let partitions: ReturnType<typeof groups.describe>["partitions"];
          try {
            partitions = groups.describe(g.groupId).partitions;
          } catch {
            continue; // deleted between list and describe
          }
          for (const p of partitions) {
            this.set({ group: g.groupId, topic: p.topic, partition: String(p.partition) }, Number(p.lag));
          }
        }
      },
    });
  }
}
