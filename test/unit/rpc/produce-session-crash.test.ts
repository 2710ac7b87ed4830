/**
 * ProduceSession's last resort (produce-session.ts `crash`): a throw where nothing should throw (a
 * bug; here a logger that fails, which no real input can cause, hence the stand-in call and
 * broker) must end the call (with INTERNAL, or by resetting the stream if even the status cannot be
 * handed over) and let go of it, not escape from grpc-js's data event.
 */
import { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ProduceSessionRequest } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { decodeProduceSessionRequestView } from "../../../server/src/rpc/codecs/produce-session.js";
import type { RpcContext } from "../../../server/src/rpc/context.js";
import { produceSession, type SessionCall } from "../../../server/src/rpc/produce-session.js";
import { produceRequest, record } from "../../integration/helpers/grpc.js";

/** A session whose broker fails unexpectedly on its first batch and whose logger throws `failures` times. */
async function crashOnce(failures: number) {
  const logger = pino({ level: "silent" });
  logger.error = (() => {
    if (failures-- > 0) throw new Error("the logger broke");
  }) as unknown as typeof logger.error;
  const streams = new Set();
  const ctx = {
    core: {
      config: { maxInflightBatchesPerSession: 4, maxRecordsPerBatch: 1000 },
      topics: {
        get: () => {
          throw new Error("boom"); // an unexpected error: answered as INTERNAL, which logs it
        },
      },
    },
    logger,
    draining: false,
    streams,
    inflight: new Set(),
  } as unknown as RpcContext;
  const written: unknown[] = [];
  const statuses: { code?: number }[] = [];
  const duplex = new Duplex({
    objectMode: true,
    read() {},
    write(chunk, _encoding, done) {
      written.push(chunk);
      done();
    },
  });
  duplex.on("error", (e: { code?: number }) => statuses.push(e)); // grpc-js turns it into the status
  const ended = produceSession(ctx, duplex as unknown as SessionCall);
  const bytes = ProduceSessionRequest.encode({
    sequence: 1n,
    produce: produceRequest("t", 0, [record("x")]),
  }).finish();
  expect(() => duplex.push(decodeProduceSessionRequestView(Buffer.from(bytes)))).not.toThrow();
  const bound = new AbortController();
  const timeout = sleep(5_000, "still open", { signal: bound.signal }).catch(() => "aborted");
  const settled = await Promise.race([ended.then(() => "ended"), timeout]);
  bound.abort();
  expect(settled).toBe("ended");
  expect(written).toEqual([]);
  expect(streams.size).toBe(0);
  expect(duplex.listenerCount("data")).toBe(0);
  return { statuses, duplex };
}

describe("rpc > produce session > an unexpected throw", () => {
  it("ends the call with INTERNAL, answers nothing more and lets go of the call", async () => {
    const { statuses, duplex } = await crashOnce(1);
    expect(statuses.map((s) => s.code)).toEqual([status.INTERNAL]);
    expect(duplex.destroyed).toBe(false);
  });

  it("resets the stream when even the status cannot be handed over", async () => {
    const { statuses, duplex } = await crashOnce(Number.POSITIVE_INFINITY);
    expect(statuses).toEqual([]);
    expect(duplex.destroyed).toBe(true);
  });
});
