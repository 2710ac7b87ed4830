/**
 * The group coordinator: every consumer group of this broker (group.ts holds one group's state
 * machine), their committed offsets (offset-store.ts, an internal log under <data>/groups/), and
 * the glue to topics: a topic that is created, deleted or gains partitions rebalances the groups
 * that read it, and a deleted topic's committed offsets are forgotten.
 *
 * Every request is validated before it touches state (DESIGN §2): group ids follow the topic-name
 * rules, topics must exist, offsets lie in [0, high watermark], session timeouts within the
 * broker's bounds. A group object exists only while it has members; its offsets outlive it.
 * Sessions are checked every EXPIRY_TICK_MS, so a member is removed at most that much after its
 * deadline.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import {
  BeyondHighWatermarkError,
  FailedPreconditionError,
  GroupNotFoundError,
  InvalidRequestError,
  LimitExceededError,
  ShuttingDownError,
} from "../broker/errors.js";
import { validateGroupId, validateTopicName } from "../broker/topic-name.js";
import type { TopicChange, TopicRegistry } from "../broker/topic-registry.js";
import type { Clock } from "../clock.js";
import type { BrokerConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { FileSystem } from "../storage/fs.js";
import {
  Group,
  type GroupStateName,
  type Member,
  type MemberSink,
  sortPartitions,
  type TopicPartition,
} from "./group.js";
import { type OffsetCommitInput, OffsetStore, type StoredOffset } from "./offset-store.js";
import { compareIds } from "./range-assignor.js";

const EXPIRY_TICK_MS = 100;
const MAX_MEMBER_NAME_BYTES = 255;
const MAX_METADATA_BYTES = 4096;
const MAX_TOPICS_PER_MEMBER = 1000;
const MAX_OFFSETS_PER_COMMIT = 100_000;

export interface GroupCoordinatorOptions {
  dataDir: string;
  topics: TopicRegistry;
  config: BrokerConfig;
  clock: Clock;
  logger: Logger;
  cleanShutdown: boolean;
  /** The storage seam of the offset store (default node:fs); crash and fault tests wrap it. */
  fs?: FileSystem | undefined;
}

export interface JoinRequest {
  groupId: string;
  memberName: string;
  topics: readonly string[];
  /** 0 = the broker default. */
  sessionTimeoutMs: number;
  address: string;
}

export type ResetTarget =
  | { kind: "earliest" }
  | { kind: "latest" }
  | { kind: "offset"; offset: bigint }
  | { kind: "timestamp"; ms: number };

export interface GroupSummaryInfo {
  groupId: string;
  state: GroupStateName;
  memberCount: number;
  topics: string[];
}

export interface GroupPartitionInfo extends TopicPartition {
  memberId: string;
  committed: bigint | undefined;
  logStartOffset: bigint;
  highWatermark: bigint;
  lag: bigint;
}

export interface GroupDescription {
  groupId: string;
  state: GroupStateName;
  generation: number;
  members: { member: Member; assigned: TopicPartition[]; revoking: TopicPartition[] }[];
  partitions: GroupPartitionInfo[];
}

export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private closed = false;
  private draining = false;
  /** performance.now() of the last session check, to notice event-loop stalls. */
  private lastTick = performance.now();

  private constructor(
    private readonly options: GroupCoordinatorOptions,
    private readonly store: OffsetStore,
  ) {
    this.timer = setInterval(() => this.expireAll(), EXPIRY_TICK_MS);
    this.timer.unref();
    this.unsubscribe = options.topics.onChange((change) => this.onTopicChange(change));
  }

  static async open(options: GroupCoordinatorOptions): Promise<GroupCoordinator> {
    const store = await OffsetStore.open({
      dir: join(options.dataDir, "groups"),
      clock: options.clock,
      logger: options.logger.child({ component: "groups" }),
      cleanShutdown: options.cleanShutdown,
      fs: options.fs,
    });
    return new GroupCoordinator(options, store);
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  private partitionCount = (topic: string): number | undefined =>
    this.options.topics.get(topic)?.partitions.length;

  /** Adds a member; its sink receives its first assignment before this returns. */
  join(req: JoinRequest, sink: MemberSink): Member {
    const { config } = this.options;
    if (this.draining) throw new ShuttingDownError();
    validateGroupId(req.groupId);
    const name = req.memberName === "" ? "member" : req.memberName;
    if (Buffer.byteLength(name) > MAX_MEMBER_NAME_BYTES) {
      throw new InvalidRequestError(`member_name is longer than ${MAX_MEMBER_NAME_BYTES} bytes`);
    }
    if (req.topics.length === 0)
      throw new InvalidRequestError("topics is empty; name at least one topic to read");
    if (req.topics.length > MAX_TOPICS_PER_MEMBER) {
      throw new InvalidRequestError(`a member may read at most ${MAX_TOPICS_PER_MEMBER} topics`);
    }
    for (const t of req.topics) this.options.topics.require(t);
    const session = req.sessionTimeoutMs === 0 ? config.groupSessionTimeoutMs : req.sessionTimeoutMs;
    const { groupMinSessionTimeoutMs: min, groupMaxSessionTimeoutMs: max } = config;
    if (!Number.isInteger(session) || session < min || session > max) {
      throw new InvalidRequestError(
        `session_timeout_ms must be between ${min} and ${max} (group.min/max.session.timeout.ms), not ${session}; 0 uses the broker's default`,
      );
    }
    let group = this.groups.get(req.groupId);
    if (group && group.size >= config.groupMaxMembers) {
      throw new LimitExceededError(
        `group "${req.groupId}" already has ${group.size} members, the most group.max.members allows`,
      );
    }
    if (!group) {
      group = new Group(req.groupId, this.partitionCount, () => this.options.clock.now());
      this.groups.set(req.groupId, group);
    }
    const memberId = `${name.replace(/[^\x21-\x7e]/g, "_").slice(0, 64)}-${randomUUID()}`;
    const member = group.join({
      memberId,
      name,
      topics: req.topics,
      sessionTimeoutMs: session,
      address: req.address,
      sink,
    });
    this.logger.info(
      { group: req.groupId, member: memberId, topics: member.topics, generation: group.generation },
      "member joined",
    );
    return member;
  }

  heartbeat(groupId: string, memberId: string): number {
    const group = this.requireGroupWithMember(groupId, memberId);
    group.heartbeat(memberId);
    return group.generation;
  }

  /** `generation`: of the message that asked for the release (0 = any); see Group.release. */
  release(
    groupId: string,
    memberId: string,
    partitions: readonly TopicPartition[],
    generation: number,
  ): void {
    this.requireGroupWithMember(groupId, memberId).release(memberId, partitions, generation);
  }

  /** Removes the member if it is there (leaving twice is not an error). */
  leave(groupId: string, memberId: string): void {
    validateGroupId(groupId);
    const group = this.groups.get(groupId);
    if (!group?.remove(memberId, "left", "left the group")) return;
    this.logger.info({ group: groupId, member: memberId, generation: group.generation }, "member left");
    if (group.size === 0) this.groups.delete(groupId);
  }

  /** Validates everything, then commits all offsets durably (one batch of the internal log). */
  async commit(
    groupId: string,
    memberId: string,
    generation: number,
    offsets: readonly OffsetCommitInput[],
  ): Promise<void> {
    validateGroupId(groupId);
    if (offsets.length > MAX_OFFSETS_PER_COMMIT) {
      throw new InvalidRequestError(`at most ${MAX_OFFSETS_PER_COMMIT} offsets per commit`);
    }
    if (generation < 1) {
      throw new InvalidRequestError(
        "generation_id is required: commit with the generation of the latest JoinGroup message",
      );
    }
    this.validateOffsets(offsets);
    const group = this.requireGroupWithMember(groupId, memberId);
    group.checkCommit(memberId, generation, offsets);
    if (offsets.length === 0) return;
    await this.store.commit(groupId, offsets);
  }

  /** Committed offsets of a group (sorted), optionally only of some topics. */
  committed(groupId: string, topics: readonly string[] = []): StoredOffset[] {
    validateGroupId(groupId);
    for (const t of topics) validateTopicName(t);
    const wanted = new Set(topics);
    return this.store.offsets(groupId).filter((o) => wanted.size === 0 || wanted.has(o.topic));
  }

  list(): GroupSummaryInfo[] {
    const ids = new Set([...this.groups.keys(), ...this.store.groups()]);
    return [...ids].sort(compareIds).map((groupId) => {
      const group = this.groups.get(groupId);
      const topics = new Set([
        ...(group?.topics() ?? []),
        ...this.store.offsets(groupId).map((o) => o.topic),
      ]);
      return {
        groupId,
        state: group?.state ?? "empty",
        memberCount: group?.size ?? 0,
        topics: [...topics].sort(compareIds),
      };
    });
  }

  describe(groupId: string): GroupDescription {
    validateGroupId(groupId);
    const group = this.groups.get(groupId);
    const offsets = this.store.offsets(groupId);
    if (!group && offsets.length === 0) throw new GroupNotFoundError(groupId);
    const committed = new Map(offsets.map((o) => [`${o.topic}/${o.partition}`, o.offset]));
    const topics = new Set([...(group?.topics() ?? []), ...offsets.map((o) => o.topic)]);
    const partitions: GroupPartitionInfo[] = [];
    for (const name of [...topics].sort(compareIds)) {
      const topic = this.options.topics.get(name);
      if (!topic) continue; // offsets of a topic deleted meanwhile
      for (const p of topic.partitions) {
        const c = committed.get(`${name}/${p.index}`);
        const hw = p.highWatermark;
        const from = c ?? p.logStartOffset;
        partitions.push({
          topic: name,
          partition: p.index,
          memberId: group?.ownerOf(name, p.index) ?? "",
          committed: c,
          logStartOffset: p.logStartOffset,
          highWatermark: hw,
          lag: hw > from ? hw - from : 0n,
        });
      }
    }
    return {
      groupId,
      state: group?.state ?? "empty",
      generation: group?.generation ?? 0,
      members: (group?.members() ?? []).map((member) => {
        const a = group!.assignmentOf(member);
        return { member, assigned: sortPartitions([...a.assigned, ...a.revoking]), revoking: a.revoking };
      }),
      partitions,
    };
  }

  async deleteGroup(groupId: string): Promise<void> {
    validateGroupId(groupId);
    this.requireEmpty(groupId, "delete it");
    if (this.store.offsets(groupId).length === 0) throw new GroupNotFoundError(groupId);
    await this.store.deleteGroup(groupId);
    this.logger.info({ group: groupId }, "group deleted");
  }

  /** Sets the committed offset of every partition of `topics`; returns the new offsets. */
  async resetOffsets(groupId: string, topics: readonly string[], to: ResetTarget): Promise<StoredOffset[]> {
    validateGroupId(groupId);
    if (topics.length === 0) throw new InvalidRequestError("topics is empty; name the topics to reset");
    const resolved = [...new Set(topics)].map((t) => this.options.topics.require(t));
    if (to.kind === "offset" && to.offset < 0n) {
      throw new InvalidRequestError(`offset must be >= 0, not ${to.offset}`);
    }
    this.requireEmpty(groupId, "reset its offsets");
    const entries: OffsetCommitInput[] = [];
    for (const topic of resolved) {
      for (const p of topic.partitions) {
        let offset: bigint;
        if (to.kind === "earliest") offset = p.logStartOffset;
        else if (to.kind === "latest") offset = p.highWatermark;
        else if (to.kind === "offset") offset = clamp(to.offset, p.logStartOffset, p.highWatermark);
        else offset = (await p.log.offsetForTimestamp(to.ms)) ?? p.highWatermark;
        entries.push({ topic: topic.name, partition: p.index, offset, metadata: "" });
      }
    }
    this.requireEmpty(groupId, "reset its offsets"); // a member may have joined while we looked up times
    await this.store.commit(groupId, entries);
    this.logger.info({ group: groupId, topics, to: to.kind }, "group offsets reset");
    return this.committed(
      groupId,
      resolved.map((t) => t.name),
    );
  }

  /** Stops session checks and closes the offsets log. Members' streams are ended by the rpc drain. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe();
    await this.store.close();
  }

  private validateOffsets(offsets: readonly OffsetCommitInput[]): void {
    const seen = new Set<string>();
    for (const o of offsets) {
      const p = this.options.topics.partition(o.topic, o.partition);
      const key = `${o.topic}/${o.partition}`;
      if (seen.has(key)) {
        throw new InvalidRequestError(
          `partition ${o.partition} of topic "${o.topic}" appears twice in one commit`,
        );
      }
      seen.add(key);
      if (o.offset < 0n) throw new InvalidRequestError(`offset must be >= 0, not ${o.offset}`);
      if (o.offset > p.highWatermark) {
        throw new BeyondHighWatermarkError(
          `offset ${o.offset} for partition ${o.partition} of topic "${o.topic}" is past its high watermark ${p.highWatermark}; commit the next offset to read, at most the high watermark`,
        );
      }
      if (Buffer.byteLength(o.metadata) > MAX_METADATA_BYTES) {
        throw new InvalidRequestError(`metadata is longer than ${MAX_METADATA_BYTES} bytes`);
      }
    }
  }

  private requireGroupWithMember(groupId: string, memberId: string): Group {
    validateGroupId(groupId);
    const group = this.groups.get(groupId);
    if (!group?.member(memberId)) {
      throw new FailedPreconditionError(
        `member "${memberId}" is not in group "${groupId}" (it left, or its session expired); join the group again`,
      );
    }
    return group;
  }

  private requireEmpty(groupId: string, action: string): void {
    const size = this.groups.get(groupId)?.size ?? 0;
    if (size > 0) {
      throw new FailedPreconditionError(
        `group "${groupId}" has ${size} member${size === 1 ? "" : "s"}; stop its consumers before you ${action}`,
      );
    }
  }

  /**
   * The broker is shutting down: ask every member to commit and give up its partitions, and wait
   * (at most `timeoutMs`) until they did, so no group redelivers what it processed. New joins are
   * refused from now on; commits, releases and heartbeats still work.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    for (const group of this.groups.values()) group.drain();
    const deadline = performance.now() + timeoutMs;
    const owned = () => [...this.groups.values()].reduce((n, g) => n + g.ownedCount, 0);
    while (owned() > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (owned() > 0)
      this.logger.warn(
        { partitions: owned() },
        "group members did not release every partition before the drain deadline",
      );
  }

  private expireAll(): void {
    // A stalled event loop (a long GC, a huge compaction) delays heartbeats that already arrived:
    // the stall is ours, so it does not count against members' sessions.
    const now = performance.now();
    const late = now - this.lastTick - EXPIRY_TICK_MS;
    this.lastTick = now;
    for (const [id, group] of this.groups) {
      if (late > EXPIRY_TICK_MS) group.postpone(late);
      const before = group.generation;
      if (group.expire() > 0) {
        this.logger.warn(
          { group: id, generation: group.generation, from: before },
          "expired members removed",
        );
      }
      if (group.size === 0) this.groups.delete(id);
    }
  }

  private onTopicChange(change: TopicChange): void {
    for (const group of this.groups.values()) {
      if (group.topics().has(change.topic)) group.rebalance();
    }
    // A new topic has no history: offsets left from an earlier topic of that name are stale.
    if (change.kind === "deleted" || change.kind === "created") {
      this.store
        .forgetTopic(change.topic)
        .catch((err) =>
          this.logger.error({ err, topic: change.topic }, "could not forget a topic's old offsets"),
        );
    }
  }
}

function clamp(v: bigint, lo: bigint, hi: bigint): bigint {
  return v < lo ? lo : v > hi ? hi : v;
}
