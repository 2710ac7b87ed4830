/**
 * Consumer-group administration through the GroupService: list, describe and delete groups, read
 * and reset their committed offsets. {@link Admin} extends {@link GroupAdmin}, so these are Admin
 * methods; this module only needs the Admin's unary call (deadline, retries for reads).
 *
 * Reads (listGroups, describeGroup, fetchCommittedOffsets) are retried on retriable errors;
 * deleteGroup and resetOffsets are not (a retry after a lost answer would report NOT_FOUND for the
 * caller's own delete, or reset again after the group's consumers restarted). Arguments are checked
 * before anything is sent: a bad one rejects with an InvalidArgumentError.
 */
import type { CallOptions, Metadata, ServiceError } from "@grpc/grpc-js";
import { InvalidArgumentError } from "../errors.js";
import {
  type CommittedOffset,
  type DeleteGroupRequest,
  type DeleteGroupResponse,
  type DescribeGroupRequest,
  type DescribeGroupResponse,
  type FetchCommittedOffsetsRequest,
  type FetchCommittedOffsetsResponse,
  type GroupServiceClient,
  GroupState,
  type GroupSummary,
  type ListGroupsRequest,
  type ListGroupsResponse,
  type ResetOffsetsRequest,
  type ResetOffsetsResponse,
} from "../gen/rill/v1/group.js";
import { OffsetPosition } from "../gen/rill/v1/log.js";

/** Where {@link GroupAdmin.resetOffsets} moves a group: log start, high watermark, an offset or a time. */
export type ResetOffsetsTo = "earliest" | "latest" | bigint | Date;

/** A unary method of a generated grpc-js client. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

const INT64_MAX = 2n ** 63n - 1n;
const GROUP_ID = /^[A-Za-z0-9._-]{1,249}$/;

/** Throws an InvalidArgumentError unless `group` is 1-249 characters of [A-Za-z0-9._-], not "." or "..". */
export function validateGroupId(group: unknown): asserts group is string {
  if (typeof group !== "string" || !GROUP_ID.test(group) || group === "." || group === "..") {
    const shown = typeof group === "string" ? JSON.stringify(group) : String(group);
    throw new InvalidArgumentError(
      `invalid group id ${shown}: use 1-249 characters of [A-Za-z0-9._-], not "." or ".."`,
    );
  }
}

function validateTopics(topics: unknown, atLeastOne: boolean): string[] {
  if (!Array.isArray(topics)) throw new InvalidArgumentError("topics must be an array of topic names");
  if (atLeastOne && topics.length === 0) throw new InvalidArgumentError("at least one topic is required");
  for (const t of topics) {
    if (typeof t !== "string" || t.length === 0) {
      throw new InvalidArgumentError(`topic names must be non-empty strings, got ${JSON.stringify(t)}`);
    }
  }
  return [...new Set(topics as string[])];
}

/** The wire `to` of a ResetOffsetsRequest; throws an InvalidArgumentError for a bad target. */
export function resetTarget(to: ResetOffsetsTo): ResetOffsetsRequest["to"] {
  if (to === "earliest") return { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST };
  if (to === "latest") return { $case: "position", value: OffsetPosition.OFFSET_POSITION_LATEST };
  if (typeof to === "bigint") {
    if (to < 0n || to > INT64_MAX) {
      throw new InvalidArgumentError(`offset must be between 0 and ${INT64_MAX}, got ${to}`);
    }
    return { $case: "offset", value: to };
  }
  if (to instanceof Date) {
    const ms = to.getTime();
    if (!(ms >= 0)) {
      throw new InvalidArgumentError(`time must be a valid date at or after 1970-01-01, got ${String(to)}`);
    }
    return { $case: "timestampMs", value: BigInt(ms) };
  }
  throw new InvalidArgumentError(
    `to must be "earliest", "latest", an offset (bigint) or a Date, got ${typeof to === "string" ? JSON.stringify(to) : String(to)}`,
  );
}

/** A GroupState as a lowercase word: "empty", "stable", "rebalancing" or "unknown". */
export function groupStateName(state: GroupState): string {
  switch (state) {
    case GroupState.GROUP_STATE_EMPTY:
      return "empty";
    case GroupState.GROUP_STATE_STABLE:
      return "stable";
    case GroupState.GROUP_STATE_REBALANCING:
      return "rebalancing";
    default:
      return "unknown";
  }
}

/** The group methods of {@link Admin}. */
export abstract class GroupAdmin {
  /** The GroupService stub of the admin's connection. */
  protected abstract get groupService(): GroupServiceClient;

  /** One unary call with the admin's deadline, retried when `idempotent`. */
  protected abstract call<Req, Res>(
    method: UnaryMethod<Req, Res>,
    request: Req,
    idempotent: boolean,
  ): Promise<Res>;

  /** Every group that has members or committed offsets, sorted by id. */
  async listGroups(): Promise<GroupSummary[]> {
    const res = await this.call<ListGroupsRequest, ListGroupsResponse>(
      (r, m, o, cb) => this.groupService.listGroups(r, m, o, cb),
      {},
      true,
    );
    return res.groups;
  }

  /**
   * A group's state, generation, members and, per partition, its owner, committed offset, log start,
   * high watermark and lag (computed by the broker). Rejects with a NOT_FOUND error (TopicNotFoundError)
   * if the group has neither members nor committed offsets.
   */
  async describeGroup(group: string): Promise<DescribeGroupResponse> {
    validateGroupId(group);
    return this.call<DescribeGroupRequest, DescribeGroupResponse>(
      (r, m, o, cb) => this.groupService.describeGroup(r, m, o, cb),
      { groupId: group },
      true,
    );
  }

  /**
   * Deletes a group's committed offsets. Rejects with FailedPreconditionError while the group has
   * members, and with a NOT_FOUND error if it has no committed offsets.
   */
  async deleteGroup(group: string): Promise<void> {
    validateGroupId(group);
    await this.call<DeleteGroupRequest, DeleteGroupResponse>(
      (r, m, o, cb) => this.groupService.deleteGroup(r, m, o, cb),
      { groupId: group },
      false,
    );
  }

  /** A group's committed offsets (for these topics; default all), sorted by topic and partition. */
  async fetchCommittedOffsets(group: string, topics: readonly string[] = []): Promise<CommittedOffset[]> {
    validateGroupId(group);
    const res = await this.call<FetchCommittedOffsetsRequest, FetchCommittedOffsetsResponse>(
      (r, m, o, cb) => this.groupService.fetchCommittedOffsets(r, m, o, cb),
      { groupId: group, topics: validateTopics(topics, false) },
      true,
    );
    return res.offsets;
  }

  /**
   * Sets a group's committed offsets for every partition of `topics`: to the log start ("earliest"),
   * the high watermark ("latest"), an offset (clamped by the broker to [log start, high watermark])
   * or the first record at or after a time. Rejects with FailedPreconditionError while the group has
   * members (stop its consumers first). Resolves with the new offsets, sorted.
   */
  async resetOffsets(
    group: string,
    topics: readonly string[],
    to: ResetOffsetsTo,
  ): Promise<CommittedOffset[]> {
    validateGroupId(group);
    const request: ResetOffsetsRequest = {
      groupId: group,
      topics: validateTopics(topics, true),
      to: resetTarget(to),
    };
    const res = await this.call<ResetOffsetsRequest, ResetOffsetsResponse>(
      (r, m, o, cb) => this.groupService.resetOffsets(r, m, o, cb),
      request,
      false,
    );
    return res.offsets;
  }
}
