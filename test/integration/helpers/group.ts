/**
 * A consumer-group member driven through the raw generated GroupService stub, for broker-level
 * tests of the membership protocol (the TS client's subscription has its own tests). A member
 * records every JoinGroup message; with `autoRelease` it gives up revoked partitions at once, like
 * a client that had nothing left to commit. Every wait is bounded.
 */
import { credentials, type ServiceError } from "@grpc/grpc-js";
import {
  type CommitOffsetsRequest,
  type DescribeGroupResponse,
  type FetchCommittedOffsetsResponse,
  GroupServiceClient,
  type JoinGroupResponse,
  type ListGroupsResponse,
  type ResetOffsetsRequest,
  type ResetOffsetsResponse,
  type TopicPartitions,
} from "../../../clients/ts/src/gen/rill/v1/group.js";

type Callback<T> = (err: ServiceError | null, res: T) => void;

function call<T>(invoke: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}

/** Promise-returning GroupService calls. */
export function groupApi(stub: GroupServiceClient) {
  return {
    commit: (r: CommitOffsetsRequest) => call((cb) => stub.commitOffsets(r, cb)),
    committed: (groupId: string, topics: string[] = []) =>
      call<FetchCommittedOffsetsResponse>((cb) => stub.fetchCommittedOffsets({ groupId, topics }, cb)),
    list: () => call<ListGroupsResponse>((cb) => stub.listGroups({}, cb)),
    describe: (groupId: string) => call<DescribeGroupResponse>((cb) => stub.describeGroup({ groupId }, cb)),
    deleteGroup: (groupId: string) => call((cb) => stub.deleteGroup({ groupId }, cb)),
    reset: (r: ResetOffsetsRequest) => call<ResetOffsetsResponse>((cb) => stub.resetOffsets(r, cb)),
    heartbeat: (groupId: string, memberId: string) => call((cb) => stub.heartbeat({ groupId, memberId }, cb)),
    release: (groupId: string, memberId: string, partitions: TopicPartitions[], generationId = 0n) =>
      call((cb) => stub.releasePartitions({ groupId, memberId, partitions, generationId }, cb)),
    leave: (groupId: string, memberId: string) => call((cb) => stub.leaveGroup({ groupId, memberId }, cb)),
  };
}

export function groupStub(address: string): GroupServiceClient {
  return new GroupServiceClient(address, credentials.createInsecure());
}

export const flat = (list: TopicPartitions[]): string[] =>
  list.flatMap((tp) => tp.partitions.map((p) => `${tp.topic}/${p}`)).sort();

export interface MemberOptions {
  topics: string[];
  name?: string;
  sessionTimeoutMs?: number;
  /** Release revoked partitions as soon as asked (default true). */
  autoRelease?: boolean;
  /** Heartbeat every heartbeat_interval_ms (default true). */
  heartbeat?: boolean;
}

export class RawMember {
  readonly messages: JoinGroupResponse[] = [];
  error: ServiceError | undefined;
  ended = false;
  private readonly waiters = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private readonly stream;
  private readonly api;

  constructor(
    stub: GroupServiceClient,
    readonly groupId: string,
    options: MemberOptions,
  ) {
    this.api = groupApi(stub);
    this.stream = stub.joinGroup({
      groupId,
      memberName: options.name ?? "raw",
      topics: options.topics,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 0,
    });
    this.stream.on("data", (m: JoinGroupResponse) => {
      this.messages.push(m);
      if (this.timer === undefined && options.heartbeat !== false) {
        this.timer = setInterval(() => {
          this.api.heartbeat(groupId, m.memberId).catch(() => {});
        }, m.heartbeatIntervalMs);
      }
      if ((options.autoRelease ?? true) && m.revoking.length > 0) {
        this.api.release(groupId, m.memberId, m.revoking, m.generationId).catch(() => {});
      }
      this.wake();
    });
    this.stream.on("error", (e: ServiceError) => {
      this.error = e;
      this.finish();
    });
    this.stream.on("end", () => this.finish());
  }

  private finish(): void {
    this.ended = true;
    clearInterval(this.timer);
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  get last(): JoinGroupResponse | undefined {
    return this.messages.at(-1);
  }

  get memberId(): string {
    return this.last!.memberId;
  }

  get generation(): bigint {
    return this.last!.generationId;
  }

  /** The partitions of the latest message: owned and not being revoked. */
  get assigned(): string[] {
    return this.last ? flat(this.last.assigned) : [];
  }

  /** Resolves once `predicate` holds (checked on every message and on end); rejects after `ms`. */
  until(predicate: (m: RawMember) => boolean, ms = 10_000, what = "condition"): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(this.last, big)}`),
        );
      }, ms);
      this.waiters.add(check);
    });
  }

  joined(): Promise<void> {
    return this.until((m) => m.messages.length > 0 || m.ended, 10_000, "the first assignment");
  }

  commit(offsets: { topic: string; partition: number; offset: bigint }[], generation = this.generation) {
    return this.api.commit({
      groupId: this.groupId,
      memberId: this.memberId,
      generationId: generation,
      offsets: offsets.map((o) => ({ ...o, metadata: "" })),
    });
  }

  /** A clean, confirmed leave. */
  async leave(): Promise<void> {
    await this.api.leave(this.groupId, this.memberId);
    this.kill();
  }

  /** Stops heartbeats (the stream stays open). */
  freeze(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => {}, 1 << 30);
  }

  /** Ends the stream without a goodbye (as a crashed process's connection would). */
  kill(): void {
    clearInterval(this.timer);
    this.stream.cancel();
  }
}

function big(_: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}
