/**
 * A scripted in-process gRPC server speaking GroupService and the parts of LogService a group
 * subscription uses (Fetch, ListOffsets), for unit tests of the client's membership handling:
 * the test drives each JoinGroup stream by hand (`joins[i].push(...)`, `joins[i].fail(...)`) and
 * records every other call; `onRelease` can delay or fail a release, `fetchErrors` fail a
 * partition's fetches. Port 0 on 127.0.0.1; `stop()` force-closes.
 */
import {
  Server,
  ServerCredentials,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import {
  type CommitOffsetsRequest,
  type FetchCommittedOffsetsRequest,
  GroupServiceService,
  type HeartbeatRequest,
  type JoinGroupRequest,
  type JoinGroupResponse,
  type LeaveGroupRequest,
  type ReleasePartitionsRequest,
} from "../../../../clients/ts/src/gen/rill/v1/group.js";
import {
  type FetchRequest,
  type FetchResponse,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  LogServiceService,
  OffsetPosition,
} from "../../../../clients/ts/src/gen/rill/v1/log.js";
import type { Record } from "../../../../clients/ts/src/gen/rill/v1/record.js";
import { record, storedBatch } from "../helpers/fake-broker.js";

export interface FakeError {
  code: number;
  details: string;
}

/** One JoinGroup stream as the test sees it. */
export interface FakeJoin {
  request: JoinGroupRequest;
  /** Sends an assignment message. */
  push(message: Partial<JoinGroupResponse>): void;
  /** Ends the stream with an error status. */
  fail(error: FakeError): void;
  /** Whether the client cancelled it. */
  cancelled: boolean;
  /** When it arrived (Date.now()). */
  at: number;
}

export interface FakeGroupBroker {
  address: string;
  /** Records per "topic/partition". */
  logs: Map<string, Record[]>;
  joins: FakeJoin[];
  heartbeats: HeartbeatRequest[];
  commits: CommitOffsetsRequest[];
  releases: ReleasePartitionsRequest[];
  leaves: LeaveGroupRequest[];
  fetchCommitted: FetchCommittedOffsetsRequest[];
  fetches: FetchRequest[];
  /** Committed offsets per "topic/partition" (accepted commits update it). */
  committed: Map<string, bigint>;
  /** Called on every RPC, in order (e.g. "commit", "release", "leave"). */
  calls: string[];
  /** An error for the next commits (undefined: accept). */
  commitError?: FakeError | undefined;
  /** An error for heartbeats (undefined: accept). */
  heartbeatError?: FakeError | undefined;
  /** Runs when a JoinGroup arrives (default: nothing; the test pushes). */
  onJoin?: ((join: FakeJoin) => void) | undefined;
  /** Decides each release (after it is recorded): an error fails it; a promise delays the answer. */
  onRelease?:
    | ((req: ReleasePartitionsRequest) => FakeError | undefined | Promise<FakeError | undefined>)
    | undefined;
  /** Fetches of these "topic/partition" fail at once with the error (see also failFetches). */
  fetchErrors: Map<string, FakeError>;
  /** Following Fetch streams still open, per "topic/partition". */
  liveFetches: Map<string, Set<ServerWritableStream<FetchRequest, FetchResponse>>>;
  stop(): Promise<void>;
}

/** Fills "topic/partition" with records `<topic>/<partition>-<i>`. */
export function fill(fake: FakeGroupBroker, topic: string, partition: number, n: number): void {
  fake.logs.set(
    `${topic}/${partition}`,
    Array.from({ length: n }, (_, i) => record(`${topic}/${partition}-${i}`)),
  );
}

/** Appends `n` records to "topic/partition" and sends them to its open following fetches. */
export function append(fake: FakeGroupBroker, topic: string, partition: number, n: number): void {
  const key = `${topic}/${partition}`;
  const log = fake.logs.get(key) ?? [];
  fake.logs.set(key, log);
  const from = log.length;
  for (let i = 0; i < n; i++) log.push(record(`${key}-${from + i}`));
  for (const call of fake.liveFetches.get(key) ?? []) {
    call.write({
      batches: [storedBatch(BigInt(from), log.slice(from))],
      highWatermark: BigInt(log.length),
      logStartOffset: 0n,
    });
  }
}

/** Ends the open fetches of "topic/partition" with `error`, and fails its later ones too. */
export function failFetches(fake: FakeGroupBroker, topic: string, partition: number, error: FakeError): void {
  const key = `${topic}/${partition}`;
  fake.fetchErrors.set(key, error);
  for (const call of fake.liveFetches.get(key) ?? []) call.emit("error", error);
  fake.liveFetches.delete(key);
}

/** A JoinGroup message with defaults (generation 1, heartbeat every 50 ms). */
export function message(
  memberId: string,
  generation: number,
  assigned: { [topic: string]: number[] },
  revoking: { [topic: string]: number[] } = {},
): Partial<JoinGroupResponse> {
  const tps = (o: { [topic: string]: number[] }) =>
    Object.entries(o).map(([topic, partitions]) => ({ topic, partitions }));
  return {
    memberId,
    generationId: BigInt(generation),
    assigned: tps(assigned),
    revoking: tps(revoking),
    sessionTimeoutMs: 150,
    heartbeatIntervalMs: 50,
  };
}

export async function startFakeGroupBroker(): Promise<FakeGroupBroker> {
  const server = new Server();
  const fake: FakeGroupBroker = {
    address: "",
    logs: new Map(),
    joins: [],
    heartbeats: [],
    commits: [],
    releases: [],
    leaves: [],
    fetchCommitted: [],
    fetches: [],
    fetchErrors: new Map(),
    liveFetches: new Map(),
    committed: new Map(),
    calls: [],
    async stop() {
      server.forceShutdown();
    },
  };
  const unary =
    <Req, Res>(name: string, handle: (req: Req) => Res | FakeError) =>
    (call: { request: Req }, cb: sendUnaryData<Res>) => {
      fake.calls.push(name);
      const out = handle(call.request);
      if (out && typeof out === "object" && "code" in out && "details" in out) cb(out as FakeError);
      else cb(null, out as Res);
    };

  server.addService(GroupServiceService, {
    joinGroup(call: ServerWritableStream<JoinGroupRequest, JoinGroupResponse>) {
      fake.calls.push("join");
      const join: FakeJoin = {
        request: call.request,
        cancelled: false,
        at: Date.now(),
        push(m) {
          call.write({
            memberId: "",
            generationId: 0n,
            assigned: [],
            revoking: [],
            sessionTimeoutMs: 150,
            heartbeatIntervalMs: 50,
            ...m,
          });
        },
        fail(e) {
          call.emit("error", e);
        },
      };
      call.on("cancelled", () => {
        join.cancelled = true;
      });
      fake.joins.push(join);
      fake.onJoin?.(join);
    },
    heartbeat: unary("heartbeat", (req: HeartbeatRequest) => {
      fake.heartbeats.push(req);
      return fake.heartbeatError ?? { generationId: 1n };
    }),
    releasePartitions(call: { request: ReleasePartitionsRequest }, cb: sendUnaryData<object>) {
      fake.calls.push("release");
      fake.releases.push(call.request);
      void Promise.resolve(fake.onRelease?.(call.request)).then((error) =>
        error ? cb(error) : cb(null, {}),
      );
    },
    leaveGroup: unary("leave", (req: LeaveGroupRequest) => {
      fake.leaves.push(req);
      return {};
    }),
    commitOffsets: unary("commit", (req: CommitOffsetsRequest) => {
      fake.commits.push(req);
      if (fake.commitError) return fake.commitError;
      for (const o of req.offsets) fake.committed.set(`${o.topic}/${o.partition}`, o.offset);
      return {};
    }),
    fetchCommittedOffsets: unary("fetchCommitted", (req: FetchCommittedOffsetsRequest) => {
      fake.fetchCommitted.push(req);
      const offsets = [...fake.committed].map(([key, offset]) => {
        const slash = key.lastIndexOf("/");
        return {
          topic: key.slice(0, slash),
          partition: Number(key.slice(slash + 1)),
          offset,
          metadata: "",
          commitTimeMs: 0n,
        };
      });
      return { offsets: offsets.filter((o) => req.topics.length === 0 || req.topics.includes(o.topic)) };
    }),
  });
  server.addService(LogServiceService, {
    produce(_call: unknown, cb: sendUnaryData<unknown>) {
      cb({ code: status.UNIMPLEMENTED, details: "not in this fake" });
    },
    fetch(call: ServerWritableStream<FetchRequest, FetchResponse>) {
      fake.fetches.push(call.request);
      const error = fake.fetchErrors.get(`${call.request.topic}/${call.request.partition}`);
      if (error) {
        call.emit("error", error);
        return;
      }
      const log = fake.logs.get(`${call.request.topic}/${call.request.partition}`) ?? [];
      const start = call.request.start;
      const from =
        start?.$case === "offset"
          ? Number(start.value)
          : start?.value === OffsetPosition.OFFSET_POSITION_LATEST
            ? log.length
            : 0;
      if (from > log.length) {
        call.emit("error", { code: status.OUT_OF_RANGE, details: `offset ${from} is past the end` });
        return;
      }
      if (log.length > from) {
        call.write({
          batches: [storedBatch(BigInt(from), log.slice(from))],
          highWatermark: BigInt(log.length),
          logStartOffset: 0n,
        });
      }
      if (!call.request.follow) {
        call.end();
        return;
      }
      // Following: stay open until cancelled.
      const key = `${call.request.topic}/${call.request.partition}`;
      const live = fake.liveFetches.get(key) ?? new Set();
      fake.liveFetches.set(key, live);
      live.add(call);
      call.on("cancelled", () => live.delete(call));
    },
    listOffsets(call: { request: ListOffsetsRequest }, cb: sendUnaryData<ListOffsetsResponse>) {
      const ps = call.request.partitions;
      cb(null, {
        partitions: ps.map((p) => ({
          partition: p,
          earliest: 0n,
          latest: BigInt(fake.logs.get(`${call.request.topic}/${p}`)?.length ?? 0),
          timestampOffset: undefined,
        })),
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  fake.address = `127.0.0.1:${port}`;
  return fake;
}

export { status };
