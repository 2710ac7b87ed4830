import { describe, expect, it } from "vitest";
import {
  parseTopicConfig,
  topicConfigEntries,
  toTopicConfig,
} from "../../../../clients/ts/src/admin/admin.js";
import { InvalidArgumentError } from "../../../../clients/ts/src/errors.js";
import { Durability } from "../../../../clients/ts/src/gen/rill/v1/log.js";

describe("client > admin > topic config", () => {
  it("parses every dotted key into its typed setting", () => {
    // Ensures the CLI's key=value pairs map to the TopicConfig fields with 64-bit values.
    const s = parseTopicConfig([
      "retention.ms=-1",
      "retention.bytes=1073741824",
      "segment.bytes=1048576",
      "segment.ms=3600000",
      "flush.messages=1",
      "flush.ms=1000",
      "max.batch.bytes=65536",
      "durability=fsynced",
    ]);
    expect(toTopicConfig(s)).toEqual({
      retentionMs: -1n,
      retentionBytes: 1073741824n,
      segmentBytes: 1048576n,
      segmentMs: 3600000n,
      flushMessages: 1n,
      flushMs: 1000n,
      maxBatchBytes: 65536n,
      durability: Durability.DURABILITY_FSYNCED,
    });
  });

  it("refuses unknown keys, non-integers and malformed pairs", () => {
    // Ensures bad config is rejected with an InvalidArgumentError that names the problem.
    expect(() => parseTopicConfig(["retention=5"])).toThrow(/unknown config key "retention"/);
    expect(() => parseTopicConfig(["retention.ms=5s"])).toThrow(/must be an integer/);
    expect(() => parseTopicConfig(["retention.ms"])).toThrow(InvalidArgumentError);
    expect(() => parseTopicConfig(["durability=maybe"])).toThrow(/written/);
    expect(() => toTopicConfig({ segmentBytes: 1.5 })).toThrow(InvalidArgumentError);
  });

  it("turns an effective config back into dotted pairs", () => {
    // Ensures describe output uses the same keys the user types.
    expect(
      topicConfigEntries({ retentionMs: 5n, maxBatchBytes: 10n, durability: Durability.DURABILITY_WRITTEN }),
    ).toEqual([
      ["retention.ms", "5"],
      ["max.batch.bytes", "10"],
      ["durability", "written"],
    ]);
    expect(topicConfigEntries(undefined)).toEqual([]);
  });
});
