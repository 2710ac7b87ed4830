/**
 * Partition choice for the producer: checks the partitions records name against the topic's
 * partition count, asks the partitioner for the others, and tells the partitioner when a batch is
 * sealed (so a sticky partitioner moves on).
 *
 * Invariants: a send's partitions are all chosen and checked before any of its records is appended,
 * so a partitioner that throws or answers a partition that does not exist fails the whole send;
 * every answer used is an integer in [0, numPartitions). Records of a topic the broker does not know
 * yet go to partition 0 unless they name one. A keyless record whose batch was sealed while its send
 * was being appended asks again ({@link PartitionChoice.askAgain}), keeping its first answer if the
 * partitioner then fails. A partitioner that throws in `onBatchSealed` is only logged.
 */
import { inspect } from "node:util";
import { InvalidArgumentError, RillError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { PartitionCounts } from "./partition-counts.js";
import type { Partitioner } from "./partitioner.js";
import type { Prepared } from "./producer-record.js";

/** Chooses and checks records' partitions; see the file header. */
export class PartitionChoice {
  /** Partition counts as used while partitioning (onBatchSealed needs them). */
  private readonly usedCounts = new Map<string, number>();
  /** Partitions of the topic being appended whose batch was sealed meanwhile. */
  private sealedNow: Set<number> | undefined;

  constructor(
    private readonly partitioner: Partitioner,
    private readonly counts: PartitionCounts,
    private readonly log: Logger,
  ) {}

  /**
   * Validates named partitions, refreshing the count once when one is out of range. Synchronous
   * (no promise) in the common case, so a send with cached metadata and buffer room enters the
   * accumulator before `send` returns and `writable` is up to date right after it.
   */
  check(
    topic: string,
    count: number | null,
    partitions: readonly (number | undefined)[],
  ): number | null | Promise<number | null> {
    let max = -1;
    for (const p of partitions) if (p !== undefined && p > max) max = p;
    if (count === null || max < count) return count;
    this.counts.invalidate(topic);
    return this.counts.fetch(topic).then((fresh) => {
      if (fresh === null || max < fresh) return fresh;
      throw new InvalidArgumentError(`partition ${max} of topic "${topic}" does not exist (it has ${fresh})`);
    });
  }

  /**
   * Every record's partition, before any is appended (so a send is all-or-nothing): the one it
   * names, else the partitioner's answer, which must be an integer in [0, numPartitions); partition
   * 0 for a topic the broker does not know yet. Throws on the first record it cannot place.
   */
  choose(topic: string, count: number | null, prepared: Prepared): number[] {
    const { keys, partitions } = prepared;
    const n = partitions.length;
    const chosen = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const named = partitions[i];
      chosen[i] = named ?? (count === null ? 0 : this.ask(topic, keys[i]!, count));
    }
    return chosen;
  }

  /** The partitioner's answer for one record, checked; throws a RillError naming what went wrong. */
  ask(topic: string, key: Buffer | null, numPartitions: number): number {
    let p: unknown;
    try {
      p = this.partitioner.partition({ topic, key, numPartitions });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new RillError(`the partitioner failed for a record of topic "${topic}": ${why}`, {
        cause: e,
        retriable: false,
      });
    }
    if (typeof p === "number" && Number.isInteger(p) && p >= 0 && p < numPartitions) return p;
    throw new InvalidArgumentError(
      `the partitioner returned ${inspect(p)} for a record of topic "${topic}", which has ` +
        `${numPartitions} partition${numPartitions === 1 ? "" : "s"}: a partition must be an integer ` +
        `from 0 to ${numPartitions - 1}`,
    );
  }

  /** The partitioner's new answer for a keyless record, or `fallback` if it fails (logged). */
  askAgain(topic: string, numPartitions: number, fallback: number): number {
    try {
      return this.ask(topic, null, numPartitions);
    } catch (e) {
      this.log.warn("partitioner failed after a batch was sealed; keeping its first answer", {
        topic,
        partition: fallback,
        error: (e as Error).message,
      });
      return fallback;
    }
  }

  /**
   * Starts appending a send's records to `topic` (with `numPartitions` as used): returns the set
   * that collects the partitions sealed until {@link endAppend}.
   */
  beginAppend(topic: string, numPartitions: number): ReadonlySet<number> {
    this.usedCounts.set(topic, numPartitions);
    const sealed = new Set<number>();
    this.sealedNow = sealed;
    return sealed;
  }

  endAppend(): void {
    this.sealedNow = undefined;
  }

  /** Tells the partitioner a batch was sealed; a partitioner that throws here is only logged. */
  onSealed(topic: string, partition: number): void {
    this.sealedNow?.add(partition);
    try {
      this.partitioner.onBatchSealed?.(topic, partition, this.usedCounts.get(topic) ?? 1);
    } catch (e) {
      this.log.warn("partitioner.onBatchSealed threw", { topic, partition, error: String(e) });
    }
  }
}
