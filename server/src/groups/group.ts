/**
 * One consumer group's membership and partition ownership: a synchronous state machine with no
 * I/O (the coordinator feeds it time and topic sizes; the rpc layer turns its pushes into stream
 * messages). The protocol is in proto/rill/v1/group.proto.
 *
 * State:
 * - members: each with its topics, session deadline (renewed by heartbeats), the partitions it
 *   owns, and among those the ones it was asked to give up (`revoking`);
 * - owners: partition → the one member that owns it and the generation in which it got it;
 * - target: the range assignment (range-assignor.ts) of the current member set.
 *
 * Invariants:
 * - a partition has at most one owner, at every instant: it is granted to its target member only
 *   when nobody owns it, i.e. after the old owner released it or was removed;
 * - the generation grows by one on every rebalance (join, leave, removal, topic change), and every
 *   member is sent its assignment after every rebalance;
 * - a member that neither heartbeats nor releases what it was asked to give up within its session
 *   timeout is removed (expire()), which frees its partitions;
 * - a commit is accepted only from a member that owns the partition, with a generation no older
 *   than the one in which it was granted that partition (an older one comes from a previous period
 *   of ownership and could move the offset backwards) and no newer than the group's.
 */
import { FailedPreconditionError } from "../broker/errors.js";
import { type Assignment, compareIds, rangeAssign } from "./range-assignor.js";

/** A partition of a topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** What a member is told: sent when it joins and after every change. */
export interface MemberAssignment {
  memberId: string;
  generation: number;
  /** Owned and not being revoked: read these. */
  assigned: TopicPartition[];
  /** Owned but to be given up: stop, commit, release. */
  revoking: TopicPartition[];
  sessionTimeoutMs: number;
}

/** Why a member left; the stream of a removed member ends with this. */
export type RemovalReason = "left" | "session-expired" | "release-timeout";

/** How the group talks to a member's JoinGroup stream. */
export interface MemberSink {
  push(assignment: MemberAssignment): void;
  /** The member is gone: end its stream (an error status unless it left by itself). */
  end(reason: RemovalReason, message: string): void;
}

export interface JoinInput {
  memberId: string;
  name: string;
  topics: readonly string[];
  sessionTimeoutMs: number;
  address: string;
  sink: MemberSink;
}

export interface Member {
  readonly id: string;
  readonly name: string;
  readonly topics: readonly string[];
  readonly sessionTimeoutMs: number;
  readonly address: string;
  readonly sink: MemberSink;
  /** Heartbeat deadline (clock ms). */
  deadline: number;
  readonly owned: Set<string>;
  /** How far postpone() moved this member's deadlines since it last answered (capped). */
  postponedMs: number;
  /** Owned partitions it was asked to give up → when it must have released each (clock ms). */
  readonly revoking: Map<string, number>;
}

interface Ownership {
  memberId: string;
  grantedIn: number;
}

export type GroupStateName = "empty" | "stable" | "rebalancing";

export function partitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`; // topic names never contain "/"
}

export function parseKey(key: string): TopicPartition {
  const slash = key.lastIndexOf("/");
  return { topic: key.slice(0, slash), partition: Number(key.slice(slash + 1)) };
}

export class Group {
  private gen = 0;
  private readonly memberMap = new Map<string, Member>();
  private readonly owners = new Map<string, Ownership>();
  private target: Assignment = new Map();
  private draining = false;

  constructor(
    readonly id: string,
    /** A topic's partition count, or undefined if it does not exist. */
    private readonly partitionCount: (topic: string) => number | undefined,
    private readonly now: () => number,
  ) {}

  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.memberMap.size;
  }

  members(): Member[] {
    return [...this.memberMap.values()].sort((a, b) => compareIds(a.id, b.id));
  }

  member(memberId: string): Member | undefined {
    return this.memberMap.get(memberId);
  }

  /** Every topic some member reads. */
  topics(): Set<string> {
    const out = new Set<string>();
    for (const m of this.memberMap.values()) for (const t of m.topics) out.add(t);
    return out;
  }

  /** The owner of a partition, if any. */
  ownerOf(topic: string, partition: number): string | undefined {
    return this.owners.get(partitionKey(topic, partition))?.memberId;
  }

  get state(): GroupStateName {
    if (this.memberMap.size === 0) return "empty";
    for (const m of this.memberMap.values()) {
      if (m.revoking.size > 0) return "rebalancing";
      for (const [topic, parts] of this.target.get(m.id) ?? []) {
        for (const p of parts) if (!m.owned.has(partitionKey(topic, p))) return "rebalancing";
      }
    }
    return "stable";
  }

  join(input: JoinInput): Member {
    const member: Member = {
      id: input.memberId,
      name: input.name,
      topics: [...new Set(input.topics)].sort(compareIds),
      sessionTimeoutMs: input.sessionTimeoutMs,
      address: input.address,
      sink: input.sink,
      deadline: this.now() + input.sessionTimeoutMs,
      owned: new Set(),
      revoking: new Map(),
      postponedMs: 0,
    };
    this.memberMap.set(member.id, member);
    this.rebalance();
    return member;
  }

  /** Renews the member's session; throws if it is not in the group. */
  heartbeat(memberId: string): void {
    const m = this.require(memberId);
    m.deadline = this.now() + m.sessionTimeoutMs;
    m.postponedMs = 0;
  }

  /**
   * The member gives up partitions (normally those it was asked to revoke); partitions it does not
   * own, or was granted again after `generation` (a release about an older ownership; 0 = any), are
   * ignored, so a retried or late release is harmless. Freed partitions go to their target owners.
   */
  release(memberId: string, partitions: readonly TopicPartition[], generation = 0): void {
    const m = this.require(memberId);
    m.deadline = this.now() + m.sessionTimeoutMs; // answering is a sign of life
    m.postponedMs = 0;
    let freed = false;
    for (const { topic, partition } of partitions) {
      const key = partitionKey(topic, partition);
      if (!m.owned.has(key)) continue;
      if (generation > 0 && (this.owners.get(key)?.grantedIn ?? 0) > generation) continue;
      m.owned.delete(key);
      m.revoking.delete(key);
      this.owners.delete(key);
      freed = true;
    }
    if (freed) this.reconcile(new Set([m.id]));
  }

  /** Removes a member (left, or expired); returns false if it was not in the group. */
  remove(memberId: string, reason: RemovalReason, message: string): boolean {
    const m = this.memberMap.get(memberId);
    if (!m) return false;
    this.memberMap.delete(memberId);
    for (const key of m.owned) this.owners.delete(key);
    m.owned.clear();
    m.revoking.clear();
    m.sink.end(reason, message);
    this.rebalance();
    return true;
  }

  /**
   * Moves every deadline `ms` later (the broker itself stalled for that long), by at most one
   * session timeout in all between two signs of life, so a broker that stays overloaded still
   * removes members that are really gone.
   */
  postpone(ms: number): void {
    for (const m of this.memberMap.values()) {
      const add = Math.max(0, Math.min(ms, m.sessionTimeoutMs - m.postponedMs));
      if (add === 0) continue;
      m.postponedMs += add;
      m.deadline += add;
      for (const [key, deadline] of m.revoking) m.revoking.set(key, deadline + add);
    }
  }

  /** Removes members past their heartbeat or release deadline; returns how many. */
  expire(): number {
    const now = this.now();
    let removed = 0;
    for (const m of [...this.memberMap.values()]) {
      if (now > m.deadline) {
        this.remove(
          m.id,
          "session-expired",
          `member ${m.id} sent no heartbeat for ${m.sessionTimeoutMs} ms (its session timeout) and was removed from group "${this.id}"; join again`,
        );
        removed++;
      } else if ([...m.revoking.values()].some((deadline) => now > deadline)) {
        this.remove(
          m.id,
          "release-timeout",
          `member ${m.id} did not release its revoked partitions within ${m.sessionTimeoutMs} ms (its session timeout) and was removed from group "${this.id}"; join again`,
        );
        removed++;
      }
    }
    return removed;
  }

  /**
   * A new generation: recompute the range assignment, ask owners to give up what moves, grant
   * what is free, and tell every member where it stands.
   */
  rebalance(): void {
    this.gen++;
    this.target = this.draining ? new Map() : rangeAssign([...this.memberMap.values()], this.partitionCount);
    this.reconcile(new Set(this.memberMap.keys()));
  }

  /** Moves ownership toward the target; pushes to `notify` and every member whose state changed. */
  private reconcile(notify: Set<string>): void {
    const now = this.now();
    const wanted = new Map<string, string>(); // partition → target member
    for (const [memberId, topics] of this.target) {
      for (const [topic, parts] of topics)
        for (const p of parts) wanted.set(partitionKey(topic, p), memberId);
    }
    for (const m of this.memberMap.values()) {
      for (const key of [...m.owned]) {
        const goal = wanted.get(key);
        if (goal === undefined && !this.exists(key)) {
          // The partition is gone (topic deleted): nothing to hand over.
          m.owned.delete(key);
          m.revoking.delete(key);
          this.owners.delete(key);
          notify.add(m.id);
        } else if (goal !== m.id && !m.revoking.has(key)) {
          m.revoking.set(key, now + m.sessionTimeoutMs);
          notify.add(m.id);
        } else if (goal === m.id && m.revoking.has(key)) {
          m.revoking.delete(key); // the assignment moved it back: keep it
          notify.add(m.id);
        }
      }
    }
    for (const [key, memberId] of wanted) {
      if (this.owners.has(key)) continue;
      const m = this.memberMap.get(memberId)!;
      this.owners.set(key, { memberId, grantedIn: this.gen });
      m.owned.add(key);
      notify.add(memberId);
    }
    for (const id of [...notify].sort(compareIds)) {
      const m = this.memberMap.get(id);
      if (m) m.sink.push(this.assignmentOf(m));
    }
  }

  private exists(key: string): boolean {
    const { topic, partition } = parseKey(key);
    const count = this.partitionCount(topic);
    return count !== undefined && partition < count;
  }

  assignmentOf(m: Member): MemberAssignment {
    const assigned: TopicPartition[] = [];
    const revoking: TopicPartition[] = [];
    for (const key of m.owned) (m.revoking.has(key) ? revoking : assigned).push(parseKey(key));
    return {
      memberId: m.id,
      generation: this.gen,
      assigned: sortPartitions(assigned),
      revoking: sortPartitions(revoking),
      sessionTimeoutMs: m.sessionTimeoutMs,
    };
  }

  /**
   * The broker is shutting down: a last rebalance asks every member to give up everything (commit
   * and release), so the group's progress is saved before the streams end.
   */
  drain(): void {
    this.draining = true;
    this.rebalance();
  }

  /** How many partitions members own. */
  get ownedCount(): number {
    return this.owners.size;
  }

  /** Throws FailedPreconditionError unless `memberId` may commit these partitions at `generation`. */
  checkCommit(memberId: string, generation: number, partitions: readonly TopicPartition[]): void {
    this.require(memberId);
    if (generation > this.gen || generation < 1) {
      throw new FailedPreconditionError(
        `generation ${generation} is not one group "${this.id}" has had (current: ${this.gen}); commit with the generation of the latest JoinGroup message`,
      );
    }
    for (const { topic, partition } of partitions) {
      const owner = this.owners.get(partitionKey(topic, partition));
      if (owner?.memberId !== memberId) {
        throw new FailedPreconditionError(
          `member ${memberId} does not own partition ${partition} of topic "${topic}" in group "${this.id}"; commit only partitions of your latest assignment`,
        );
      }
      if (generation < owner.grantedIn) {
        throw new FailedPreconditionError(
          `stale generation ${generation}: member ${memberId} got partition ${partition} of topic "${topic}" in generation ${owner.grantedIn}; an older commit would move its offset backwards`,
        );
      }
    }
  }

  private require(memberId: string): Member {
    const m = this.memberMap.get(memberId);
    if (!m) {
      throw new FailedPreconditionError(
        `member "${memberId}" is not in group "${this.id}" (it left, or its session expired); join the group again`,
      );
    }
    return m;
  }
}

export function sortPartitions(list: TopicPartition[]): TopicPartition[] {
  return list.sort((a, b) => compareIds(a.topic, b.topic) || a.partition - b.partition);
}
