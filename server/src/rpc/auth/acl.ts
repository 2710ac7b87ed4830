/**
 * The ACL file (`auth.acl.file`): which principal may do what on which topics and groups, plus
 * per-principal quota overrides (quota.ts).
 *
 * Format (JSON):
 *   {"acls": [{"principal": "alice" | "CN=alice" | "*",
 *              "resource": "topic" | "group",
 *              "pattern": "orders" | "orders.*" | "*",
 *              "operations": ["read", "write", "create", "delete", "describe", "alter"]
 *                          | ["join", "commit", "describe", "delete"]   (groups)
 *                          | ["all"]}],
 *    "quotas": {"alice": {"produceBytesPerSecond": 1048576, "fetchBytesPerSecond": -1}}}
 *
 * Invariants:
 * - allow-only: an operation is permitted iff some entry matches the principal (exactly, or `*`
 *   for every principal, ANONYMOUS included when the broker lets unauthenticated callers in), the
 *   resource kind, the name (a pattern is a literal name, `*`, or a prefix ending in `*`; no
 *   other `*`) and lists the operation (or "all"); in "quotas", `*` is refused (not a wildcard);
 * - any granted operation on a resource implies `describe` of it (as in Kafka: who may read a
 *   topic may see it listed);
 * - the file is read and validated once, at startup (AuthFileError naming the entry);
 * - decisions are cached per (principal, resource, operation, name) in a map bounded to
 *   DECISION_CACHE_MAX entries (cleared when full) of names no longer than a valid name, so the
 *   produce hot path costs one map lookup and the cache stays within a few tens of MB.
 */
import { AuthFileError, readAuthFile } from "./errors.js";
import { principalProblem } from "./tokens.js";

export type Resource = "topic" | "group";
export type TopicOperation = "read" | "write" | "create" | "delete" | "describe" | "alter";
export type GroupOperation = "join" | "commit" | "describe" | "delete";
export type Operation = TopicOperation | GroupOperation;

const OPERATIONS: Record<Resource, readonly string[]> = {
  topic: ["read", "write", "create", "delete", "describe", "alter"],
  group: ["join", "commit", "describe", "delete"],
};

const DECISION_CACHE_MAX = 100_000;
/** Topic and group names are at most 249 characters (broker/topic-name.ts). */
const MAX_CACHED_NAME = 249;

/** A byte-rate override for one principal; -1 = unlimited, undefined = the broker default. */
export interface QuotaOverride {
  produceBytesPerSecond?: number | undefined;
  fetchBytesPerSecond?: number | undefined;
}

interface Rule {
  principal: string;
  resource: Resource;
  /** The literal name, or the prefix when `prefix` is set. */
  name: string;
  prefix: boolean;
  /** undefined: every operation. */
  operations: ReadonlySet<string> | undefined;
}

export class AclTable {
  private readonly cache = new Map<string, boolean>();

  private constructor(
    private readonly rules: readonly Rule[],
    readonly quotas: ReadonlyMap<string, QuotaOverride>,
  ) {}

  static load(path: string): AclTable {
    return AclTable.parse(readAuthFile("auth.acl.file", path), path);
  }

  static parse(text: string, source: string): AclTable {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new AuthFileError(`auth.acl.file ${source} is not JSON: ${(err as Error).message}`);
    }
    const { acls, quotas, ...rest } = (doc ?? {}) as { acls?: unknown; quotas?: unknown };
    const extra = Object.keys(rest);
    if (extra.length > 0 || !Array.isArray(acls)) {
      throw new AuthFileError(
        `auth.acl.file ${source} must be {"acls": [...], "quotas": {...}}${extra.length ? `; unknown key "${extra[0]}"` : ""}`,
      );
    }
    const rules = acls.map((raw: unknown, i: number) =>
      parseRule(raw, `auth.acl.file ${source}: acls[${i}]`),
    );
    return new AclTable(rules, parseQuotas(quotas, `auth.acl.file ${source}: quotas`));
  }

  /** Decisions held in the cache (tests: it stays bounded). */
  get cachedDecisions(): number {
    return this.cache.size;
  }

  /** Whether `principal` may do `operation` on the topic or group `name`. */
  allows(principal: string, resource: Resource, operation: Operation, name: string): boolean {
    const key = `${principal}\0${resource}\0${operation}\0${name}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const allowed = this.rules.some(
      (r) =>
        r.resource === resource &&
        (r.principal === "*" || r.principal === principal) &&
        (r.prefix ? name.startsWith(r.name) : name === r.name) &&
        (r.operations === undefined || operation === "describe" || r.operations.has(operation)),
    );
    // Only names that can be real (<= 249 characters) are cached: a client sending huge made-up
    // names cannot make the cache hold megabytes per entry.
    if (name.length > MAX_CACHED_NAME) return allowed;
    if (this.cache.size >= DECISION_CACHE_MAX) this.cache.clear();
    this.cache.set(key, allowed);
    return allowed;
  }
}

function parseRule(raw: unknown, where: string): Rule {
  const e = (raw ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(e)) {
    if (!["principal", "resource", "pattern", "operations"].includes(k)) {
      throw new AuthFileError(`${where}: unknown key "${k}"; use principal, resource, pattern, operations`);
    }
  }
  if (e.principal !== "*") {
    const problem = principalProblem(e.principal);
    if (problem) throw new AuthFileError(`${where}: ${problem} (or "*" for every principal)`);
  }
  if (e.resource !== "topic" && e.resource !== "group") {
    throw new AuthFileError(`${where}: resource must be "topic" or "group"`);
  }
  const resource = e.resource as Resource;
  const pattern = e.pattern;
  if (typeof pattern !== "string" || pattern.length === 0 || pattern.slice(0, -1).includes("*")) {
    throw new AuthFileError(
      `${where}: pattern must be a name, "*", or a prefix ending in "*" (e.g. "orders.*"); "*" is allowed only at the end`,
    );
  }
  const prefix = pattern.endsWith("*");
  const ops = e.operations;
  if (!Array.isArray(ops) || ops.length === 0) {
    throw new AuthFileError(`${where}: operations must be a non-empty list`);
  }
  const allowed = OPERATIONS[resource];
  for (const op of ops) {
    if (op !== "all" && !allowed.includes(op as string)) {
      throw new AuthFileError(
        `${where}: unknown ${resource} operation ${JSON.stringify(op)}; use ${allowed.join(", ")} or all`,
      );
    }
  }
  return {
    principal: e.principal as string,
    resource,
    name: prefix ? pattern.slice(0, -1) : pattern,
    prefix,
    operations: ops.includes("all") ? undefined : new Set(ops as string[]),
  };
}

function parseQuotas(raw: unknown, where: string): Map<string, QuotaOverride> {
  const out = new Map<string, QuotaOverride>();
  if (raw === undefined) return out;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new AuthFileError(
      `${where} must map principals to {"produceBytesPerSecond", "fetchBytesPerSecond"}`,
    );
  }
  for (const [principal, value] of Object.entries(raw)) {
    const problem = principalProblem(principal);
    if (problem) throw new AuthFileError(`${where}: "${principal}": ${problem}`);
    if (principal === "*") {
      // Not a wildcard here: it would silently apply to no one.
      throw new AuthFileError(
        `${where}: "*" is not a principal; set the default for everyone with quota.produce.bytes.per.second / quota.fetch.bytes.per.second`,
      );
    }
    const q = (value ?? {}) as Record<string, unknown>;
    const override: QuotaOverride = {};
    for (const [k, v] of Object.entries(q)) {
      if (k !== "produceBytesPerSecond" && k !== "fetchBytesPerSecond") {
        throw new AuthFileError(
          `${where}.${principal}: unknown key "${k}"; use produceBytesPerSecond, fetchBytesPerSecond`,
        );
      }
      if (!Number.isSafeInteger(v) || ((v as number) < 1 && v !== -1)) {
        throw new AuthFileError(`${where}.${principal}.${k} must be a positive integer or -1 (unlimited)`);
      }
      override[k] = v as number;
    }
    out.set(principal, override);
  }
  return out;
}
