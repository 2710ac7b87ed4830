/**
 * Group consumption: `consumer.subscribe(...)` joins a consumer group and reads the partitions the
 * broker assigns to this member, committing what the application processed.
 *
 * ```ts
 * const sub = client.consumer().subscribe({ group: "billing", topics: ["orders"], from: "earliest" });
 * sub.on("assigned", (tps) => console.log("now reading", tps));
 * for await (const record of sub) {
 *   await handle(record);               // `record` counts as processed once the loop comes back
 * }
 * await sub.close();                    // commits, leaves the group (idempotent)
 * ```
 *
 * Options (subscribe-options.ts): `group` and `topics` (required); `from` ("earliest", the default,
 * or "latest") for partitions the group never committed, and when a committed offset is out of range
 * (logged as a warning); `memberName` (default `${hostname}-${pid}`); `sessionTimeoutMs` (default:
 * the broker's); `autoCommitIntervalMs` (default 5000, 0 = commit only on revoke, close and
 * `commit()`); `maxBytes`; `signal` (aborting it is `close()`); `onAssigned` / `onRevoked` (the same
 * as `sub.on("assigned" | "revoked", ...)`). `sub.assignment()` lists the partitions owned now;
 * `sub.memberId` and `sub.generation` are those of the current membership (undefined between
 * memberships). A subscription is iterated once.
 *
 * Processed and committed: a record is *processed* once the application asks for the next record
 * (the for-await body came back and the loop calls `next()`). Leaving the loop with `break`, `return`
 * or an exception does NOT mark the last record processed (for-await calls `return()` in every case,
 * so it cannot tell them apart; at-least-once wins); leaving the loop closes the subscription. The
 * committed offset of a partition is one past its last processed record. Commits happen every
 * `autoCommitIntervalMs` (only partitions whose processed offset moved), when a partition is
 * revoked (only the revoked partitions), on `close()`, and on `commit()`. A commit refused with
 * FAILED_PRECONDITION (the member is gone, or its generation is stale) is logged, never thrown from
 * the iterator; `commit()` itself rejects with the error. A partition started from "latest" without
 * a committed offset counts as processed up to where it started, so the group keeps that starting
 * point. Start lookups and commits live in group-offsets.ts.
 *
 * The membership protocol (proto/rill/v1/group.proto; the stream, heartbeats and ReleasePartitions
 * live in group-membership.ts):
 * - Every JoinGroup message is the member's full assignment, so only the newest matters: messages
 *   are applied one at a time, and those arriving while one is applied are coalesced (only the
 *   latest is applied next). What a message changes is computed by group-partitions.ts.
 * - Assigned partitions: "assigned" is emitted first, then each is fetched (following, forever,
 *   with the plain consumer's resume/backoff: partition-fetcher.ts) from the group's committed
 *   offset (FetchCommittedOffsets), or from `from`.
 * - Revoking partitions: at a point where no yielded record of them is still being processed —
 *   at once if the application is waiting in `next()`, has not started iterating, or holds a record
 *   of another partition; otherwise at the start of its next `next()` — their fetches stop, their
 *   queued records are dropped, their processed offsets are committed, "revoked" is emitted and only
 *   then ReleasePartitions is sent, naming the generation of the message that asked (the broker
 *   keeps a partition granted again after it). So, reading the events of all members, no partition
 *   ever has two holders: "revoked" precedes the release that lets the broker hand the partition on.
 *   A failed release is retried while the membership lasts (bounded by the session timeout).
 * - Partitions a message no longer lists, without a revocation (their topic was deleted): stopped
 *   and dropped, "revoked" is emitted, nothing is committed or released.
 * - A deleted topic: its fetches end with NOT_FOUND, usually before the broker's message drops its
 *   partitions. Each such partition stops quietly (logged as a warning): its queued records and its
 *   processed offset are dropped, the rest of the subscription goes on, and the broker's next
 *   message drops it as above. (A newer generation that still assigns it, e.g. the topic was
 *   re-created, starts it afresh.)
 * - Membership lost (the JoinGroup stream ended or failed: broker restart, UNAVAILABLE,
 *   FAILED_PRECONDITION = removed after the session timeout): every fetch stops, queued records are
 *   dropped, "revoked" is emitted for everything (without a commit: this member no longer owns them)
 *   and the member joins again with backoff (bounded delay, unbounded attempts while open). A
 *   member removed for missing its session timeout may learn it after the broker has handed its
 *   partitions on: the single-holder guarantee of the events covers revocations and `close()`, not
 *   a member the broker gave up on (keep processing a record shorter than the session timeout).
 * - NOT_FOUND (a topic does not exist; on a rejoin: a subscribed topic was deleted, and the error
 *   names it), INVALID_ARGUMENT, RESOURCE_EXHAUSTED (the group is full) and UNIMPLEMENTED from
 *   JoinGroup, a first join that keeps failing for longer than the client's bounded retry, and
 *   non-retriable fetch errors other than NOT_FOUND close the subscription and are thrown from the
 *   iterator.
 * - `close()`: stops the fetches, commits what was processed, emits "revoked", sends LeaveGroup
 *   (confirmed: when `close()` resolves the broker has reassigned the partitions), cancels the
 *   stream and timers, and ends the iteration (a pending `next()` resolves done once the close is
 *   complete). Idempotent.
 *
 * Buffering is bounded like the plain consumer's: at most `maxQueuedBatches` fetched responses wait
 * for the application, across all partitions; a partition's fetch waits for room.
 */
import { hostname } from "node:os";
import { Code, fromGrpcError, InvalidArgumentError, RillError } from "../errors.js";
import type { JoinGroupResponse } from "../gen/rill/v1/group.js";
import { OffsetPosition } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import type { ConsumedRecord } from "../records.js";
import { type RetryOptions, resolveRetryOptions } from "../retry.js";
import type { ConsumedBatch, ConsumerContext, ConsumerOptions } from "./consumer.js";
import { GroupMembership } from "./group-membership.js";
import { GroupOffsets } from "./group-offsets.js";
import {
  byTopicPartition,
  newPartitionState,
  type PartitionState,
  planAssignment,
  type TopicPartition,
  toWire,
} from "./group-partitions.js";
import { BoundedQueue, END, type FetchStart, PartitionFetcher } from "./partition-fetcher.js";
import {
  type PartitionsListener,
  type SubscribeOptions,
  type SubscriptionEvent,
  validateSubscribeOptions,
} from "./subscribe-options.js";

export type { TopicPartition } from "./group-partitions.js";
export type { PartitionsListener, SubscribeOptions, SubscriptionEvent } from "./subscribe-options.js";

interface QueuedBatch {
  batch: ConsumedBatch;
  state: PartitionState;
}

const DEFAULT_AUTO_COMMIT_MS = 5_000;
/** How long a member waits before it looks again at a partition whose topic was gone. */
const GONE_RETRY_MS = 1_000;

/** A group subscription; made by `consumer.subscribe(options)` (see the file header). */
export class GroupSubscription implements AsyncIterable<ConsumedRecord> {
  private readonly log: Logger;
  private readonly retryOptions: RetryOptions;
  private readonly groupId: string;
  private readonly from: "earliest" | "latest";
  private readonly membership: GroupMembership;
  private readonly offsets: GroupOffsets;
  private readonly queue: BoundedQueue<QueuedBatch>;
  private readonly owned = new Map<string, PartitionState>();
  private readonly listeners: Record<SubscriptionEvent, Set<PartitionsListener>> = {
    assigned: new Set(),
    revoked: new Set(),
  };
  /** Bumped when the membership is lost: work of an older membership stops at its next step. */
  private epoch = 0;
  private epochController = new AbortController();
  /** Membership changes, revocations and the close run one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  /** The newest JoinGroup message not yet applied (an apply task is queued while it is set). */
  private pendingMessage: { response: JoinGroupResponse; epoch: number } | undefined;
  private nextChain: Promise<unknown> = Promise.resolve();
  /** The batch being handed out and the index of its next record. */
  private current: { item: QueuedBatch; index: number } | undefined;
  /** The record the application was given last and has not yet come back from. */
  private held: { record: ConsumedRecord; state: PartitionState } | undefined;
  private autoCommitTimer: NodeJS.Timeout | undefined;
  private iterated = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private failure: RillError | undefined;
  private failureThrown = false;
  private readonly onAbort = (): void => void this.close();
  /** Whether a state may still be committed: owned, and its partition not gone. */
  private readonly committable = (s: PartitionState): boolean =>
    this.owned.get(s.key) === s && s.goneIn === undefined;

  constructor(
    private readonly ctx: ConsumerContext,
    private readonly options: SubscribeOptions,
    private readonly consumerOptions: ConsumerOptions,
    private readonly onClose?: () => void,
  ) {
    validateSubscribeOptions(options);
    this.log = ctx.logger.child("consumer").child("group");
    this.retryOptions = resolveRetryOptions({ ...ctx.retry, ...consumerOptions.retry });
    this.groupId = options.group;
    this.from = options.from ?? "earliest";
    this.queue = new BoundedQueue(consumerOptions.maxQueuedBatches ?? 16);
    if (options.onAssigned) this.listeners.assigned.add(options.onAssigned);
    if (options.onRevoked) this.listeners.revoked.add(options.onRevoked);
    this.membership = new GroupMembership(
      {
        connection: ctx.connection,
        logger: this.log,
        retry: this.retryOptions,
        requestTimeoutMs: ctx.requestTimeoutMs,
      },
      {
        groupId: this.groupId,
        memberName: options.memberName ?? `${hostname()}-${process.pid}`,
        topics: [...new Set(options.topics)],
        sessionTimeoutMs: options.sessionTimeoutMs ?? 0,
      },
      {
        message: (response) => this.onMessage(response),
        lost: (error) => this.loseAll(error),
        fatal: (error) => this.fail(error),
      },
    );
    this.offsets = new GroupOffsets({
      ctx,
      logger: this.log,
      retry: this.retryOptions,
      groupId: this.groupId,
      from: this.from,
      member: () => ({ memberId: this.membership.memberId, generation: this.membership.generation }),
    });
    if (options.signal?.aborted) {
      void this.close();
      return;
    }
    options.signal?.addEventListener("abort", this.onAbort, { once: true });
    const interval = options.autoCommitIntervalMs ?? DEFAULT_AUTO_COMMIT_MS;
    if (interval > 0) {
      this.autoCommitTimer = setInterval(() => {
        this.offsets
          .commit([...this.owned.values()], this.committable)
          .catch((e: unknown) => this.offsets.logCommitFailure(e, "auto"));
      }, interval);
      this.autoCommitTimer.unref();
    }
    this.membership.start();
  }

  /** The member id of the current membership (undefined before the first join and between joins). */
  get memberId(): string | undefined {
    return this.membership.memberId;
  }

  /** The generation last received in the current membership. */
  get generation(): bigint | undefined {
    return this.membership.generation;
  }

  /** The partitions this member owns now (those being revoked until "revoked" is emitted), sorted. */
  assignment(): TopicPartition[] {
    return [...this.owned.values()]
      .filter((s) => !s.revokedEmitted)
      .map((s) => ({ topic: s.topic, partition: s.partition }))
      .sort(byTopicPartition);
  }

  /** Adds a listener of "assigned" (partitions granted) or "revoked" (partitions given up or lost). */
  on(event: SubscriptionEvent, listener: PartitionsListener): this {
    this.listenerSet(event).add(listener);
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off(event: SubscriptionEvent, listener: PartitionsListener): this {
    this.listenerSet(event).delete(listener);
    return this;
  }

  private listenerSet(event: SubscriptionEvent): Set<PartitionsListener> {
    const set = this.listeners[event];
    if (!set)
      throw new InvalidArgumentError(`unknown event ${JSON.stringify(event)}: "assigned" or "revoked"`);
    return set;
  }

  /** Commits the processed offsets of the owned partitions now; rejects if the broker refuses. */
  async commit(): Promise<void> {
    await this.offsets.commit([...this.owned.values()], this.committable);
  }

  /** Commits what was processed, leaves the group and ends the iteration (see the file header). */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumedRecord> {
    if (this.iterated) throw new InvalidArgumentError("a group subscription can be iterated only once");
    this.iterated = true;
    return {
      next: () => this.next(),
      return: async () => {
        // Leaving the loop: the record in hand is not processed (at-least-once).
        this.held = undefined;
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  private next(): Promise<IteratorResult<ConsumedRecord>> {
    // The application came back: the record it was given is processed.
    const held = this.held;
    this.held = undefined;
    if (held && this.committable(held.state)) held.state.processed = held.record.offset + 1n;
    const result = this.nextChain.then(() => this.nextRecord());
    this.nextChain = result.catch(() => {});
    return result;
  }

  private async nextRecord(): Promise<IteratorResult<ConsumedRecord>> {
    for (;;) {
      if (this.closed && this.failureThrown) return { done: true, value: undefined };
      if (this.hasRevocationDue()) {
        const epoch = this.epoch;
        await this.enqueue(() => this.revokeDue(epoch));
      }
      const cur = this.current;
      if (cur) {
        const s = cur.item.state;
        const records = cur.item.batch.records;
        if (cur.index < records.length && !s.stopped && this.owned.get(s.key) === s) {
          const record = records[cur.index++]!;
          this.held = { record, state: s };
          return { done: false, value: record };
        }
        this.current = undefined;
      }
      const item = await this.queue.take();
      if (item === END) {
        await this.closePromise;
        if (this.failure && !this.failureThrown) {
          this.failureThrown = true;
          throw this.failure;
        }
        return { done: true, value: undefined };
      }
      if ("error" in item) throw item.error; // not used: failures close the subscription
      this.current = { item, index: 0 };
    }
  }

  /** Runs `task` after every earlier one; never rejects (a failure is logged). */
  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task).catch((e: unknown) => {
      const err = fromGrpcError(e);
      this.log.error("group subscription task failed", { group: this.groupId, error: err.message });
    });
    this.chain = run;
    return run;
  }

  /** A JoinGroup message: apply it after the work queued before, unless a newer one comes first. */
  private onMessage(response: JoinGroupResponse): void {
    const scheduled = this.pendingMessage !== undefined;
    this.pendingMessage = { response, epoch: this.epoch };
    if (scheduled) return; // the queued apply task will take this newer one
    void this.enqueue(async () => {
      const pending = this.pendingMessage;
      this.pendingMessage = undefined;
      if (pending) await this.applyAssignment(pending.response, pending.epoch);
    });
  }

  /** Applies one JoinGroup message (the member's full assignment). */
  private async applyAssignment(response: JoinGroupResponse, epoch: number): Promise<void> {
    if (epoch !== this.epoch || this.closed) return;
    const generation = response.generationId;
    const plan = planAssignment(this.owned, {
      generation,
      assigned: response.assigned,
      revoking: response.revoking,
    });
    if (plan.dropped.length > 0) {
      const gone = plan.dropped.every((s) => s.goneIn !== undefined);
      this.log[gone ? "info" : "warn"](
        gone ? "deleted partitions dropped" : "partitions taken without a revocation",
        { group: this.groupId, generation: generation.toString(), partitions: plan.dropped.length },
      );
      this.stopAndDrop(plan.dropped);
      for (const s of plan.dropped) this.owned.delete(s.key);
      this.emitRevoked(plan.dropped);
    }
    // A rebalance can give back a partition whose revocation has not started yet: keep reading it.
    for (const s of plan.kept) s.revokeRequested = false;
    for (const s of plan.revoke) {
      s.revokeRequested = true;
      s.revokeGeneration = generation;
    }
    // Revoking what this member never started (e.g. granted and taken back before it was applied).
    await this.release(plan.releaseUnowned, generation, epoch);
    const fresh = plan.fresh.map(newPartitionState);
    for (const s of fresh) this.owned.set(s.key, s);
    if (fresh.length > 0) this.emit("assigned", fresh);
    await this.revokeDue(epoch);
    if (fresh.length > 0) await this.startFetching(fresh, epoch);
  }

  /** Whether some revocation waits for the application to come back. */
  private hasRevocationDue(): boolean {
    for (const s of this.owned.values()) if (s.revokeRequested && !s.releasing) return true;
    return false;
  }

  /**
   * Revokes the partitions the broker asked for whose records are not in the application's hands:
   * stop, drop, commit (those partitions only), "revoked", ReleasePartitions.
   */
  private async revokeDue(epoch: number): Promise<void> {
    if (epoch !== this.epoch) return;
    const heldState = this.held?.state;
    const states = [...this.owned.values()].filter(
      (s) => s.revokeRequested && !s.releasing && s !== heldState,
    );
    if (states.length === 0) return;
    for (const s of states) s.releasing = true;
    this.stopAndDrop(states);
    try {
      await this.offsets.commit(states, this.committable);
    } catch (e) {
      this.offsets.logCommitFailure(e, "revoke");
    }
    if (epoch !== this.epoch) return; // lost meanwhile: already reported, no longer ours to release
    const revoked = states.filter((s) => this.owned.get(s.key) === s);
    for (const s of revoked) this.owned.delete(s.key);
    this.emitRevoked(revoked);
    // In practice one generation: every applied message renews it for all it lists as revoking.
    for (const generation of new Set(revoked.map((s) => s.revokeGeneration))) {
      await this.release(
        revoked.filter((s) => s.revokeGeneration === generation),
        generation,
        epoch,
      );
    }
  }

  /** Stops the fetches of `states` and drops their records not yet handed out. */
  private stopAndDrop(states: readonly PartitionState[]): void {
    const set = new Set(states);
    for (const s of states) {
      s.stopped = true;
      s.fetcher?.stop();
    }
    this.queue.drop((item) => set.has(item.state));
    if (this.current && set.has(this.current.item.state)) this.current = undefined;
  }

  /** ReleasePartitions (retried by the membership while it lasts; see group-membership.ts). */
  private async release(
    partitions: readonly TopicPartition[],
    generation: bigint,
    epoch: number,
  ): Promise<void> {
    if (partitions.length === 0 || epoch !== this.epoch) return;
    await this.membership.release(toWire(partitions), generation, this.epochController.signal);
  }

  /**
   * A partition's fetch (or start lookup) found it gone: its topic was deleted. Stop it quietly and
   * forget its offsets; the broker's next message drops it (see the file header).
   */
  private partitionGone(s: PartitionState, error: RillError): void {
    if (s.stopped || this.owned.get(s.key) !== s) return;
    this.log.warn("partition gone (topic deleted?); no longer reading it", {
      group: this.groupId,
      topic: s.topic,
      partition: s.partition,
      error: error.message,
    });
    s.goneIn = this.membership.generation ?? 0n;
    s.processed = undefined;
    this.stopAndDrop([s]);
    // The topic may have been deleted and re-created under the same name, with the broker's
    // messages about it merged into one: while the broker still has this member own the partition,
    // look again after a pause (from the committed offset, which the broker forgot, or `from`).
    const epoch = this.epoch;
    setTimeout(() => {
      if (this.closed || epoch !== this.epoch || this.owned.get(s.key) !== s) return;
      const again = newPartitionState(s);
      this.owned.set(again.key, again);
      void this.startFetching([again], epoch);
    }, GONE_RETRY_MS).unref();
  }

  /** Looks up where each new partition starts, then starts its fetch. */
  private async startFetching(states: readonly PartitionState[], epoch: number): Promise<void> {
    const stale = (): boolean => epoch !== this.epoch || this.closed;
    let starts: Map<string, FetchStart | RillError>;
    try {
      starts = await this.offsets.starts(states, this.epochController.signal);
    } catch (e) {
      if (stale()) return;
      const err = fromGrpcError(e);
      if (err.retriable) {
        // The broker is unreachable for now: start over with a fresh membership.
        this.log.warn("cannot look up committed offsets; rejoining", {
          group: this.groupId,
          error: err.message,
        });
        this.membership.restart(err);
      } else {
        this.fail(err);
      }
      return;
    }
    if (stale()) return;
    for (const s of states) {
      if (s.stopped || this.owned.get(s.key) !== s) continue;
      const start = starts.get(s.key)!;
      if (start instanceof RillError) this.partitionGone(s, start);
      else this.startFetch(s, start);
    }
  }

  private startFetch(s: PartitionState, start: FetchStart): void {
    const fetcher: PartitionFetcher = new PartitionFetcher({
      connection: this.ctx.connection,
      logger: this.log,
      retry: this.retryOptions,
      topic: s.topic,
      partition: s.partition,
      start,
      end: undefined,
      maxBytes: this.options.maxBytes ?? this.consumerOptions.maxBytes ?? 0,
      offsetReset: this.from,
      deliver: (batch) => this.queue.put({ batch, state: s }, fetcher.signal),
    });
    s.fetcher = fetcher;
    this.log.debug("fetching", {
      group: this.groupId,
      topic: s.topic,
      partition: s.partition,
      from: start.$case === "offset" ? start.value.toString() : OffsetPosition[start.value],
    });
    fetcher.run().catch((e: unknown) => {
      if (s.stopped || this.closed || this.owned.get(s.key) !== s) return;
      const err = fromGrpcError(e);
      if (err.code === Code.NOT_FOUND) this.partitionGone(s, err);
      else this.fail(err);
    });
  }

  /** The membership ended: stop everything, report every partition revoked (no commit). */
  private loseAll(error: RillError): void {
    this.epoch++;
    this.epochController.abort(error);
    this.epochController = new AbortController();
    this.pendingMessage = undefined;
    const states = [...this.owned.values()];
    this.stopAndDrop(states);
    this.queue.drop(() => true);
    this.current = undefined;
    this.owned.clear();
    this.emitRevoked(states);
  }

  /** A failure the application must see: close, then throw it from the iterator. */
  private fail(error: RillError): void {
    this.failure ??= error;
    void this.close();
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    clearInterval(this.autoCommitTimer);
    this.autoCommitTimer = undefined;
    this.options.signal?.removeEventListener("abort", this.onAbort);
    this.epochController.abort();
    this.stopAndDrop([...this.owned.values()]);
    this.queue.close();
    this.current = undefined;
    await this.enqueue(async () => {
      const states = [...this.owned.values()];
      try {
        await this.offsets.commit(states, this.committable);
      } catch (e) {
        this.offsets.logCommitFailure(e, "close");
      }
      this.owned.clear();
      this.emitRevoked(states);
      await this.membership.leave();
    });
    this.onClose?.();
  }

  private emitRevoked(states: readonly PartitionState[]): void {
    const fresh = states.filter((s) => !s.revokedEmitted);
    for (const s of fresh) s.revokedEmitted = true;
    if (fresh.length > 0) this.emit("revoked", fresh);
  }

  private emit(event: SubscriptionEvent, states: readonly PartitionState[]): void {
    const partitions = states.map((s) => ({ topic: s.topic, partition: s.partition })).sort(byTopicPartition);
    this.log.info(event === "assigned" ? "partitions assigned" : "partitions revoked", {
      group: this.groupId,
      memberId: this.membership.memberId,
      partitions: partitions.map((p) => `${p.topic}/${p.partition}`),
    });
    for (const listener of [...this.listeners[event]]) {
      try {
        listener(partitions.map((p) => ({ ...p })));
      } catch (e) {
        this.log.error(`a "${event}" listener threw`, {
          group: this.groupId,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }
}
