import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  AuthError,
  BrokerUnavailableError,
  fromGrpcError,
  InvalidArgumentError,
  OffsetOutOfRangeError,
  RequestTimeoutError,
  ResourceExhaustedError,
  RillError,
  TopicExistsError,
  TopicNotFoundError,
} from "../../../clients/ts/src/errors.js";
import { appendedBatches } from "../../../clients/ts/src/producer/producer.js";

function serviceError(code: number, details: string, metadata = new Metadata()) {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

describe("client > errors > fromGrpcError", () => {
  it.each([
    [status.NOT_FOUND, TopicNotFoundError, false],
    [status.OUT_OF_RANGE, OffsetOutOfRangeError, false],
    [status.INVALID_ARGUMENT, InvalidArgumentError, false],
    [status.ALREADY_EXISTS, TopicExistsError, false],
    [status.RESOURCE_EXHAUSTED, ResourceExhaustedError, false],
    [status.UNAVAILABLE, BrokerUnavailableError, true],
    [status.DEADLINE_EXCEEDED, RequestTimeoutError, true],
    [status.UNAUTHENTICATED, AuthError, false],
    [status.PERMISSION_DENIED, AuthError, false],
  ] as const)("maps status %i to its class and retriability", (code, cls, retriable) => {
    // Ensures each gRPC status becomes the documented error class with the documented retriable flag.
    const e = fromGrpcError(serviceError(code, "broker says no"));
    expect(e).toBeInstanceOf(cls);
    expect(e).toBeInstanceOf(RillError);
    expect(e.code).toBe(code);
    expect(e.retriable).toBe(retriable);
    expect(e.message).toBe("broker says no");
    expect(e.cause).toBeInstanceOf(Error);
  });

  it("passes RillErrors through and wraps anything else as non-retriable UNKNOWN", () => {
    // Ensures normalization is idempotent and never loses the original.
    const r = new BrokerUnavailableError("x");
    expect(fromGrpcError(r)).toBe(r);
    const plain = fromGrpcError(new TypeError("boom"));
    expect(plain.code).toBe(status.UNKNOWN);
    expect(plain.retriable).toBe(false);
    expect(plain.cause).toBeInstanceOf(TypeError);
    expect(fromGrpcError("text").message).toBe("text");
  });

  it("keeps the trailers so the producer can read rill-appended-batches", () => {
    // Ensures the appended-batches trailer survives normalization and parses as a count.
    const md = new Metadata();
    md.set("rill-appended-batches", "3");
    expect(appendedBatches(fromGrpcError(serviceError(status.RESOURCE_EXHAUSTED, "too big", md)))).toBe(3);
    expect(appendedBatches(fromGrpcError(serviceError(status.UNAVAILABLE, "gone")))).toBeUndefined();
    const bad = new Metadata();
    bad.set("rill-appended-batches", "x");
    expect(appendedBatches(fromGrpcError(serviceError(status.INTERNAL, "?", bad)))).toBeUndefined();
  });
});
