import { describe, expect, it } from "vitest";
import { Access } from "../../../server/src/rpc/auth/access.js";
import { AclTable } from "../../../server/src/rpc/auth/acl.js";
import { AuthFileError, PermissionDeniedError } from "../../../server/src/rpc/auth/errors.js";

function acl(acls: unknown[], quotas?: unknown): AclTable {
  return AclTable.parse(JSON.stringify({ acls, ...(quotas ? { quotas } : {}) }), "acl.json");
}

describe("unit > auth > ACL matching", () => {
  const t = acl([
    { principal: "alice", resource: "topic", pattern: "orders.*", operations: ["read", "write"] },
    { principal: "alice", resource: "topic", pattern: "audit", operations: ["describe"] },
    { principal: "*", resource: "topic", pattern: "public", operations: ["read"] },
    { principal: "admin", resource: "topic", pattern: "*", operations: ["all"] },
    { principal: "alice", resource: "group", pattern: "g-alice", operations: ["join", "commit"] },
  ]);

  it("grants by literal name, prefix pattern, wildcard principal and 'all'", () => {
    // Ensures each pattern form matches exactly what it says.
    expect(t.allows("alice", "topic", "write", "orders.eu")).toBe(true);
    expect(t.allows("alice", "topic", "write", "orders.")).toBe(true);
    expect(t.allows("alice", "topic", "write", "orders")).toBe(false); // prefix is "orders."
    expect(t.allows("alice", "topic", "write", "xorders.eu")).toBe(false);
    expect(t.allows("alice", "topic", "create", "orders.eu")).toBe(false);
    expect(t.allows("alice", "topic", "describe", "audit")).toBe(true);
    expect(t.allows("alice", "topic", "read", "audit")).toBe(false);
    expect(t.allows("alice", "topic", "describe", "audit2")).toBe(false); // literal, not prefix
    expect(t.allows("bob", "topic", "read", "public")).toBe(true);
    expect(t.allows("bob", "topic", "write", "public")).toBe(false);
    expect(t.allows("admin", "topic", "delete", "anything")).toBe(true);
    expect(t.allows("admin", "group", "delete", "anything")).toBe(false); // resource kinds apart
    expect(t.allows("alice", "group", "join", "g-alice")).toBe(true);
    expect(t.allows("alice", "group", "delete", "g-alice")).toBe(false);
    expect(t.allows("ALICE", "topic", "read", "orders.eu")).toBe(false); // principals are exact
  });

  it("lets any granted operation imply describe", () => {
    // Ensures a reader can see the topic listed, as in Kafka.
    expect(t.allows("alice", "topic", "describe", "orders.eu")).toBe(true);
    expect(t.allows("carol", "topic", "describe", "public")).toBe(true);
    expect(t.allows("alice", "group", "describe", "g-alice")).toBe(true);
    expect(t.allows("carol", "topic", "describe", "orders.eu")).toBe(false);
  });

  it("answers the same from its decision cache", () => {
    // Ensures caching never flips a decision.
    for (let i = 0; i < 3; i++) {
      expect(t.allows("alice", "topic", "write", "orders.eu")).toBe(true);
      expect(t.allows("bob", "topic", "write", "orders.eu")).toBe(false);
    }
  });

  it("keeps its decision cache bounded however many distinct names a client sends", () => {
    // Ensures a client cycling through made-up (valid-length) names cannot grow broker memory:
    // the cache holds at most 100 000 decisions (cleared when full) and still answers right.
    const fresh = acl([{ principal: "alice", resource: "topic", pattern: "orders.*", operations: ["read"] }]);
    let most = 0;
    for (let i = 0; i < 150_000; i++) {
      fresh.allows("alice", "topic", "read", `n${i}`);
      most = Math.max(most, fresh.cachedDecisions);
    }
    expect(most).toBe(100_000);
    expect(fresh.cachedDecisions).toBeLessThan(100_000);
    expect(fresh.allows("alice", "topic", "read", "orders.a")).toBe(true);
    expect(fresh.allows("alice", "topic", "read", "n1")).toBe(false);
  });

  it("never caches names longer than a valid name, and keeps refusal messages short", () => {
    // Ensures a client sending huge made-up names cannot grow broker memory or status headers.
    const fresh = acl([{ principal: "alice", resource: "topic", pattern: "orders.*", operations: ["read"] }]);
    const huge = `orders.${"x".repeat(100_000)}`;
    expect(fresh.allows("alice", "topic", "read", huge)).toBe(true);
    expect(fresh.allows("bob", "topic", "read", huge)).toBe(false);
    expect(fresh.cachedDecisions).toBe(0);
    fresh.allows("alice", "topic", "read", "orders.a");
    expect(fresh.cachedDecisions).toBe(1);
    const denied = () => new Access("bob", fresh, undefined).require("topic", "read", huge);
    expect(denied).toThrow(PermissionDeniedError);
    expect(() => denied()).toThrow(/^principal "bob" may not read topic "orders\.x+…": .{0,120}$/);
  });

  it("reads per-principal quota overrides", () => {
    // Ensures the file's quotas reach the quota module as written.
    const q = acl([], { alice: { produceBytesPerSecond: 1024 }, bob: { fetchBytesPerSecond: -1 } });
    expect(q.quotas.get("alice")).toEqual({ produceBytesPerSecond: 1024 });
    expect(q.quotas.get("bob")).toEqual({ fetchBytesPerSecond: -1 });
  });

  it("refuses invalid entries with a message naming the entry and the fix", () => {
    // Ensures a typo in an ACL fails the start instead of silently granting or denying.
    const bad: [unknown, RegExp][] = [
      [
        { acls: [{ principal: "a", resource: "cluster", pattern: "x", operations: ["read"] }] },
        /acls\[0\].*"topic" or "group"/,
      ],
      [
        { acls: [{ principal: "a", resource: "topic", pattern: "or*ders", operations: ["read"] }] },
        /only at the end/,
      ],
      [
        { acls: [{ principal: "a", resource: "topic", pattern: "x", operations: ["join"] }] },
        /unknown topic operation "join"/,
      ],
      [
        { acls: [{ principal: "a", resource: "group", pattern: "x", operations: ["write"] }] },
        /unknown group operation/,
      ],
      [{ acls: [{ principal: "a", resource: "topic", pattern: "x", operations: [] }] }, /non-empty/],
      [
        { acls: [{ principal: "", resource: "topic", pattern: "x", operations: ["read"] }] },
        /principal must be/,
      ],
      [
        { acls: [{ principal: "a", resource: "topic", pattern: "x", operations: ["read"], allow: 1 }] },
        /unknown key "allow"/,
      ],
      [{ acl: [] }, /unknown key "acl"/],
      [{ acls: [], quotas: { a: { produceBytesPerSecond: 0 } } }, /positive integer or -1/],
      [{ acls: [], quotas: { a: { produceRate: 5 } } }, /unknown key "produceRate"/],
      // "*" would silently apply to no one (quotas are per principal, not patterns).
      [
        { acls: [], quotas: { "*": { produceBytesPerSecond: 1024 } } },
        /"\*" is not a principal.*quota\.produce/,
      ],
    ];
    for (const [doc, message] of bad) {
      const text = JSON.stringify(doc);
      expect(() => AclTable.parse(text, "acl.json"), text).toThrow(AuthFileError);
      expect(() => AclTable.parse(text, "acl.json"), text).toThrow(message);
    }
  });
});
