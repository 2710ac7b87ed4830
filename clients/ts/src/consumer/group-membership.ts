/**
 * One member's side of the GroupService membership protocol (proto/rill/v1/group.proto): the
 * JoinGroup server stream, heartbeats, and rejoining after the membership is lost. What to do with
 * an assignment is the subscription's business (group-subscription.ts); this module only reports:
 *
 * - `message`: every JoinGroup response (the first one after each join included);
 * - `lost`: the membership ended without being asked to (the stream ended or failed, or a heartbeat
 *   was refused with FAILED_PRECONDITION: the broker removed the member). A rejoin follows, after a
 *   backoff delay bounded by `retry.maxDelayMs`, with unbounded attempts while the membership runs;
 * - `fatal`: joining cannot succeed (NOT_FOUND: a topic does not exist; INVALID_ARGUMENT: a bad group
 *   id, member name or session timeout; RESOURCE_EXHAUSTED: the group is full; UNIMPLEMENTED: a
 *   broker without groups; an authentication failure), or the very first join failed with retriable
 *   errors for longer than the bounded retry allows (like a plain consumer's start, so a missing
 *   broker is reported instead of waited for). Nothing follows a fatal event. A NOT_FOUND always
 *   names the missing topic (the broker's message does; otherwise the subscribed topics are listed)
 *   and, on a rejoin, says that a subscribed topic was deleted since the member first joined.
 *
 * Heartbeats go every `heartbeat_interval_ms` the broker asked for, one at a time. A heartbeat that
 * fails otherwise (UNAVAILABLE, a deadline) is only logged: the stream tells when the broker is gone.
 * `release()` sends ReleasePartitions; the broker treats it as idempotent, so a retriable failure
 * (UNAVAILABLE, a deadline) is retried with backoff while the membership lasts, for at most its
 * session timeout (past that the broker removes the member anyway, which ends the membership).
 * `leave()` sends LeaveGroup (confirmed: the broker has reassigned the member's partitions when it
 * resolves), then cancels the stream; `stop()` only cancels. After either, no event is reported.
 */
import type { ClientReadableStream, StatusObject } from "@grpc/grpc-js";
import { type Connection, unaryCall } from "../connection.js";
import {
  BrokerUnavailableError,
  Code,
  fromGrpcError,
  type RillError,
  TopicNotFoundError,
} from "../errors.js";
import type {
  HeartbeatRequest,
  HeartbeatResponse,
  JoinGroupRequest,
  JoinGroupResponse,
  LeaveGroupRequest,
  LeaveGroupResponse,
  ReleasePartitionsRequest,
  ReleasePartitionsResponse,
  TopicPartitions,
} from "../gen/rill/v1/group.js";
import type { Logger } from "../logger.js";
import { backoffDelay, type RetryOptions, sleep } from "../retry.js";

/** Who joins what. */
export interface MembershipOptions {
  groupId: string;
  memberName: string;
  topics: readonly string[];
  /** 0: the broker's default. */
  sessionTimeoutMs: number;
}

/** What the membership reports (see the file header). */
export interface MembershipHandlers {
  message(response: JoinGroupResponse): void;
  lost(error: RillError): void;
  fatal(error: RillError): void;
}

/** What the membership needs from its client. */
export interface MembershipContext {
  connection: Connection;
  logger: Logger;
  retry: RetryOptions;
  requestTimeoutMs: number;
}

/** Statuses of JoinGroup after which joining again cannot help. */
const FATAL_JOIN_CODES: ReadonlySet<number> = new Set([
  Code.NOT_FOUND,
  Code.INVALID_ARGUMENT,
  Code.RESOURCE_EXHAUSTED,
  Code.UNIMPLEMENTED,
  Code.UNAUTHENTICATED,
  Code.PERMISSION_DENIED,
]);

/** One JoinGroup stream and what it told. */
interface Stream {
  call: ClientReadableStream<JoinGroupResponse>;
  memberId: string | undefined;
  generation: bigint | undefined;
  /** The session timeout in force (0 until the first message). */
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimer: NodeJS.Timeout | undefined;
  /** Aborted when the stream ends or the membership stops (ends release retries). */
  ended: AbortController;
}

/** The membership of one member in one group; see the file header. */
export class GroupMembership {
  private stream: Stream | undefined;
  private stopped = false;
  private started = false;
  /** Whether some join ever got its first message. */
  private joinedOnce = false;
  /** Failed joins since the last message (drives the backoff). */
  private failures = 0;
  private firstAttemptAt = 0;
  private rejoinTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: MembershipContext,
    private readonly options: MembershipOptions,
    private readonly handlers: MembershipHandlers,
  ) {}

  /** The member id of the current membership, once its first message arrived. */
  get memberId(): string | undefined {
    return this.stream?.memberId;
  }

  /** The generation of the latest message of the current membership. */
  get generation(): bigint | undefined {
    return this.stream?.generation;
  }

  /** Joins (once). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.firstAttemptAt = Date.now();
    this.join();
  }

  private join(): void {
    this.rejoinTimer = undefined;
    if (this.stopped) return;
    const request: JoinGroupRequest = {
      groupId: this.options.groupId,
      memberName: this.options.memberName,
      topics: [...this.options.topics],
      sessionTimeoutMs: this.options.sessionTimeoutMs,
    };
    const call = this.ctx.connection.group.joinGroup(request, this.ctx.connection.metadata());
    const stream: Stream = {
      call,
      memberId: undefined,
      generation: undefined,
      sessionTimeoutMs: 0,
      heartbeatIntervalMs: 0,
      heartbeatTimer: undefined,
      ended: new AbortController(),
    };
    this.stream = stream;
    call.on("data", (response: JoinGroupResponse) => this.onMessage(stream, response));
    // A failed status comes as "error" (then "status"); a clean end only as "status".
    call.on("error", (e: unknown) => this.onEnd(stream, fromGrpcError(e)));
    call.on("status", (s: StatusObject) => {
      // A clean end (status OK) is an end of the membership all the same.
      if (s.code === Code.OK) this.onEnd(stream, new BrokerUnavailableError("the JoinGroup stream ended"));
    });
  }

  private onMessage(stream: Stream, response: JoinGroupResponse): void {
    if (this.stopped || this.stream !== stream) return;
    const first = stream.memberId === undefined;
    stream.memberId = response.memberId;
    stream.generation = response.generationId;
    stream.sessionTimeoutMs = response.sessionTimeoutMs;
    this.failures = 0;
    this.joinedOnce = true;
    if (first) {
      this.ctx.logger.info("joined group", {
        group: this.options.groupId,
        memberId: response.memberId,
        generation: response.generationId.toString(),
        sessionTimeoutMs: response.sessionTimeoutMs,
      });
    }
    const interval = response.heartbeatIntervalMs > 0 ? response.heartbeatIntervalMs : 1_000;
    if (interval !== stream.heartbeatIntervalMs) {
      stream.heartbeatIntervalMs = interval;
      this.scheduleHeartbeat(stream);
    }
    this.handlers.message(response);
  }

  private onEnd(stream: Stream, error: RillError): void {
    if (this.stopped || this.stream !== stream) return;
    this.stream = undefined;
    clearTimeout(stream.heartbeatTimer);
    stream.ended.abort();
    stream.call.cancel();
    const joined = stream.memberId !== undefined;
    if (FATAL_JOIN_CODES.has(error.code)) {
      this.fail(this.joinError(error));
      return;
    }
    this.failures++;
    if (!this.joinedOnce) {
      // The very first join: bounded, like any other start-up call.
      const r = this.ctx.retry;
      const delay = backoffDelay(this.failures, r);
      if (this.failures >= r.maxAttempts || Date.now() - this.firstAttemptAt + delay > r.maxElapsedMs) {
        this.fail(error);
        return;
      }
      this.ctx.logger.warn("joining the group failed, retrying", {
        group: this.options.groupId,
        attempt: this.failures,
        delayMs: delay,
        error: error.message,
        code: error.codeName,
      });
      this.rejoinTimer = setTimeout(() => this.join(), delay);
      return;
    }
    const delay = backoffDelay(this.failures, this.ctx.retry);
    this.ctx.logger.warn(
      joined ? "group membership lost, rejoining" : "rejoining the group failed, retrying",
      {
        group: this.options.groupId,
        memberId: stream.memberId,
        attempt: this.failures,
        delayMs: delay,
        error: error.message,
        code: error.codeName,
      },
    );
    if (joined) this.handlers.lost(error);
    // `lost` may have stopped the membership (the subscription closing).
    if (!this.stopped) this.rejoinTimer = setTimeout(() => this.join(), delay);
  }

  /** A NOT_FOUND from JoinGroup, worded to name the topic (see the file header). */
  private joinError(error: RillError): RillError {
    if (error.code !== Code.NOT_FOUND) return error;
    const { groupId, topics } = this.options;
    const named = topics.some((t) => error.message.includes(`"${t}"`));
    const detail = named
      ? error.message
      : `${error.message} (subscribed topics: ${topics.map((t) => JSON.stringify(t)).join(", ")})`;
    const message = this.joinedOnce
      ? `rejoining group "${groupId}" failed: ${detail}; a subscribed topic was deleted since this member joined: subscribe again without it`
      : `joining group "${groupId}" failed: ${detail}`;
    return new TopicNotFoundError(message, { cause: error, metadata: error.metadata });
  }

  private fail(error: RillError): void {
    this.stop();
    this.ctx.logger.error("cannot join the group", {
      group: this.options.groupId,
      error: error.message,
      code: error.codeName,
    });
    this.handlers.fatal(error);
  }

  private scheduleHeartbeat(stream: Stream): void {
    clearTimeout(stream.heartbeatTimer);
    stream.heartbeatTimer = setTimeout(() => void this.heartbeat(stream), stream.heartbeatIntervalMs);
  }

  private async heartbeat(stream: Stream): Promise<void> {
    stream.heartbeatTimer = undefined;
    if (this.stopped || this.stream !== stream || stream.memberId === undefined) return;
    const request: HeartbeatRequest = { groupId: this.options.groupId, memberId: stream.memberId };
    try {
      await unaryCall<HeartbeatRequest, HeartbeatResponse>(
        (req, md, opts, cb) => this.ctx.connection.group.heartbeat(req, md, opts, cb),
        request,
        this.ctx.connection.metadata(),
        Math.min(this.ctx.requestTimeoutMs, Math.max(stream.heartbeatIntervalMs * 3, 1_000)),
      );
    } catch (e) {
      if (this.stopped || this.stream !== stream) return;
      const err = fromGrpcError(e);
      if (err.code === Code.FAILED_PRECONDITION) {
        // Removed (session expired): the stream ends too, but do not wait for it.
        this.onEnd(stream, err);
        return;
      }
      this.ctx.logger.warn("heartbeat failed", {
        group: this.options.groupId,
        memberId: stream.memberId,
        error: err.message,
        code: err.codeName,
      });
    }
    if (!this.stopped && this.stream === stream && stream.heartbeatTimer === undefined) {
      this.scheduleHeartbeat(stream);
    }
  }

  /**
   * Ends the current membership as if its stream had failed with `error` (a retriable one): `lost`
   * is reported and a rejoin follows.
   */
  restart(error: RillError): void {
    const stream = this.stream;
    if (stream && !this.stopped) this.onEnd(stream, error);
  }

  /**
   * Gives up `partitions`, asked for by the message of `generation` (ReleasePartitions). Retries a
   * retriable failure with backoff while this membership lasts, for at most its session timeout;
   * logs what it gives up on. Resolves when released, given up, or `signal` aborts; never rejects.
   */
  async release(
    partitions: readonly TopicPartitions[],
    generation: bigint,
    signal?: AbortSignal,
  ): Promise<void> {
    const stream = this.stream;
    const memberId = stream?.memberId;
    if (!stream || memberId === undefined || partitions.length === 0 || this.stopped) return;
    const request: ReleasePartitionsRequest = {
      groupId: this.options.groupId,
      memberId,
      partitions: [...partitions],
      generationId: generation,
    };
    const bound = stream.sessionTimeoutMs > 0 ? stream.sessionTimeoutMs : this.ctx.retry.maxElapsedMs;
    const deadline = Date.now() + bound;
    // Stops when the membership ends or the caller aborts (AbortSignal.any needs Node 20.3).
    const stopper = new AbortController();
    const stop = stopper.signal;
    const onStop = (): void => stopper.abort();
    for (const s of [signal, stream.ended.signal]) {
      if (s?.aborted) return;
      s?.addEventListener("abort", onStop, { once: true });
    }
    try {
      await this.releaseWithRetry(request, deadline, stop);
    } finally {
      signal?.removeEventListener("abort", onStop);
      stream.ended.signal.removeEventListener("abort", onStop);
    }
  }

  private async releaseWithRetry(
    request: ReleasePartitionsRequest,
    deadline: number,
    stop: AbortSignal,
  ): Promise<void> {
    const { groupId, memberId } = request;
    for (let attempt = 1; ; attempt++) {
      try {
        await unaryCall<ReleasePartitionsRequest, ReleasePartitionsResponse>(
          (req, md, opts, cb) => this.ctx.connection.group.releasePartitions(req, md, opts, cb),
          request,
          this.ctx.connection.metadata(),
          Math.max(1, Math.min(this.ctx.requestTimeoutMs, deadline - Date.now())),
        );
        return;
      } catch (e) {
        if (stop.aborted) return; // the membership ended: nothing of it is left to release
        const err = fromGrpcError(e);
        const delay = backoffDelay(attempt, this.ctx.retry);
        const fields = { group: groupId, memberId, attempt, error: err.message, code: err.codeName };
        if (!err.retriable || Date.now() + delay > deadline) {
          this.ctx.logger.warn("releasing partitions failed", fields);
          return;
        }
        this.ctx.logger.warn("releasing partitions failed, retrying", { ...fields, delayMs: delay });
        try {
          await sleep(delay, stop);
        } catch {
          return;
        }
      }
    }
  }

  /**
   * Leaves the group: LeaveGroup (the broker reassigns before answering; a failure is logged), then
   * the stream is cancelled. Nothing is reported afterwards.
   */
  async leave(): Promise<void> {
    const stream = this.stream;
    this.stopInternal();
    if (stream?.memberId !== undefined) {
      try {
        await unaryCall<LeaveGroupRequest, LeaveGroupResponse>(
          (req, md, opts, cb) => this.ctx.connection.group.leaveGroup(req, md, opts, cb),
          { groupId: this.options.groupId, memberId: stream.memberId },
          this.ctx.connection.metadata(),
          this.ctx.requestTimeoutMs,
        );
        this.ctx.logger.info("left group", { group: this.options.groupId, memberId: stream.memberId });
      } catch (e) {
        const err = fromGrpcError(e);
        this.ctx.logger.warn("leaving the group failed; closing the stream leaves it too", {
          group: this.options.groupId,
          memberId: stream.memberId,
          error: err.message,
          code: err.codeName,
        });
      }
    }
    stream?.call.cancel();
  }

  /** Cancels the stream and every timer, without LeaveGroup. Idempotent. */
  stop(): void {
    const stream = this.stream;
    this.stopInternal();
    stream?.call.cancel();
  }

  private stopInternal(): void {
    this.stopped = true;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = undefined;
    const stream = this.stream;
    if (stream) {
      clearTimeout(stream.heartbeatTimer);
      stream.ended.abort();
    }
    // Keep `stream` readable (memberId) until leave() is done with it; handlers check `stopped`.
  }
}
