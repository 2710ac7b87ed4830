import { describe, expect, it } from "vitest";
import { BoundedQueue, END } from "../../../../clients/ts/src/consumer/partition-fetcher.js";

describe("client > consumer > bounded queue", () => {
  it("drops chosen items, keeps errors, and lets waiting producers in", async () => {
    // Ensures drop() (used by revocations) frees room and wakes a blocked put.
    const q = new BoundedQueue<{ p: number }>(2);
    expect(await q.put({ p: 0 })).toBe(true);
    expect(await q.put({ p: 1 })).toBe(true);
    let added = false;
    const blocked = q.put({ p: 1 }).then((ok) => {
      added = ok;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(added).toBe(false);
    expect(q.drop((item) => item.p === 0)).toBe(1);
    await blocked;
    expect(added).toBe(true);
    const error = { error: new Error("x") as never };
    q.putControl(error);
    expect(q.drop((item) => item.p === 1)).toBe(2); // the error stays
    expect(await q.take()).toBe(error);
    expect(q.size).toBe(0);
  });

  it("gives up a put when its signal aborts or the queue closes", async () => {
    // Ensures a stopped fetcher's pending put never lands after its partition was dropped.
    const q = new BoundedQueue<{ p: number }>(1);
    await q.put({ p: 0 });
    const ac = new AbortController();
    const aborted = q.put({ p: 1 }, ac.signal);
    const other = q.put({ p: 2 });
    ac.abort();
    expect(await aborted).toBe(false);
    expect(await q.take()).toEqual({ p: 0 });
    expect(await other).toBe(true);
    expect(await q.take()).toEqual({ p: 2 });
    const late = q.put({ p: 3 });
    const late2 = q.put({ p: 4 });
    q.close();
    expect(await late).toBe(true); // there was room for it
    expect(await late2).toBe(false);
    expect(await q.take()).toBe(END);
  });
});
