/**
 * Authorization per method: what each RPC needs, checked from its decoded request before the
 * handler runs, and which responses are filtered to what the caller may describe (Kafka-style: a
 * topic or group the caller may not see is left out, not an error; group answers also leave out
 * the topics, offsets and watermarks of topics it may not describe).
 *
 * Invariants: every method of the broker's services has a row (guard.ts refuses a method without
 * one with PERMISSION_DENIED when ACLs are on, so a new RPC is closed until someone decides);
 * checks only read the request; a denied call never reaches its handler, so it changes nothing.
 * Produce and ProduceSession carry no check here: their requests are lazy views read one at a time,
 * so `write` (and `create` for an auto-created topic) is checked per batch in produce-append.ts.
 */
import type { Access } from "./access.js";

export interface MethodRule {
  /** Throws PermissionDeniedError when the request is not allowed. */
  check?(req: unknown, access: Access): void;
  /** Drops from a unary response what the caller may not describe. */
  filter?(res: unknown, access: Access): unknown;
}

type Req = Record<string, unknown>;

const topic = (r: unknown) => (r as Req).topic as string;
const group = (r: unknown) => (r as Req).groupId as string;
const topics = (r: unknown) => ((r as Req).topics as string[] | undefined) ?? [];

const groupOp =
  (op: "join" | "commit" | "describe" | "delete"): MethodRule["check"] =>
  (req, a) =>
    a.require("group", op, group(req));

const PER_BATCH: MethodRule = {};

export const RULES: Readonly<Record<string, MethodRule>> = {
  "/rill.v1.LogService/Produce": PER_BATCH,
  "/rill.v1.LogService/ProduceSession": PER_BATCH,
  "/rill.v1.LogService/Fetch": { check: (req, a) => a.require("topic", "read", topic(req)) },
  "/rill.v1.LogService/ListOffsets": { check: (req, a) => a.require("topic", "describe", topic(req)) },

  "/rill.v1.AdminService/CreateTopic": { check: (req, a) => a.require("topic", "create", topic(req)) },
  "/rill.v1.AdminService/DeleteTopic": { check: (req, a) => a.require("topic", "delete", topic(req)) },
  "/rill.v1.AdminService/DescribeTopic": { check: (req, a) => a.require("topic", "describe", topic(req)) },
  "/rill.v1.AdminService/AddPartitions": { check: (req, a) => a.require("topic", "alter", topic(req)) },
  "/rill.v1.AdminService/ListTopics": {
    filter: (res, a) => filterList(res, "topics", (t) => a.allows("topic", "describe", topic(t))),
  },

  "/rill.v1.ClusterService/GetMetadata": {
    check: (req, a) => {
      for (const t of topics(req)) a.require("topic", "describe", t);
    },
    filter: (res, a) => filterList(res, "topics", (t) => a.allows("topic", "describe", topic(t))),
  },

  "/rill.v1.GroupService/JoinGroup": {
    check: (req, a) => {
      a.require("group", "join", group(req));
      for (const t of topics(req)) a.require("topic", "read", t);
    },
  },
  "/rill.v1.GroupService/Heartbeat": { check: groupOp("join") },
  "/rill.v1.GroupService/ReleasePartitions": { check: groupOp("join") },
  "/rill.v1.GroupService/LeaveGroup": { check: groupOp("join") },
  "/rill.v1.GroupService/CommitOffsets": {
    check: (req, a) => {
      a.require("group", "commit", group(req));
      const offsets = ((req as Req).offsets as { topic: string }[] | undefined) ?? [];
      for (const t of new Set(offsets.map((o) => o.topic))) a.require("topic", "read", t);
    },
  },
  "/rill.v1.GroupService/ResetOffsets": {
    check: (req, a) => {
      a.require("group", "commit", group(req));
      for (const t of topics(req)) a.require("topic", "read", t);
    },
  },
  "/rill.v1.GroupService/FetchCommittedOffsets": {
    check: groupOp("describe"),
    filter: (res, a) => filterList(res, "offsets", (o) => a.allows("topic", "describe", topic(o))),
  },
  "/rill.v1.GroupService/DescribeGroup": {
    check: groupOp("describe"),
    // Partitions (committed offsets, watermarks) and members' topics only of describable topics,
    // as FetchCommittedOffsets.
    filter: (res, a) => {
      const r = filterList(res, "partitions", (p) => a.allows("topic", "describe", topic(p))) as Req;
      const members = r?.members;
      if (!Array.isArray(members)) return r;
      return { ...r, members: members.map((m) => describableTopicsOf(m, a)) };
    },
  },
  "/rill.v1.GroupService/ListGroups": {
    filter: (res, a) => {
      const r = filterList(res, "groups", (g) => a.allows("group", "describe", group(g))) as Req;
      const groups = r?.groups;
      if (!Array.isArray(groups)) return r;
      return { ...r, groups: groups.map((g) => describableTopicsOf(g, a)) };
    },
  },
  "/rill.v1.GroupService/DeleteGroup": { check: groupOp("delete") },
};

/** Services that need only an authenticated caller (or none, per auth.public.*): no ACL applies. */
export const HEALTH_SERVICES = ["grpc.health.v1.Health"];
export const REFLECTION_SERVICES = [
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/** A group summary or member with only the topics the caller may describe (`topics`, `assigned`, `revoking`). */
function describableTopicsOf(item: unknown, a: Access): unknown {
  const byName = (t: unknown) => a.allows("topic", "describe", t as string);
  const byTopic = (t: unknown) => a.allows("topic", "describe", topic(t));
  return filterList(filterList(filterList(item, "topics", byName), "assigned", byTopic), "revoking", byTopic);
}

function filterList(res: unknown, field: string, keep: (item: unknown) => boolean): unknown {
  const r = res as Req | null | undefined;
  const list = r?.[field];
  if (!Array.isArray(list)) return res;
  return { ...r, [field]: list.filter(keep) };
}
