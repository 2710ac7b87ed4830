/**
 * GroupService: translates between the wire and the group coordinator (groups/coordinator.ts).
 *
 * JoinGroup's server stream is the membership: it is registered as an open stream (a drain ends it
 * with UNAVAILABLE), its cancellation (the client closed it or the connection died) removes the
 * member, and a removed member's stream ends with FAILED_PRECONDITION. Assignments are small and
 * only the latest matters, so while grpc-js reports a full buffer the stream keeps just the newest
 * one and writes it on `drain`: a member that stops reading costs one message, not one per
 * rebalance.
 */
import type { ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import {
  type CommitOffsetsRequest,
  type CommittedOffset,
  type DeleteGroupRequest,
  type DescribeGroupRequest,
  type DescribeGroupResponse,
  type FetchCommittedOffsetsRequest,
  type FetchCommittedOffsetsResponse,
  GroupState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinGroupRequest,
  JoinGroupResponse,
  type LeaveGroupRequest,
  type ListGroupsResponse,
  type ReleasePartitionsRequest,
  type ResetOffsetsRequest,
  type ResetOffsetsResponse,
  type TopicPartitions,
} from "../../../clients/ts/src/gen/rill/v1/group.js";
import { OffsetPosition } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { FailedPreconditionError, InvalidRequestError, ShuttingDownError } from "../broker/errors.js";
import type { ResetTarget } from "../groups/coordinator.js";
import type { GroupStateName, MemberAssignment, MemberSink, TopicPartition } from "../groups/group.js";
import type { StoredOffset } from "../groups/offset-store.js";
import type { OpenStream, RpcContext } from "./context.js";
import { toServiceError } from "./status.js";
import { unary } from "./unary.js";

const INT64_MAX = 2n ** 63n - 1n;

export function groupServiceImplementation(ctx: RpcContext): UntypedServiceImplementation {
  const groups = () => ctx.core.groups;
  return {
    joinGroup: (call: ServerWritableStream<JoinGroupRequest, JoinGroupResponse>) => joinGroup(ctx, call),
    // Heartbeats, releases and commits go on while the broker drains: members are handing their
    // partitions back (GroupCoordinator.drain).
    heartbeat: unary(ctx, (_, req: HeartbeatRequest): HeartbeatResponse => {
      return { generationId: BigInt(groups().heartbeat(req.groupId, req.memberId)) };
    }),
    releasePartitions: unary(ctx, (_, req: ReleasePartitionsRequest) => {
      if (req.generationId < 0n || req.generationId > INT64_MAX) {
        throw new InvalidRequestError(`generation_id ${req.generationId} is out of range`);
      }
      groups().release(
        req.groupId,
        req.memberId,
        fromTopicPartitions(req.partitions),
        Number(req.generationId),
      );
      return {};
    }),
    leaveGroup: unary(ctx, (_, req: LeaveGroupRequest) => {
      groups().leave(req.groupId, req.memberId);
      return {};
    }),
    commitOffsets: unary(ctx, async (_, req: CommitOffsetsRequest) => {
      if (req.generationId > INT64_MAX || req.generationId < 0n) {
        throw new InvalidRequestError(`generation_id ${req.generationId} is out of range`);
      }
      await groups().commit(req.groupId, req.memberId, Number(req.generationId), req.offsets);
      return {};
    }),
    fetchCommittedOffsets: unary(
      ctx,
      (_, req: FetchCommittedOffsetsRequest): FetchCommittedOffsetsResponse => ({
        offsets: groups().committed(req.groupId, req.topics).map(toCommitted),
      }),
    ),
    listGroups: unary(
      ctx,
      (): ListGroupsResponse => ({
        groups: groups()
          .list()
          .map((g) => ({
            groupId: g.groupId,
            state: toState(g.state),
            memberCount: g.memberCount,
            topics: g.topics,
          })),
      }),
    ),
    describeGroup: unary(ctx, (_, req: DescribeGroupRequest): DescribeGroupResponse => {
      const d = groups().describe(req.groupId);
      return {
        groupId: d.groupId,
        state: toState(d.state),
        generationId: BigInt(d.generation),
        members: d.members.map(({ member, assigned, revoking }) => ({
          memberId: member.id,
          memberName: member.name,
          topics: [...member.topics],
          assigned: toTopicPartitions(assigned),
          revoking: toTopicPartitions(revoking),
          sessionTimeoutMs: member.sessionTimeoutMs,
          clientAddress: member.address,
        })),
        partitions: d.partitions.map((p) => ({
          topic: p.topic,
          partition: p.partition,
          memberId: p.memberId,
          committedOffset: p.committed,
          logStartOffset: p.logStartOffset,
          highWatermark: p.highWatermark,
          lag: p.lag,
        })),
      };
    }),
    deleteGroup: unary(ctx, async (_, req: DeleteGroupRequest) => {
      notDraining(ctx);
      await groups().deleteGroup(req.groupId);
      return {};
    }),
    resetOffsets: unary(ctx, async (_, req: ResetOffsetsRequest): Promise<ResetOffsetsResponse> => {
      notDraining(ctx);
      const offsets = await groups().resetOffsets(req.groupId, req.topics, resetTarget(req));
      return { offsets: offsets.map(toCommitted) };
    }),
  };
}

function joinGroup(ctx: RpcContext, call: ServerWritableStream<JoinGroupRequest, JoinGroupResponse>): void {
  const req = call.request;
  let memberId: string | undefined;
  let ended = false;
  let pending: JoinGroupResponse | undefined;
  let waitingForDrain = false;

  const end = (err?: unknown) => {
    if (ended) return;
    ended = true;
    ctx.streams.delete(stream);
    if (err === undefined) call.end();
    else call.emit("error", toServiceError(err, ctx.logger));
  };
  const leave = () => {
    ended = true;
    ctx.streams.delete(stream);
    if (memberId !== undefined) ctx.core.groups.leave(req.groupId, memberId);
  };
  const write = (res: JoinGroupResponse) => {
    if (ended) return;
    if (waitingForDrain) {
      pending = res; // only the newest assignment matters
      return;
    }
    stream.sentBytes += JoinGroupResponse.encode(res).finish().byteLength; // rare and small
    if (!call.write(res)) {
      waitingForDrain = true;
      stream.blocked = true;
      call.once("drain", () => {
        waitingForDrain = false;
        stream.blocked = false;
        const next = pending;
        pending = undefined;
        if (next) write(next);
      });
    }
  };
  const sink: MemberSink = {
    push: (a: MemberAssignment) => write(toJoinResponse(a)),
    end: (reason, message) => {
      if (reason === "left") end();
      else end(new FailedPreconditionError(message));
    },
  };
  const stream: OpenStream = {
    drain: () => {
      const id = memberId;
      end(new ShuttingDownError());
      if (id !== undefined) ctx.core.groups.leave(req.groupId, id);
    },
    sentBytes: 0,
    blocked: false,
  };
  call.once("cancelled", leave);
  call.once("error", leave);
  ctx.streams.add(stream);
  try {
    notDraining(ctx);
    const member = ctx.core.groups.join(
      {
        groupId: req.groupId,
        memberName: req.memberName,
        topics: req.topics,
        sessionTimeoutMs: req.sessionTimeoutMs,
        address: call.getPeer(),
      },
      sink,
    );
    memberId = member.id;
  } catch (err) {
    end(err);
  }
}

function notDraining(ctx: RpcContext): void {
  if (ctx.draining) throw new ShuttingDownError();
}

function resetTarget(req: ResetOffsetsRequest): ResetTarget {
  const to = req.to;
  if (to === undefined)
    throw new InvalidRequestError("set where to reset to: position, offset or timestamp_ms");
  if (to.$case === "position") {
    if (to.value === OffsetPosition.OFFSET_POSITION_EARLIEST) return { kind: "earliest" };
    if (to.value === OffsetPosition.OFFSET_POSITION_LATEST) return { kind: "latest" };
    throw new InvalidRequestError("position must be EARLIEST or LATEST");
  }
  if (to.$case === "offset") return { kind: "offset", offset: to.value };
  if (to.value < 0n) throw new InvalidRequestError(`timestamp_ms must be >= 0, not ${to.value}`);
  const ms = to.value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(to.value);
  return { kind: "timestamp", ms };
}

function toJoinResponse(a: MemberAssignment): JoinGroupResponse {
  return {
    memberId: a.memberId,
    generationId: BigInt(a.generation),
    assigned: toTopicPartitions(a.assigned),
    revoking: toTopicPartitions(a.revoking),
    sessionTimeoutMs: a.sessionTimeoutMs,
    heartbeatIntervalMs: Math.max(1, Math.floor(a.sessionTimeoutMs / 3)),
  };
}

function toTopicPartitions(list: readonly TopicPartition[]): TopicPartitions[] {
  const out: TopicPartitions[] = [];
  for (const { topic, partition } of list) {
    const last = out[out.length - 1];
    if (last?.topic === topic) last.partitions.push(partition);
    else out.push({ topic, partitions: [partition] });
  }
  return out;
}

function fromTopicPartitions(list: readonly TopicPartitions[]): TopicPartition[] {
  return list.flatMap((tp) => tp.partitions.map((partition) => ({ topic: tp.topic, partition })));
}

function toCommitted(o: StoredOffset): CommittedOffset {
  return {
    topic: o.topic,
    partition: o.partition,
    offset: o.offset,
    metadata: o.metadata,
    commitTimeMs: BigInt(o.commitTimeMs),
  };
}

function toState(s: GroupStateName): GroupState {
  if (s === "empty") return GroupState.GROUP_STATE_EMPTY;
  if (s === "stable") return GroupState.GROUP_STATE_STABLE;
  return GroupState.GROUP_STATE_REBALANCING;
}
