/**
 * The partitions of a group subscription (group-subscription.ts): the per-partition state a member
 * keeps while it owns a partition, the conversions to and from the wire's TopicPartitions, and
 * {@link planAssignment}, which compares what the member owns with one JoinGroup message (always
 * the member's full assignment) and says what changes. Pure: no I/O, no events.
 */
import type { TopicPartitions } from "../gen/rill/v1/group.js";
import type { PartitionFetcher } from "./partition-fetcher.js";

/** One partition of one topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** One owned partition. A new state is made each time the partition is granted. */
export interface PartitionState {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  fetcher: PartitionFetcher | undefined;
  /** Fetching stopped for good (revoked, lost, gone, closed). */
  stopped: boolean;
  /** The broker listed it under `revoking`. */
  revokeRequested: boolean;
  /** The generation of the latest message that listed it under `revoking` (sent with the release). */
  revokeGeneration: bigint;
  /** The revocation (commit, "revoked", release) is under way. */
  releasing: boolean;
  /** "revoked" was emitted for it. */
  revokedEmitted: boolean;
  /**
   * Its fetch found the topic or partition gone (NOT_FOUND; the topic was deleted) while the member
   * knew of this generation: nothing of it is read, committed or released any more, and the
   * broker's next message drops it from the assignment.
   */
  goneIn: bigint | undefined;
  /** One past the last processed record. */
  processed: bigint | undefined;
  /** What the group has committed for it, as far as this member knows. */
  committed: bigint | undefined;
}

export function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export function byTopicPartition(a: TopicPartition, b: TopicPartition): number {
  return a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;
}

/** A fresh state for a partition just granted. */
export function newPartitionState(tp: TopicPartition): PartitionState {
  return {
    key: keyOf(tp.topic, tp.partition),
    topic: tp.topic,
    partition: tp.partition,
    fetcher: undefined,
    stopped: false,
    revokeRequested: false,
    revokeGeneration: 0n,
    releasing: false,
    revokedEmitted: false,
    goneIn: undefined,
    processed: undefined,
    committed: undefined,
  };
}

/** TopicPartitions on the wire → key → TopicPartition. */
export function fromWire(list: readonly TopicPartitions[]): Map<string, TopicPartition> {
  const out = new Map<string, TopicPartition>();
  for (const tp of list)
    for (const p of tp.partitions) out.set(keyOf(tp.topic, p), { topic: tp.topic, partition: p });
  return out;
}

/** TopicPartition list → TopicPartitions on the wire (sorted). */
export function toWire(list: readonly TopicPartition[]): TopicPartitions[] {
  const byTopic = new Map<string, number[]>();
  for (const tp of [...list].sort(byTopicPartition)) {
    const ps = byTopic.get(tp.topic) ?? [];
    ps.push(tp.partition);
    byTopic.set(tp.topic, ps);
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}

/** One JoinGroup message, as far as the assignment goes. */
export interface AssignmentMessage {
  generation: bigint;
  assigned: readonly TopicPartitions[];
  revoking: readonly TopicPartitions[];
}

/** What one message changes for a member owning `owned`. */
export interface AssignmentPlan {
  /**
   * Owned partitions to stop and report revoked without a commit or a release: the message lists
   * them nowhere (taken without a revocation, e.g. their topic was deleted), or they are gone and a
   * newer generation still assigns them (a topic re-created: they start again, as `fresh`).
   */
  dropped: PartitionState[];
  /** Owned partitions whose revocation, not yet started, the message cancels. */
  kept: PartitionState[];
  /** Owned partitions the message asks to give up. */
  revoke: PartitionState[];
  /** Partitions under `revoking` that the member never started (granted and taken back unseen). */
  releaseUnowned: TopicPartition[];
  /** Partitions to start reading. */
  fresh: TopicPartition[];
}

/** Compares `owned` with the full assignment `message` (see {@link AssignmentPlan}). */
export function planAssignment(
  owned: ReadonlyMap<string, PartitionState>,
  message: AssignmentMessage,
): AssignmentPlan {
  const assigned = fromWire(message.assigned);
  const revoking = fromWire(message.revoking);
  const plan: AssignmentPlan = { dropped: [], kept: [], revoke: [], releaseUnowned: [], fresh: [] };
  for (const s of owned.values()) {
    const restart = s.goneIn !== undefined && message.generation > s.goneIn && assigned.has(s.key);
    if (restart || (!assigned.has(s.key) && !revoking.has(s.key))) plan.dropped.push(s);
    else if (revoking.has(s.key)) plan.revoke.push(s);
    else if (s.revokeRequested && !s.releasing) plan.kept.push(s);
  }
  const droppedKeys = new Set(plan.dropped.map((s) => s.key));
  for (const [key, tp] of revoking) if (!owned.has(key)) plan.releaseUnowned.push(tp);
  for (const [key, tp] of assigned) {
    if (revoking.has(key)) continue;
    if (!owned.has(key) || droppedKeys.has(key)) plan.fresh.push(tp);
  }
  return plan;
}
