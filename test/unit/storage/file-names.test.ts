import { describe, expect, it } from "vitest";
import { fileName, formatBaseOffset, parseFileName } from "../../../server/src/storage/file-names.js";

describe("storage > file-names", () => {
  it("pads base offsets to 20 digits so listings sort by offset", () => {
    // Ensures names sort lexicographically in offset order.
    expect(formatBaseOffset(0n)).toBe("00000000000000000000");
    expect(fileName(42n, "log")).toBe("00000000000000000042.log");
    expect(fileName(2n ** 63n - 1n, "timeindex")).toBe("09223372036854775807.timeindex");
    const names = [1000n, 9n, 10n, 0n].map((b) => fileName(b, "log")).sort();
    expect(names.map((n) => parseFileName(n)!.baseOffset)).toEqual([0n, 9n, 10n, 1000n]);
  });

  it("parses every kind and temporary suffix and ignores foreign files", () => {
    // Ensures open() recognises its own files, including half-deleted ones, and nothing else.
    expect(parseFileName("00000000000000000042.index")).toEqual({
      baseOffset: 42n,
      kind: "index",
      temporary: null,
    });
    expect(parseFileName("00000000000000000042.log.deleted")).toEqual({
      baseOffset: 42n,
      kind: "log",
      temporary: ".deleted",
    });
    expect(parseFileName("00000000000000000042.timeindex.swap")?.temporary).toBe(".swap");
    expect(parseFileName("00000000000000000042.log.cleaned")?.temporary).toBe(".cleaned");
    for (const name of [
      "topic.json",
      "42.log",
      "0000000000000000004x.log",
      "00000000000000000042.txt",
      ".log",
    ]) {
      expect(parseFileName(name)).toBeNull();
    }
  });
});
