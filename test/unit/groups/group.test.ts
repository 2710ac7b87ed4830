import { describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../../../server/src/broker/errors.js";
import {
  Group,
  type MemberAssignment,
  type MemberSink,
  type RemovalReason,
  type TopicPartition,
} from "../../../server/src/groups/group.js";

/** A group over topics of fixed sizes, a manual clock, and sinks that record what members hear. */
function setup(topicSizes: Record<string, number>) {
  let now = 1_000;
  const sizes = { ...topicSizes };
  const group = new Group(
    "g",
    (t) => sizes[t],
    () => now,
  );
  const heard = new Map<string, MemberAssignment[]>();
  const ended = new Map<string, RemovalReason>();
  const join = (id: string, topics = Object.keys(topicSizes), sessionTimeoutMs = 1000) => {
    const sink: MemberSink = {
      push: (a) => heard.set(id, [...(heard.get(id) ?? []), a]),
      end: (reason) => ended.set(id, reason),
    };
    return group.join({ memberId: id, name: id, topics, sessionTimeoutMs, address: "test", sink });
  };
  const last = (id: string) => heard.get(id)!.at(-1)!;
  const owned = (id: string) => [...(group.member(id)?.owned ?? [])].sort();
  /** Every member releases whatever it was asked to give up. */
  const settle = () => {
    for (const m of group.members()) {
      const revoking = group.assignmentOf(m).revoking;
      if (revoking.length > 0) group.release(m.id, revoking);
    }
  };
  const assertSingleOwners = () => {
    const seen = new Set<string>();
    for (const m of group.members()) {
      for (const key of m.owned) {
        expect(seen.has(key), `${key} owned twice`).toBe(false);
        seen.add(key);
      }
    }
  };
  return {
    group,
    join,
    last,
    owned,
    settle,
    assertSingleOwners,
    heard,
    ended,
    sizes,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const keys = (list: TopicPartition[]) => list.map((p) => `${p.topic}/${p.partition}`);

describe("group membership", () => {
  it("6 partitions and 3 members: 2 each, disjoint and covering; a 4th member makes it 2/2/1/1", () => {
    const s = setup({ t: 6 });
    s.join("a");
    s.settle();
    s.join("b");
    s.settle();
    s.join("c");
    s.settle();
    expect(s.owned("a")).toEqual(["t/0", "t/1"]);
    expect(s.owned("b")).toEqual(["t/2", "t/3"]);
    expect(s.owned("c")).toEqual(["t/4", "t/5"]);
    expect(s.group.state).toBe("stable");
    s.join("d");
    s.assertSingleOwners();
    expect(s.group.state).toBe("rebalancing");
    s.settle();
    s.settle();
    expect([s.owned("a"), s.owned("b"), s.owned("c"), s.owned("d")].map((o) => o.length)).toEqual([
      2, 2, 1, 1,
    ]);
    expect(s.group.state).toBe("stable");
    s.assertSingleOwners();
  });

  it("hands a partition over only after its owner released it", () => {
    const s = setup({ t: 2 });
    s.join("a");
    expect(s.owned("a")).toEqual(["t/0", "t/1"]);
    s.join("b");
    // a is asked to give up t/1; b does not get it yet.
    expect(keys(s.last("a").revoking)).toEqual(["t/1"]);
    expect(keys(s.last("a").assigned)).toEqual(["t/0"]);
    expect(s.last("b").assigned).toEqual([]);
    expect(s.group.ownerOf("t", 1)).toBe("a");
    s.group.release("a", [{ topic: "t", partition: 1 }]);
    expect(s.group.ownerOf("t", 1)).toBe("b");
    expect(keys(s.last("b").assigned)).toEqual(["t/1"]);
    expect(s.last("a").revoking).toEqual([]);
  });

  it("pushes every member its assignment after every rebalance, with the new generation", () => {
    const s = setup({ t: 4 });
    s.join("a");
    s.join("b");
    const g = s.group.generation;
    expect(s.last("a").generation).toBe(g);
    expect(s.last("b").generation).toBe(g);
    s.group.remove("b", "left", "bye");
    expect(s.group.generation).toBe(g + 1);
    expect(s.last("a").generation).toBe(g + 1);
    expect(s.ended.get("b")).toBe("left");
  });

  it("frees a leaving member's partitions at once", () => {
    const s = setup({ t: 4 });
    s.join("a");
    s.join("b");
    s.settle();
    s.group.remove("a", "left", "bye");
    expect(s.owned("b")).toEqual(["t/0", "t/1", "t/2", "t/3"]);
  });

  it("removes a member without heartbeats after its session timeout, and frees its partitions", () => {
    const s = setup({ t: 2 });
    s.join("a", ["t"], 1000);
    s.join("b", ["t"], 5000);
    s.settle();
    s.advance(600);
    s.group.heartbeat("b");
    expect(s.group.expire()).toBe(0);
    s.advance(600); // a: 1200 ms since join, no heartbeat
    expect(s.group.expire()).toBe(1);
    expect(s.ended.get("a")).toBe("session-expired");
    expect(s.owned("b")).toEqual(["t/0", "t/1"]);
  });

  it("removes an owner that does not release within its session timeout, even while it heartbeats", () => {
    const s = setup({ t: 2 });
    s.join("a", ["t"], 1000);
    s.join("b", ["t"], 1000);
    expect(keys(s.last("a").revoking)).toEqual(["t/1"]);
    for (let i = 0; i < 3; i++) {
      s.advance(400);
      s.group.heartbeat("a");
      s.group.heartbeat("b");
      s.group.expire();
    }
    expect(s.ended.get("a")).toBe("release-timeout");
    expect(s.owned("b")).toEqual(["t/0", "t/1"]);
  });

  it("gives extra members nothing until one leaves", () => {
    const s = setup({ t: 2 });
    for (const id of ["a", "b", "c"]) s.join(id);
    s.settle();
    expect(s.owned("c")).toEqual([]);
    s.group.remove("a", "left", "bye");
    s.settle();
    expect(s.owned("b").length + s.owned("c").length).toBe(2);
    expect(s.owned("c").length).toBe(1);
  });

  it("rebalances onto new partitions of a topic", () => {
    const s = setup({ t: 2 });
    s.join("a");
    s.join("b");
    s.settle();
    s.sizes.t = 4;
    s.group.rebalance();
    s.settle();
    expect(s.owned("a")).toEqual(["t/0", "t/1"]);
    expect(s.owned("b")).toEqual(["t/2", "t/3"]);
  });

  it("drops partitions of a deleted topic without a handshake", () => {
    const s = setup({ t: 2, u: 1 });
    s.join("a");
    delete s.sizes.u;
    s.group.rebalance();
    expect(s.owned("a")).toEqual(["t/0", "t/1"]);
    expect(s.last("a").revoking).toEqual([]);
  });

  it("accepts commits only from the owner, with a generation no older than its grant", () => {
    const s = setup({ t: 2 });
    s.join("a");
    const g1 = s.group.generation;
    s.group.checkCommit("a", g1, [{ topic: "t", partition: 1 }]);
    s.join("b");
    const g2 = s.group.generation;
    // a still owns t/1 while it is being revoked: commits are fine.
    s.group.checkCommit("a", g1, [{ topic: "t", partition: 1 }]);
    s.settle();
    expect(() => s.group.checkCommit("a", g2, [{ topic: "t", partition: 1 }])).toThrow(
      FailedPreconditionError,
    );
    // b got t/1 in generation g2: a commit from b tagged with an older generation is stale.
    expect(() => s.group.checkCommit("b", g1, [{ topic: "t", partition: 1 }])).toThrow(/stale generation/);
    s.group.checkCommit("b", g2, [{ topic: "t", partition: 1 }]);
    expect(() => s.group.checkCommit("b", g2 + 5, [])).toThrow(/not one group/);
    expect(() => s.group.checkCommit("zz", g2, [])).toThrow(/not in group/);
  });

  it("never has two owners through a churn of joins, leaves and releases", () => {
    const s = setup({ t: 7, u: 3 });
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alive: string[] = [];
    for (let step = 0; step < 500; step++) {
      const r = rand(10);
      if (r < 3 || alive.length === 0) {
        const id = `m${step}`;
        s.join(id, rand(2) === 0 ? ["t"] : ["t", "u"]);
        alive.push(id);
      } else if (r < 5) {
        const id = alive.splice(rand(alive.length), 1)[0]!;
        s.group.remove(id, "left", "bye");
      } else {
        const m = s.group.member(alive[rand(alive.length)]!)!;
        const revoking = s.group.assignmentOf(m).revoking;
        if (revoking.length > 0) s.group.release(m.id, revoking.slice(0, 1 + rand(revoking.length)));
      }
      s.assertSingleOwners();
    }
    for (let i = 0; i < 10; i++) s.settle();
    expect(s.group.state).toBe(alive.length > 0 ? "stable" : "empty");
  });

  it("ignores a late release about an older period of ownership", () => {
    const s = setup({ t: 2 });
    s.join("a");
    s.join("b"); // a is asked to give up t/1
    const askedIn = s.last("a").generation;
    s.group.release("a", [{ topic: "t", partition: 1 }], askedIn);
    expect(s.group.ownerOf("t", 1)).toBe("b");
    s.group.remove("b", "left", "bye"); // t/1 is granted to a again, in a later generation
    expect(s.group.ownerOf("t", 1)).toBe("a");
    s.join("c"); // and a is asked to give it up once more
    expect(keys(s.last("a").revoking)).toEqual(["t/1"]);
    // A retry of the first release (its answer was lost) arrives only now. It is about the old
    // ownership: a has not committed t/1 for this one yet, so it keeps it until it answers.
    s.group.release("a", [{ topic: "t", partition: 1 }], askedIn);
    expect(s.group.ownerOf("t", 1)).toBe("a");
    s.group.release("a", [{ topic: "t", partition: 1 }], s.last("a").generation);
    expect(s.group.ownerOf("t", 1)).toBe("c");
  });

  it("gives every revoked partition its own release deadline", () => {
    const s = setup({ t: 3, u: 3 });
    s.join("a", ["t", "u"], 1000);
    s.join("b", ["t"], 1000); // a must give up part of t now
    s.advance(900);
    s.group.heartbeat("a");
    s.group.heartbeat("b");
    s.join("c", ["u"], 1000); // and part of u, 900 ms later
    const tRevoked = s.last("a").revoking.filter((p) => p.topic === "t");
    s.group.release("a", tRevoked);
    s.advance(400); // 1300 ms after the first request, 400 ms after the second
    s.group.heartbeat("a");
    s.group.heartbeat("b");
    s.group.heartbeat("c");
    expect(s.group.expire()).toBe(0);
    expect(s.ended.has("a")).toBe(false);
    s.advance(700);
    s.group.heartbeat("a");
    expect(s.group.expire()).toBeGreaterThanOrEqual(1);
    expect(s.ended.get("a")).toBe("release-timeout");
  });

  it("postpones deadlines when the broker itself stalled, by at most one session between answers", () => {
    const s = setup({ t: 1 });
    s.join("a", ["t"], 1000);
    s.advance(1500);
    s.group.postpone(1000);
    expect(s.group.expire()).toBe(0);
    // A broker that keeps stalling cannot keep a silent member forever.
    s.group.postpone(1000);
    s.advance(600);
    expect(s.group.expire()).toBe(1);
    // An answer renews the allowance.
    s.join("b", ["t"], 1000);
    s.advance(900);
    s.group.heartbeat("b");
    s.group.postpone(800);
    s.advance(1700);
    expect(s.group.expire()).toBe(0);
  });

  it("on drain asks every member to give up everything and grants nothing more", () => {
    const s = setup({ t: 4 });
    s.join("a");
    s.join("b");
    s.settle();
    s.group.drain();
    expect(keys(s.last("a").revoking)).toEqual(s.owned("a"));
    expect(keys(s.last("b").revoking)).toEqual(s.owned("b"));
    s.settle();
    expect(s.group.ownedCount).toBe(0);
    expect(s.owned("a")).toEqual([]);
  });
});
