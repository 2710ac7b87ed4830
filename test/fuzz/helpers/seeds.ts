/**
 * Valid encoded requests of every RPC the broker serves: the seeds the fuzzer mutates. They name
 * the fixtures the fuzz tests create (topic FUZZ_TOPIC with 2 partitions, group FUZZ_GROUP) and
 * include requests that succeed, so mutations land near every branch of the handlers. Encoded with
 * the generated rill.v1 codecs; health and reflection requests are written field by field.
 */
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  AddPartitionsRequest,
  CreateTopicRequest,
  DeleteTopicRequest,
  DescribeTopicRequest,
  ListTopicsRequest,
} from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { GetMetadataRequest } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import {
  CommitOffsetsRequest,
  DeleteGroupRequest,
  DescribeGroupRequest,
  FetchCommittedOffsetsRequest,
  HeartbeatRequest,
  JoinGroupRequest,
  LeaveGroupRequest,
  ListGroupsRequest,
  ReleasePartitionsRequest,
  ResetOffsetsRequest,
} from "../../../clients/ts/src/gen/rill/v1/group.js";
import {
  Durability,
  FetchRequest,
  ListOffsetsRequest,
  OffsetPosition,
  ProduceRequest,
  ProduceSessionRequest,
} from "../../../clients/ts/src/gen/rill/v1/log.js";
import { Compression, type Record as RillRecord } from "../../../clients/ts/src/gen/rill/v1/record.js";

export const FUZZ_TOPIC = "fz";
export const FUZZ_GROUP = "fg";
/** The topic AddPartitions seeds grow (a mutation may add thousands: kept off FUZZ_TOPIC). */
export const GROW_TOPIC = "fz-grow";

const buf = (u: Uint8Array) => Buffer.from(u);

function rec(value: string, key = "", headers: [string, string][] = [], ts?: bigint): RillRecord {
  return {
    key: Buffer.from(key),
    value: Buffer.from(value),
    headers: headers.map(([k, v]) => ({ key: k, value: Buffer.from(v) })),
    timestampMs: ts,
  };
}

export function produceRequest(partition: number, extra: Partial<ProduceRequest> = {}): ProduceRequest {
  return {
    topic: FUZZ_TOPIC,
    partition,
    records: {
      records: [
        rec("v0"),
        rec(
          "value-1",
          "k1",
          [
            ["h", "x"],
            ["trace", "y"],
          ],
          1_700_000_000_000n,
        ),
        rec(""),
      ],
    },
    compression: Compression.COMPRESSION_UNSPECIFIED,
    compressedRecords: Buffer.alloc(0),
    recordCount: 0,
    durability: Durability.DURABILITY_UNSPECIFIED,
    ...extra,
  };
}

const produceSeeds = [
  produceRequest(0),
  produceRequest(1, { durability: Durability.DURABILITY_WRITTEN }),
  produceRequest(0, { records: { records: [rec("only")] }, compression: Compression.COMPRESSION_NONE }),
  produceRequest(1, {
    records: undefined,
    compression: Compression.COMPRESSION_GZIP,
    compressedRecords: Buffer.from("not really gzip, the broker never looks"),
    recordCount: 2,
  }),
];

function healthCheck(service: string): Buffer {
  const w = new BinaryWriter();
  if (service !== "") w.uint32(10).string(service);
  return buf(w.finish());
}

/** grpc.reflection ServerReflectionRequest: host (1) and one of fields 3-7. */
function reflection(kind: number, value: string | { type: string; n: number }): Buffer {
  const w = new BinaryWriter().uint32(10).string("localhost");
  if (typeof value === "string") w.uint32((kind << 3) | 2).string(value);
  else
    w.uint32((kind << 3) | 2)
      .fork()
      .uint32(10)
      .string(value.type)
      .uint32(16)
      .int32(value.n)
      .join();
  return buf(w.finish());
}

const reflectionSeeds = [
  reflection(7, "*"),
  reflection(3, "rill/v1/log.proto"),
  reflection(4, "rill.v1.LogService"),
  reflection(4, "rill.v1.ProduceRequest"),
  reflection(5, { type: "rill.v1.ProduceRequest", n: 100 }),
  reflection(6, "rill.v1.ProduceRequest"),
];

/** Seeds per method key ("rill.v1.LogService/Produce"); `memberId` is a live member of FUZZ_GROUP. */
export function seedsFor(memberId = "member-0"): Record<string, Buffer[]> {
  const t = FUZZ_TOPIC;
  const g = FUZZ_GROUP;
  return {
    "rill.v1.LogService/Produce": produceSeeds.map((r) => buf(ProduceRequest.encode(r).finish())),
    "rill.v1.LogService/ProduceSession": produceSeeds.map((r, i) =>
      buf(ProduceSessionRequest.encode({ sequence: BigInt(i + 1), produce: r }).finish()),
    ),
    "rill.v1.LogService/Fetch": [
      { start: { $case: "offset" as const, value: 0n }, maxBytes: 0, follow: false },
      { start: { $case: "offset" as const, value: 3n }, maxBytes: 100, follow: false },
      {
        start: { $case: "position" as const, value: OffsetPosition.OFFSET_POSITION_EARLIEST },
        maxBytes: 1,
        follow: false,
      },
      { start: { $case: "timestampMs" as const, value: 0n }, maxBytes: 0, follow: false },
      {
        start: { $case: "position" as const, value: OffsetPosition.OFFSET_POSITION_LATEST },
        maxBytes: 0,
        follow: true,
      },
    ].map((r, i) => buf(FetchRequest.encode({ topic: t, partition: i % 2, ...r }).finish())),
    "rill.v1.LogService/ListOffsets": [
      { topic: t, partitions: [], timestampMs: undefined },
      { topic: t, partitions: [0, 1], timestampMs: 0n },
      { topic: t, partitions: [1], timestampMs: 9_000_000_000_000n },
    ].map((r) => buf(ListOffsetsRequest.encode(r).finish())),
    "rill.v1.AdminService/CreateTopic": [
      CreateTopicRequest.encode({ topic: "fz-new", partitions: 2, config: undefined }),
      CreateTopicRequest.encode({
        topic: "fz-conf",
        partitions: 1,
        config: { retentionMs: 60_000n, segmentBytes: 1_048_576n, maxBatchBytes: 65_536n, flushMessages: 1n },
      }),
    ].map((w) => buf(w.finish())),
    "rill.v1.AdminService/DeleteTopic": [buf(DeleteTopicRequest.encode({ topic: "fz-doomed" }).finish())],
    "rill.v1.AdminService/ListTopics": [buf(ListTopicsRequest.encode({}).finish())],
    "rill.v1.AdminService/DescribeTopic": [buf(DescribeTopicRequest.encode({ topic: t }).finish())],
    "rill.v1.AdminService/AddPartitions": [
      buf(AddPartitionsRequest.encode({ topic: GROW_TOPIC, partitions: 3 }).finish()),
    ],
    "rill.v1.ClusterService/GetMetadata": [
      buf(GetMetadataRequest.encode({ topics: [] }).finish()),
      buf(GetMetadataRequest.encode({ topics: [t, "fz-absent"] }).finish()),
    ],
    "rill.v1.GroupService/JoinGroup": [
      buf(
        JoinGroupRequest.encode({
          groupId: g,
          memberName: "fuzz",
          topics: [t],
          sessionTimeoutMs: 0,
        }).finish(),
      ),
      buf(
        JoinGroupRequest.encode({
          groupId: "fg2",
          memberName: "",
          topics: [t],
          sessionTimeoutMs: 6000,
        }).finish(),
      ),
    ],
    "rill.v1.GroupService/Heartbeat": [buf(HeartbeatRequest.encode({ groupId: g, memberId }).finish())],
    "rill.v1.GroupService/ReleasePartitions": [
      buf(
        ReleasePartitionsRequest.encode({
          groupId: g,
          memberId,
          partitions: [{ topic: t, partitions: [0, 1] }],
          generationId: 1n,
        }).finish(),
      ),
    ],
    "rill.v1.GroupService/LeaveGroup": [buf(LeaveGroupRequest.encode({ groupId: g, memberId }).finish())],
    "rill.v1.GroupService/CommitOffsets": [
      buf(
        CommitOffsetsRequest.encode({
          groupId: g,
          memberId,
          generationId: 1n,
          offsets: [
            { topic: t, partition: 0, offset: 1n, metadata: "m" },
            { topic: t, partition: 1, offset: 0n, metadata: "" },
          ],
        }).finish(),
      ),
    ],
    "rill.v1.GroupService/FetchCommittedOffsets": [
      buf(FetchCommittedOffsetsRequest.encode({ groupId: g, topics: [] }).finish()),
      buf(FetchCommittedOffsetsRequest.encode({ groupId: g, topics: [t] }).finish()),
    ],
    "rill.v1.GroupService/ListGroups": [buf(ListGroupsRequest.encode({}).finish())],
    "rill.v1.GroupService/DescribeGroup": [buf(DescribeGroupRequest.encode({ groupId: g }).finish())],
    "rill.v1.GroupService/DeleteGroup": [buf(DeleteGroupRequest.encode({ groupId: "fg-old" }).finish())],
    "rill.v1.GroupService/ResetOffsets": [
      buf(
        ResetOffsetsRequest.encode({
          groupId: "fg-old",
          topics: [t],
          to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
        }).finish(),
      ),
      buf(
        ResetOffsetsRequest.encode({ groupId: g, topics: [t], to: { $case: "offset", value: 1n } }).finish(),
      ),
    ],
    "grpc.health.v1.Health/Check": [healthCheck(""), healthCheck("rill.v1.LogService")],
    "grpc.health.v1.Health/Watch": [healthCheck(""), healthCheck("rill.v1.GroupService")],
    "grpc.health.v1.Health/List": [Buffer.alloc(0)],
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": reflectionSeeds,
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": reflectionSeeds,
  };
}
