import type { ServerWritableStream } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FetchRequest, FetchResponse } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import { createClient, OffsetOutOfRangeError, type RillClient } from "../../../../clients/ts/src/index.js";
import { take } from "../../../helpers/take.js";
import { type FakeBroker, record, startFakeBroker, status, storedBatch } from "../helpers/fake-broker.js";

let fake: FakeBroker;
let client: RillClient;

beforeEach(async () => {
  fake = await startFakeBroker(1);
  client = createClient({
    brokers: fake.address,
    retry: { initialDelayMs: 1, maxDelayMs: 10, maxAttempts: 4, maxElapsedMs: 5_000 },
  });
});

afterEach(async () => {
  await client.close().catch(() => {});
  await fake.stop();
});

function fill(n: number): void {
  fake.logs.set(
    0,
    Array.from({ length: n }, (_, i) => record(`r${i}`)),
  );
}

function startOffset(req: FetchRequest): bigint | undefined {
  return req.start?.$case === "offset" ? req.start.value : undefined;
}

describe("client > consumer > resume", () => {
  it("resumes a broken stream from the offset after the last record it handed out", async () => {
    // Ensures an UNAVAILABLE mid-stream loses and repeats nothing: the next fetch starts where it left off.
    fill(6);
    let calls = 0;
    fake.fetchHandler = (call) => {
      calls++;
      const from = Number(startOffset(call.request) ?? 0n);
      const log = fake.logs.get(0)!;
      if (calls === 1) {
        // Serve [0, 3) as a batch starting at 0, then break.
        call.write({ batches: [storedBatch(0n, log.slice(0, 3))], highWatermark: 6n, logStartOffset: 0n });
        setTimeout(() => call.emit("error", { code: status.UNAVAILABLE, details: "shutting down" }), 20);
        return;
      }
      // Serve the whole log from 0 so the client must skip what it already had.
      call.write({ batches: [storedBatch(0n, log)], highWatermark: 6n, logStartOffset: 0n });
      expect(from).toBe(3);
      call.end();
    };
    const got = await take(client.consumer().read({ topic: "t", follow: false }), 100);
    expect(got.map((r) => [r.offset, r.value.toString()])).toEqual(
      Array.from({ length: 6 }, (_, i) => [BigInt(i), `r${i}`]),
    );
    expect(fake.fetchRequests.map(startOffset)).toEqual([undefined, 3n]);
  });

  it("keeps resuming while following, through repeated failures", async () => {
    // Ensures a following read outlives several broken streams with backoff.
    fill(2);
    let calls = 0;
    fake.fetchHandler = (call) => {
      calls++;
      if (calls <= 6) {
        call.emit("error", { code: status.UNAVAILABLE, details: `down ${calls}` });
        return;
      }
      call.write({ batches: [storedBatch(0n, fake.logs.get(0)!)], highWatermark: 2n, logStartOffset: 0n });
    };
    const got = await take(client.consumer().read({ topic: "t", follow: true }), 2);
    expect(got.map((r) => r.value.toString())).toEqual(["r0", "r1"]);
    expect(calls).toBe(7);
  });

  it("gives up without follow after the bounded attempts", async () => {
    // Ensures a non-following read does not retry forever.
    fill(2);
    fake.fetchHandler = (call) => call.emit("error", { code: status.UNAVAILABLE, details: "down" });
    await expect(take(client.consumer().read({ topic: "t", follow: false }), 10)).rejects.toThrow("down");
    expect(fake.fetchRequests.length).toBe(4);
  });

  it("throws non-retriable errors after the records queued before them", async () => {
    // Ensures OUT_OF_RANGE is surfaced as OffsetOutOfRangeError, not retried.
    fill(2);
    fake.fetchHandler = (call) =>
      call.emit("error", { code: status.OUT_OF_RANGE, details: "before log start" });
    await expect(
      take(client.consumer().read({ topic: "t", from: 1n, follow: true }), 10),
    ).rejects.toBeInstanceOf(OffsetOutOfRangeError);
    expect(fake.fetchRequests).toHaveLength(1);
  });

  it("ends at the high watermark seen at start without follow", async () => {
    // Ensures records appended after the read began are not part of a non-following read.
    fill(3);
    fake.fetchHandler = (call) => {
      // The broker's log grew to 5 meanwhile; the client stops at 3 from ListOffsets.
      const log = [...fake.logs.get(0)!, record("late-3"), record("late-4")];
      call.write({ batches: [storedBatch(0n, log)], highWatermark: 5n, logStartOffset: 0n });
      call.end();
    };
    const got = await take(client.consumer().read({ topic: "t", follow: false }), 100);
    expect(got.map((r) => r.value.toString())).toEqual(["r0", "r1", "r2"]);
  });
});

describe("client > consumer > flow control", () => {
  it("stops pulling while the application is not consuming, and break cancels the stream", async () => {
    // Ensures buffering is bounded (backpressure reaches the server) and leaving the loop cancels the call.
    fill(1);
    let written = 0;
    let cancelled = false;
    const value = Buffer.alloc(64 * 1024, 1);
    fake.fetchHandler = (call: ServerWritableStream<FetchRequest, FetchResponse>) => {
      call.on("cancelled", () => {
        cancelled = true;
      });
      const pump = (): void => {
        while (!cancelled) {
          const ok = call.write({
            batches: [storedBatch(BigInt(written), [record(value)])],
            highWatermark: BigInt(written + 1),
            logStartOffset: 0n,
          });
          written++;
          if (written > 10_000) return; // bound the test whatever happens
          if (!ok) {
            call.once("drain", pump);
            return;
          }
        }
      };
      pump();
    };
    const consumer = client.consumer({ maxQueuedBatches: 4 });
    const it = consumer.read({ topic: "t", follow: true })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.offset).toBe(0n);
    await new Promise((r) => setTimeout(r, 500));
    const stalledAt = written;
    await new Promise((r) => setTimeout(r, 300));
    // Nothing more is written while the application holds on; and the total is bounded.
    expect(written).toBe(stalledAt);
    expect(written).toBeLessThan(400);
    await it.return?.(undefined);
    const deadline = Date.now() + 5_000;
    while (!cancelled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(cancelled).toBe(true);
  });

  it("ends quietly when its signal aborts", async () => {
    // Ensures an AbortSignal stops a following read without an error.
    fill(1);
    fake.fetchHandler = (call) => {
      call.write({ batches: [storedBatch(0n, fake.logs.get(0)!)], highWatermark: 1n, logStartOffset: 0n });
    };
    const controller = new AbortController();
    const seen: string[] = [];
    setTimeout(() => controller.abort(), 200);
    for await (const r of client.consumer().read({ topic: "t", signal: controller.signal })) {
      seen.push(r.value.toString());
    }
    expect(seen).toEqual(["r0"]);
  });
});
