import { describe, expect, it } from "vitest";
import { RECENT_FRAMES, RecentFrames } from "../../../server/src/storage/recent-frames.js";

describe("storage > recent frames", () => {
  it("answers the newest frame at or before an offset, within the last appends only", () => {
    const r = new RecentFrames();
    expect(r.floor(5)).toBeNull();
    for (let i = 0; i < RECENT_FRAMES + 8; i++) r.add(i * 2, i * 100); // offsets 0, 2, 4, ...
    expect(r.floor(1_000)).toEqual({
      relative: (RECENT_FRAMES + 7) * 2,
      position: (RECENT_FRAMES + 7) * 100,
    });
    expect(r.floor(21)).toEqual({ relative: 20, position: 1_000 });
    expect(r.floor(16)).toEqual({ relative: 16, position: 800 });
    expect(r.floor(15)).toBeNull(); // offset 14 was pushed out of the ring
  });

  it("forgets the frames a cut removed, so entries stay in append order", () => {
    const r = new RecentFrames();
    for (let i = 0; i < 10; i++) r.add(i, i * 10);
    r.truncate(55); // frames at 60, 70, 80, 90 are gone
    expect(r.floor(9)).toEqual({ relative: 5, position: 50 });
    r.add(6, 55);
    expect(r.floor(9)).toEqual({ relative: 6, position: 55 });
    r.truncate(0);
    expect(r.floor(9)).toBeNull();
  });
});
