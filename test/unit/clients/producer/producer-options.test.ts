import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../../clients/ts/src/errors.js";
import { resolveProducerOptions } from "../../../../clients/ts/src/producer/producer-options.js";

const client = { retry: {}, requestTimeoutMs: 30_000 };

describe("client > producer > options", () => {
  it("sends at most half the buffer on one Produce stream unless told otherwise", () => {
    // Ensures the other half of the buffer can fill while a stream is out (phase 9 of rill bench).
    expect(resolveProducerOptions({}, client).maxStreamBytes).toBe(16 * 1024 * 1024);
    expect(resolveProducerOptions({ bufferBytes: 1_001 }, client).maxStreamBytes).toBe(500);
    expect(resolveProducerOptions({ bufferBytes: 1 }, client).maxStreamBytes).toBe(1);
    expect(resolveProducerOptions({ bufferBytes: 1_000, maxStreamBytes: 900 }, client).maxStreamBytes).toBe(
      900,
    );
  });

  it("refuses a maxStreamBytes below 1, naming it", () => {
    expect(() => resolveProducerOptions({ maxStreamBytes: 0 }, client)).toThrow(InvalidArgumentError);
    expect(() => resolveProducerOptions({ maxStreamBytes: Number.NaN }, client)).toThrow(/maxStreamBytes/);
  });
});
