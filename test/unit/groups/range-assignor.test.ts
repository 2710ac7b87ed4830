import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rangeAssign } from "../../../server/src/groups/range-assignor.js";

const counts =
  (m: Record<string, number>) =>
  (topic: string): number | undefined =>
    m[topic];

function sizes(a: ReturnType<typeof rangeAssign>, topic: string): number[] {
  return [...a.keys()].sort().map((id) => a.get(id)!.get(topic)?.length ?? 0);
}

describe("range assignor", () => {
  it("splits 6 partitions over 3 members 2/2/2, contiguous, in member-id order", () => {
    const a = rangeAssign(
      [
        { id: "c", topics: ["t"] },
        { id: "a", topics: ["t"] },
        { id: "b", topics: ["t"] },
      ],
      counts({ t: 6 }),
    );
    expect(a.get("a")!.get("t")).toEqual([0, 1]);
    expect(a.get("b")!.get("t")).toEqual([2, 3]);
    expect(a.get("c")!.get("t")).toEqual([4, 5]);
  });

  it("gives the extra partitions to the first members: 6 over 4 is 2/2/1/1", () => {
    const a = rangeAssign(
      ["a", "b", "c", "d"].map((id) => ({ id, topics: ["t"] })),
      counts({ t: 6 }),
    );
    expect(sizes(a, "t")).toEqual([2, 2, 1, 1]);
    expect(a.get("d")!.get("t")).toEqual([5]);
  });

  it("leaves members beyond the partition count with nothing", () => {
    const a = rangeAssign(
      ["a", "b", "c"].map((id) => ({ id, topics: ["t"] })),
      counts({ t: 2 }),
    );
    expect(sizes(a, "t")).toEqual([1, 1, 0]);
    expect(a.get("c")!.size).toBe(0);
  });

  it("splits each topic among its own readers only", () => {
    const a = rangeAssign(
      [
        { id: "a", topics: ["x", "y"] },
        { id: "b", topics: ["x"] },
      ],
      counts({ x: 4, y: 3 }),
    );
    expect(a.get("a")!.get("x")).toEqual([0, 1]);
    expect(a.get("b")!.get("x")).toEqual([2, 3]);
    expect(a.get("a")!.get("y")).toEqual([0, 1, 2]);
    expect(a.get("b")!.has("y")).toBe(false);
  });

  it("assigns nothing of a topic that does not exist", () => {
    const a = rangeAssign([{ id: "a", topics: ["gone"] }], counts({}));
    expect(a.get("a")!.size).toBe(0);
  });

  it("is a partition of every topic: disjoint, complete, balanced within one, and order-independent", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 40 }),
        (ids, p) => {
          const members = ids.map((id) => ({ id, topics: ["t"] }));
          const a = rangeAssign(members, counts({ t: p }));
          const b = rangeAssign([...members].reverse(), counts({ t: p }));
          const all = [...a.values()].flatMap((m) => m.get("t") ?? []).sort((x, y) => x - y);
          expect(all).toEqual(Array.from({ length: p }, (_, i) => i));
          const n = [...a.values()].map((m) => m.get("t")?.length ?? 0);
          expect(Math.max(...n) - Math.min(...n)).toBeLessThanOrEqual(1);
          for (const id of ids) expect(b.get(id)!.get("t")).toEqual(a.get(id)!.get("t"));
        },
      ),
    );
  });
});
