/**
 * The offsets side of a group subscription (group-subscription.ts): where a newly granted partition
 * starts (the group's committed offset, else the subscription's `from`) and committing processed
 * offsets (CommitOffsets, one commit at a time so what each leaves in `committed` is the latest).
 *
 * A commit is all or nothing on the broker, so it carries only the partitions the caller says are
 * committable (owned, not gone) and whose processed offset moved since their last commit. Start
 * lookups are retried with the client's bounded retry; a topic that turns out to be gone (NOT_FOUND
 * from ListOffsets) yields that error for its partitions instead of a start.
 */
import { unaryCall } from "../connection.js";
import { Code, fromGrpcError, type RillError } from "../errors.js";
import type {
  CommitOffsetsRequest,
  CommitOffsetsResponse,
  FetchCommittedOffsetsRequest,
  FetchCommittedOffsetsResponse,
} from "../gen/rill/v1/group.js";
import { type ListOffsetsRequest, type ListOffsetsResponse, OffsetPosition } from "../gen/rill/v1/log.js";
import type { Logger } from "../logger.js";
import { type RetryOptions, retry } from "../retry.js";
import type { ConsumerContext } from "./consumer.js";
import { keyOf, type PartitionState } from "./group-partitions.js";
import type { FetchStart } from "./partition-fetcher.js";

/** What the offsets need from the subscription. */
export interface GroupOffsetsOptions {
  ctx: ConsumerContext;
  logger: Logger;
  retry: RetryOptions;
  groupId: string;
  from: "earliest" | "latest";
  /** The current member id and generation (undefined between memberships). */
  member: () => { memberId: string | undefined; generation: bigint | undefined };
}

/** Start lookups and commits of one subscription. */
export class GroupOffsets {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: GroupOffsetsOptions) {}

  /**
   * Commits the processed offsets of `states` that `committable` accepts and that moved since their
   * last commit. Rejects with the broker's error (FAILED_PRECONDITION: member gone or stale).
   */
  commit(states: readonly PartitionState[], committable: (s: PartitionState) => boolean): Promise<void> {
    const run = this.chain.then(async () => {
      const { memberId, generation } = this.o.member();
      const todo = states
        .filter((s) => committable(s) && s.processed !== undefined && s.processed !== s.committed)
        .map((s) => ({ state: s, offset: s.processed! }));
      if (todo.length === 0 || memberId === undefined || generation === undefined) return;
      const { connection, requestTimeoutMs } = this.o.ctx;
      const request: CommitOffsetsRequest = {
        groupId: this.o.groupId,
        memberId,
        generationId: generation,
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
            (req, md, opts, cb) => connection.group.commitOffsets(req, md, opts, cb),
            request,
            connection.metadata(),
            requestTimeoutMs,
          ),
        { ...this.o.retry, maxAttempts: Math.min(3, this.o.retry.maxAttempts) },
      );
      for (const { state, offset } of todo) {
        if (state.committed === undefined || offset > state.committed) state.committed = offset;
      }
      this.o.logger.debug("committed", { group: this.o.groupId, memberId, partitions: todo.length });
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /** Logs a commit failure that is not thrown (auto-commit, revoke, close). */
  logCommitFailure(e: unknown, when: string): void {
    const err = fromGrpcError(e);
    this.o.logger.warn(
      err.code === Code.FAILED_PRECONDITION ? "commit refused (member gone or stale)" : "commit failed",
      { group: this.o.groupId, when, error: err.message, code: err.codeName },
    );
  }

  /**
   * Where each of `states` starts: its committed offset, else `from` ("latest" resolved to an
   * offset, which then counts as processed so the group keeps that starting point). A partition
   * whose topic is gone maps to the NOT_FOUND error. Rejects with other lookup failures.
   */
  async starts(
    states: readonly PartitionState[],
    signal: AbortSignal,
  ): Promise<Map<string, FetchStart | RillError>> {
    const { connection, requestTimeoutMs } = this.o.ctx;
    const topics = [...new Set(states.map((s) => s.topic))].sort();
    const res = await retry(
      () =>
        unaryCall<FetchCommittedOffsetsRequest, FetchCommittedOffsetsResponse>(
          (req, md, opts, cb) => connection.group.fetchCommittedOffsets(req, md, opts, cb),
          { groupId: this.o.groupId, topics },
          connection.metadata(),
          requestTimeoutMs,
        ),
      this.o.retry,
      { signal },
    );
    const committed = new Map(res.offsets.map((o) => [keyOf(o.topic, o.partition), o.offset]));
    const starts = new Map<string, FetchStart | RillError>();
    const latest: PartitionState[] = [];
    for (const s of states) {
      const c = committed.get(s.key);
      if (c !== undefined) {
        s.committed = c;
        starts.set(s.key, { $case: "offset", value: c });
      } else if (this.o.from === "earliest") {
        starts.set(s.key, { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST });
      } else {
        latest.push(s);
      }
    }
    for (const topic of new Set(latest.map((s) => s.topic))) {
      const ofTopic = latest.filter((s) => s.topic === topic);
      let lo: ListOffsetsResponse;
      try {
        lo = await retry(
          () =>
            unaryCall<ListOffsetsRequest, ListOffsetsResponse>(
              (req, md, opts, cb) => connection.log.listOffsets(req, md, opts, cb),
              { topic, partitions: ofTopic.map((s) => s.partition), timestampMs: undefined },
              connection.metadata(),
              requestTimeoutMs,
            ),
          this.o.retry,
          { signal },
        );
      } catch (e) {
        const err = fromGrpcError(e);
        if (err.code !== Code.NOT_FOUND || signal.aborted) throw e;
        for (const s of ofTopic) starts.set(s.key, err);
        continue;
      }
      for (const s of ofTopic) {
        const po = lo.partitions.find((p) => p.partition === s.partition);
        if (po === undefined) {
          starts.set(s.key, { $case: "position", value: OffsetPosition.OFFSET_POSITION_LATEST });
          continue;
        }
        s.processed = po.latest;
        starts.set(s.key, { $case: "offset", value: po.latest });
      }
    }
    return starts;
  }
}
