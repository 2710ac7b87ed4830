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
 * Options: `group` and `topics` (required); `from` ("earliest", the default, or "latest") for
 * partitions the group never committed, and when a committed offset is out of range (logged as a
 * warning); `memberName` (default `${hostname}-${pid}`); `sessionTimeoutMs` (default: the broker's);
 * `autoCommitIntervalMs` (default 5000, 0 = commit only on revoke, close and `commit()`);
 * `maxBytes`; `signal` (aborting it is `close()`); `onAssigned` / `onRevoked` (the same as
 * `sub.on("assigned" | "revoked", ...)`). `sub.assignment()` lists the partitions owned now;
 * `sub.memberId` and `sub.generation` are those of the current membership (undefined between
 * memberships). A subscription is iterated once.
 *
 * Processed and committed: a record is *processed* once the application asks for the next record
 * (the for-await body came back and the loop calls `next()`). Leaving the loop with `break`, `return`
 * or an exception does NOT mark the last record processed (for-await calls `return()` in every case,
 * so it cannot tell them apart; at-least-once wins); leaving the loop closes the subscription. The
 * committed offset of a partition is one past its last processed record. Commits happen every
 * `autoCommitIntervalMs` (only partitions whose processed offset moved), when a partition is
 * revoked, on `close()`, and on `commit()`. A commit refused with FAILED_PRECONDITION (the member is
 * gone, or its generation is stale) is logged, never thrown from the iterator; `commit()` itself
 * rejects with the error. A partition started from "latest" without a committed offset counts as
 * processed up to where it started, so the group keeps that starting point.
 *
 * The membership protocol (proto/rill/v1/group.proto; the stream and heartbeats live in
 * group-membership.ts):
 * - Assigned partitions: "assigned" is emitted first, then each is fetched (following, forever,
 *   with the plain consumer's resume/backoff: partition-fetcher.ts) from the group's committed
 *   offset (FetchCommittedOffsets), or from `from`.
 * - Revoking partitions: at a point where no yielded record of them is still being processed —
 *   at once if the application is waiting in `next()`, has not started iterating, or holds a record
 *   of another partition; otherwise at the start of its next `next()` — their fetches stop, their
 *   queued records are dropped, their processed offsets are committed, "revoked" is emitted and only
 *   then ReleasePartitions is sent. So, reading the events of all members, no partition ever has two
 *   holders: "revoked" precedes the release that lets the broker hand the partition on.
 * - Membership lost (the JoinGroup stream ended or failed: broker restart, UNAVAILABLE,
 *   FAILED_PRECONDITION = removed after the session timeout): every fetch stops, queued records are
 *   dropped, "revoked" is emitted for everything (without a commit: this member no longer owns them)
 *   and the member joins again with backoff (bounded delay, unbounded attempts while open). A
 *   member removed for missing its session timeout may learn it after the broker has handed its
 *   partitions on: the single-holder guarantee of the events covers revocations and `close()`, not
 *   a member the broker gave up on (keep processing a record shorter than the session timeout).
 * - NOT_FOUND (a topic does not exist), INVALID_ARGUMENT, RESOURCE_EXHAUSTED (the group is full)
 *   and UNIMPLEMENTED from JoinGroup, a first join that keeps
 *   failing for longer than the client's bounded retry, and non-retriable fetch errors close the
 *   subscription and are thrown from the iterator.
 * - `close()`: stops the fetches, commits what was processed, emits "revoked", sends LeaveGroup
 *   (confirmed: when `close()` resolves the broker has reassigned the partitions), cancels the
 *   stream and timers, and ends the iteration (a pending `next()` resolves done once the close is
 *   complete). Idempotent.
 *
 * Buffering is bounded like the plain consumer's: at most `maxQueuedBatches` fetched responses wait
 * for the application, across all partitions; a partition's fetch waits for room.
 */
import { hostname } from "node:os";
import { unaryCall } from "../connection.js";
import { Code, fromGrpcError, InvalidArgumentError, type RillError } from "../errors.js";
import type {
  CommitOffsetsRequest,
  CommitOffsetsResponse,
  FetchCommittedOffsetsRequest,
  FetchCommittedOffsetsResponse,
  ReleasePartitionsRequest,
  ReleasePartitionsResponse,
  TopicPartitions,
} from "../gen/rill/v1/group.js";
import { type ListOffsetsRequest, type ListOffsetsResponse, OffsetPosition } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import type { ConsumedRecord } from "../records.js";
import { type RetryOptions, resolveRetryOptions, retry } from "../retry.js";
import type { ConsumedBatch, ConsumerContext, ConsumerOptions } from "./consumer.js";
import { GroupMembership } from "./group-membership.js";
import { BoundedQueue, END, type FetchStart, PartitionFetcher } from "./partition-fetcher.js";

/** One partition of one topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** What `consumer.subscribe` joins and how (see the file header). */
export interface SubscribeOptions {
  /** The group: 1-249 characters of [A-Za-z0-9._-], not "." or "..". */
  group: string;
  /** The topics to read; at least one, each must exist. */
  topics: readonly string[];
  /** Where partitions without a committed offset start (default "earliest"). */
  from?: "earliest" | "latest" | undefined;
  /** Shown by DescribeGroup (default `${hostname}-${pid}`). */
  memberName?: string | undefined;
  /** The member's session timeout (default: the broker's group.session.timeout.ms). */
  sessionTimeoutMs?: number | undefined;
  /** How often processed offsets are committed (default 5000; 0: only on revoke, close, commit()). */
  autoCommitIntervalMs?: number | undefined;
  /** Upper bound on one Fetch response's batch bytes (default: the consumer's, else the broker's). */
  maxBytes?: number | undefined;
  /** Aborting it closes the subscription (see `close()`). */
  signal?: AbortSignal | undefined;
  /** Called with partitions granted to this member, before they are fetched. */
  onAssigned?: ((partitions: TopicPartition[]) => void) | undefined;
  /** Called with partitions taken from this member, before they are released. */
  onRevoked?: ((partitions: TopicPartition[]) => void) | undefined;
}

/** The events of a subscription. */
export type SubscriptionEvent = "assigned" | "revoked";

/** Listener of "assigned" and "revoked". */
export type PartitionsListener = (partitions: TopicPartition[]) => void;

/** One owned partition. A new state is made each time the partition is granted. */
interface PartitionState {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  fetcher: PartitionFetcher | undefined;
  /** Fetching stopped for good (revoked, lost, closed). */
  stopped: boolean;
  /** The broker listed it under `revoking`. */
  revokeRequested: boolean;
  /** The revocation (commit, "revoked", release) is under way. */
  releasing: boolean;
  /** "revoked" was emitted for it. */
  revokedEmitted: boolean;
  /** One past the last processed record. */
  processed: bigint | undefined;
  /** What the group has committed for it, as far as this member knows. */
  committed: bigint | undefined;
}

interface QueuedBatch {
  batch: ConsumedBatch;
  state: PartitionState;
}

const DEFAULT_AUTO_COMMIT_MS = 5_000;
const INT32_MAX = 2 ** 31 - 1;
const GROUP_ID = /^[A-Za-z0-9._-]{1,249}$/;

function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function byTopicPartition(a: TopicPartition, b: TopicPartition): number {
  return a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;
}

/** TopicPartitions on the wire → key → TopicPartition. */
function flatten(list: readonly TopicPartitions[]): Map<string, TopicPartition> {
  const out = new Map<string, TopicPartition>();
  for (const tp of list)
    for (const p of tp.partitions) out.set(keyOf(tp.topic, p), { topic: tp.topic, partition: p });
  return out;
}

/** TopicPartition list → TopicPartitions on the wire. */
function group(list: readonly TopicPartition[]): TopicPartitions[] {
  const byTopic = new Map<string, number[]>();
  for (const tp of [...list].sort(byTopicPartition)) {
    const ps = byTopic.get(tp.topic) ?? [];
    ps.push(tp.partition);
    byTopic.set(tp.topic, ps);
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}

function validate(options: SubscribeOptions): void {
  const g = options?.group;
  if (typeof g !== "string" || !GROUP_ID.test(g) || g === "." || g === "..") {
    throw new InvalidArgumentError(
      `subscribe: invalid group id ${JSON.stringify(g)}: use 1-249 characters of [A-Za-z0-9._-], not "." or ".."`,
    );
  }
  if (!Array.isArray(options.topics) || options.topics.length === 0) {
    throw new InvalidArgumentError("subscribe: topics must be a non-empty array of topic names");
  }
  for (const t of options.topics) {
    if (typeof t !== "string" || t.length === 0) {
      throw new InvalidArgumentError(
        `subscribe: topic names must be non-empty strings, got ${JSON.stringify(t)}`,
      );
    }
  }
  if (options.from !== undefined && options.from !== "earliest" && options.from !== "latest") {
    throw new InvalidArgumentError(
      `subscribe: from must be "earliest" or "latest", got ${String(options.from)}`,
    );
  }
  const name = options.memberName;
  if (name !== undefined && (typeof name !== "string" || Buffer.byteLength(name) > 255)) {
    throw new InvalidArgumentError("subscribe: memberName must be a string of at most 255 bytes");
  }
  const st = options.sessionTimeoutMs;
  if (st !== undefined && !(Number.isInteger(st) && st >= 0 && st <= INT32_MAX)) {
    throw new InvalidArgumentError(`subscribe: sessionTimeoutMs must be a non-negative integer, got ${st}`);
  }
  const ac = options.autoCommitIntervalMs;
  if (ac !== undefined && !(Number.isInteger(ac) && ac >= 0 && ac <= INT32_MAX)) {
    throw new InvalidArgumentError(
      `subscribe: autoCommitIntervalMs must be a non-negative integer, got ${ac}`,
    );
  }
  const mb = options.maxBytes;
  if (mb !== undefined && !(Number.isInteger(mb) && mb >= 0 && mb <= 0xffffffff)) {
    throw new InvalidArgumentError(`subscribe: maxBytes must be a non-negative integer, got ${mb}`);
  }
}

/** A group subscription; made by `consumer.subscribe(options)` (see the file header). */
export class GroupSubscription implements AsyncIterable<ConsumedRecord> {
  private readonly log: Logger;
  private readonly retryOptions: RetryOptions;
  private readonly groupId: string;
  private readonly topics: string[];
  private readonly from: "earliest" | "latest";
  private readonly membership: GroupMembership;
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
  /** Commits run one at a time, so what each leaves in `committed` is the latest. */
  private commitChain: Promise<void> = Promise.resolve();
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

  constructor(
    private readonly ctx: ConsumerContext,
    private readonly options: SubscribeOptions,
    private readonly consumerOptions: ConsumerOptions,
    private readonly onClose?: () => void,
  ) {
    validate(options);
    this.log = ctx.logger.child("consumer").child("group");
    this.retryOptions = resolveRetryOptions({ ...ctx.retry, ...consumerOptions.retry });
    this.groupId = options.group;
    this.topics = [...new Set(options.topics)];
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
        topics: this.topics,
        sessionTimeoutMs: options.sessionTimeoutMs ?? 0,
      },
      {
        message: (response) => {
          const epoch = this.epoch;
          void this.enqueue(() => this.applyAssignment(response.assigned, response.revoking, epoch));
        },
        lost: (error) => this.loseAll(error),
        fatal: (error) => this.fail(error),
      },
    );
    if (options.signal?.aborted) {
      void this.close();
      return;
    }
    options.signal?.addEventListener("abort", this.onAbort, { once: true });
    const interval = options.autoCommitIntervalMs ?? DEFAULT_AUTO_COMMIT_MS;
    if (interval > 0) {
      this.autoCommitTimer = setInterval(() => {
        this.commitStates([...this.owned.values()]).catch((e: unknown) => this.logCommitFailure(e, "auto"));
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
    await this.commitStates([...this.owned.values()]);
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
    if (held && this.owned.get(held.state.key) === held.state) held.state.processed = held.record.offset + 1n;
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

  /** Applies one JoinGroup message (the member's full assignment). */
  private async applyAssignment(
    assignedList: readonly TopicPartitions[],
    revokingList: readonly TopicPartitions[],
    epoch: number,
  ): Promise<void> {
    if (epoch !== this.epoch || this.closed) return;
    const assigned = flatten(assignedList);
    const revoking = flatten(revokingList);
    // Owned partitions the broker no longer lists were taken without a revocation: stop, no commit.
    const gone = [...this.owned.values()].filter((s) => !assigned.has(s.key) && !revoking.has(s.key));
    if (gone.length > 0) {
      this.log.warn("partitions taken without a revocation", {
        group: this.groupId,
        partitions: gone.length,
      });
      this.stopAndDrop(gone);
      for (const s of gone) this.owned.delete(s.key);
      this.emitRevoked(gone);
    }
    // A rebalance can give back a partition whose revocation has not started yet: keep reading it.
    for (const [key] of assigned) {
      const s = this.owned.get(key);
      if (s?.revokeRequested && !s.releasing && !revoking.has(key)) s.revokeRequested = false;
    }
    const unknown: TopicPartition[] = [];
    for (const [key, tp] of revoking) {
      const s = this.owned.get(key);
      if (s) s.revokeRequested = true;
      else unknown.push(tp);
    }
    // Revoking what this member never started (e.g. granted and taken back before it was applied).
    if (unknown.length > 0) await this.release(unknown, epoch);
    const fresh: PartitionState[] = [];
    for (const [key, tp] of assigned) {
      if (revoking.has(key) || this.owned.has(key)) continue;
      const s: PartitionState = {
        key,
        topic: tp.topic,
        partition: tp.partition,
        fetcher: undefined,
        stopped: false,
        revokeRequested: false,
        releasing: false,
        revokedEmitted: false,
        processed: undefined,
        committed: undefined,
      };
      this.owned.set(key, s);
      fresh.push(s);
    }
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
   * stop, drop, commit, "revoked", ReleasePartitions.
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
      await this.commitStates(states);
    } catch (e) {
      this.logCommitFailure(e, "revoke");
    }
    if (epoch !== this.epoch) return; // lost meanwhile: already reported, no longer ours to release
    const revoked = states.filter((s) => this.owned.get(s.key) === s);
    for (const s of revoked) this.owned.delete(s.key);
    this.emitRevoked(revoked);
    await this.release(revoked, epoch);
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

  private async release(partitions: readonly TopicPartition[], epoch: number): Promise<void> {
    const memberId = this.membership.memberId;
    if (partitions.length === 0 || memberId === undefined || epoch !== this.epoch) return;
    try {
      await unaryCall<ReleasePartitionsRequest, ReleasePartitionsResponse>(
        (req, md, opts, cb) => this.ctx.connection.group.releasePartitions(req, md, opts, cb),
        { groupId: this.groupId, memberId, partitions: group(partitions) },
        this.ctx.connection.metadata(),
        this.ctx.requestTimeoutMs,
      );
    } catch (e) {
      const err = fromGrpcError(e);
      this.log.warn("releasing partitions failed", {
        group: this.groupId,
        memberId,
        error: err.message,
        code: err.codeName,
      });
    }
  }

  /** Looks up where each new partition starts, then starts its fetch. */
  private async startFetching(states: readonly PartitionState[], epoch: number): Promise<void> {
    const signal = this.epochController.signal;
    const stale = (): boolean => epoch !== this.epoch || this.closed;
    let starts: Map<string, FetchStart>;
    try {
      starts = await this.startOffsets(states, signal);
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
      this.startFetch(s, starts.get(s.key)!);
    }
  }

  /** The committed offset of each partition, else `from` ("latest" resolved to an offset). */
  private async startOffsets(
    states: readonly PartitionState[],
    signal: AbortSignal,
  ): Promise<Map<string, FetchStart>> {
    const { connection, requestTimeoutMs } = this.ctx;
    const topics = [...new Set(states.map((s) => s.topic))].sort();
    const res = await retry(
      () =>
        unaryCall<FetchCommittedOffsetsRequest, FetchCommittedOffsetsResponse>(
          (req, md, opts, cb) => connection.group.fetchCommittedOffsets(req, md, opts, cb),
          { groupId: this.groupId, topics },
          connection.metadata(),
          requestTimeoutMs,
        ),
      this.retryOptions,
      { signal },
    );
    const committed = new Map(res.offsets.map((o) => [keyOf(o.topic, o.partition), o.offset]));
    const starts = new Map<string, FetchStart>();
    const latest: PartitionState[] = [];
    for (const s of states) {
      const c = committed.get(s.key);
      if (c !== undefined) {
        s.committed = c;
        starts.set(s.key, { $case: "offset", value: c });
      } else if (this.from === "earliest") {
        starts.set(s.key, { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST });
      } else {
        latest.push(s);
      }
    }
    for (const topic of new Set(latest.map((s) => s.topic))) {
      const ofTopic = latest.filter((s) => s.topic === topic);
      const lo = await retry(
        () =>
          unaryCall<ListOffsetsRequest, ListOffsetsResponse>(
            (req, md, opts, cb) => connection.log.listOffsets(req, md, opts, cb),
            { topic, partitions: ofTopic.map((s) => s.partition), timestampMs: undefined },
            connection.metadata(),
            requestTimeoutMs,
          ),
        this.retryOptions,
        { signal },
      );
      for (const s of ofTopic) {
        const po = lo.partitions.find((p) => p.partition === s.partition);
        if (po === undefined) {
          starts.set(s.key, { $case: "position", value: OffsetPosition.OFFSET_POSITION_LATEST });
          continue;
        }
        // The group skips what came before: keep that starting point even if nothing is read.
        s.processed = po.latest;
        starts.set(s.key, { $case: "offset", value: po.latest });
      }
    }
    return starts;
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
      this.fail(fromGrpcError(e));
    });
  }

  /** Commits the processed offsets of `states` that moved since their last commit. */
  private commitStates(states: readonly PartitionState[]): Promise<void> {
    const run = this.commitChain.then(async () => {
      const memberId = this.membership.memberId;
      const generationId = this.membership.generation;
      // Only partitions still owned: a commit is all or nothing, and a released one would fail it.
      const todo = states
        .filter(
          (s) => this.owned.get(s.key) === s && s.processed !== undefined && s.processed !== s.committed,
        )
        .map((s) => ({ state: s, offset: s.processed! }));
      if (todo.length === 0 || memberId === undefined || generationId === undefined) return;
      const request: CommitOffsetsRequest = {
        groupId: this.groupId,
        memberId,
        generationId,
        offsets: todo.map(({ state, offset }) => ({
          topic: state.topic,
          partition: state.partition,
          offset,
          metadata: "",
        })),
      };
      await retry(
        () =>
          unaryCall<CommitOffsetsRequest, CommitOffsetsResponse>(
            (req, md, opts, cb) => this.ctx.connection.group.commitOffsets(req, md, opts, cb),
            request,
            this.ctx.connection.metadata(),
            this.ctx.requestTimeoutMs,
          ),
        { ...this.retryOptions, maxAttempts: Math.min(3, this.retryOptions.maxAttempts) },
      );
      for (const { state, offset } of todo) {
        if (state.committed === undefined || offset > state.committed) state.committed = offset;
      }
      this.log.debug("committed", { group: this.groupId, memberId, partitions: todo.length });
    });
    this.commitChain = run.catch(() => {});
    return run;
  }

  private logCommitFailure(e: unknown, when: string): void {
    const err = fromGrpcError(e);
    this.log.warn(
      err.code === Code.FAILED_PRECONDITION ? "commit refused (member gone or stale)" : "commit failed",
      { group: this.groupId, when, error: err.message, code: err.codeName },
    );
  }

  /** The membership ended: stop everything, report every partition revoked (no commit). */
  private loseAll(error: RillError): void {
    this.epoch++;
    this.epochController.abort(error);
    this.epochController = new AbortController();
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
        await this.commitStates(states);
      } catch (e) {
        this.logCommitFailure(e, "close");
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
