import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { Admin } from "../../../../clients/ts/src/admin/admin.js";
import type { Connection } from "../../../../clients/ts/src/connection.js";
import { FailedPreconditionError, InvalidArgumentError } from "../../../../clients/ts/src/errors.js";
import { OffsetPosition } from "../../../../clients/ts/src/gen/rill/v1/log.js";
import { silentLogger } from "../../../../clients/ts/src/logger.js";

type Callback = (error: ServiceError | null, response: unknown) => void;

interface Recorded {
  method: string;
  request: unknown;
}

/**
 * An Admin over a fake connection: every unary method records its request and answers from
 * `answers[method]` (shifted per call; default an empty success).
 */
function fakeAdmin(answers: Record<string, (ServiceError | object)[]> = {}) {
  const calls: Recorded[] = [];
  const service = (names: string[]) =>
    Object.fromEntries(
      names.map((method) => [
        method,
        (request: unknown, _md: Metadata, _opts: unknown, cb: Callback) => {
          calls.push({ method, request });
          const next = answers[method]?.shift();
          setImmediate(() => {
            if (next instanceof Error) cb(next as ServiceError, undefined);
            else cb(null, next ?? { groups: [], offsets: [], partitions: [], members: [] });
          });
        },
      ]),
    );
  const connection = {
    group: service(["listGroups", "describeGroup", "deleteGroup", "fetchCommittedOffsets", "resetOffsets"]),
    admin: service(["addPartitions"]),
    metadata: () => new Metadata(),
  } as unknown as Connection;
  const admin = new Admin({
    connection,
    logger: silentLogger(),
    retry: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 },
    requestTimeoutMs: 5_000,
  });
  return { admin, calls };
}

function grpcError(code: number, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });
}

describe("client > admin > groups", () => {
  it("refuses bad group ids before calling the broker", async () => {
    // Ensures every group method checks the id client-side with an InvalidArgumentError.
    const { admin, calls } = fakeAdmin();
    const bad: unknown[] = ["", ".", "..", "a/b", "has space", "x".repeat(250), 7, undefined];
    for (const g of bad) {
      const group = g as string;
      await expect(admin.describeGroup(group)).rejects.toThrow(InvalidArgumentError);
      await expect(admin.deleteGroup(group)).rejects.toThrow(/invalid group id/);
      await expect(admin.fetchCommittedOffsets(group)).rejects.toThrow(InvalidArgumentError);
      await expect(admin.resetOffsets(group, ["t"], "earliest")).rejects.toThrow(InvalidArgumentError);
    }
    expect(calls).toEqual([]);
    // The longest legal id and the allowed punctuation pass.
    await admin.describeGroup("x".repeat(249));
    await admin.describeGroup("a.b_c-D9");
    expect(calls.map((c) => c.request)).toEqual([{ groupId: "x".repeat(249) }, { groupId: "a.b_c-D9" }]);
  });

  it("refuses bad reset targets and topic lists before calling the broker", async () => {
    // Ensures resetOffsets validates topics and `to` (offset range, valid date, known words).
    const { admin, calls } = fakeAdmin();
    await expect(admin.resetOffsets("g", [], "earliest")).rejects.toThrow(/at least one topic/);
    await expect(admin.resetOffsets("g", [""], "earliest")).rejects.toThrow(/non-empty/);
    await expect(admin.resetOffsets("g", ["t"], -1n)).rejects.toThrow(/offset must be between 0/);
    await expect(admin.resetOffsets("g", ["t"], 2n ** 63n)).rejects.toThrow(/offset must be between 0/);
    await expect(admin.resetOffsets("g", ["t"], new Date(Number.NaN))).rejects.toThrow(/valid date/);
    await expect(admin.resetOffsets("g", ["t"], new Date(-1))).rejects.toThrow(/valid date/);
    await expect(admin.resetOffsets("g", ["t"], "middle" as "earliest")).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(admin.resetOffsets("g", ["t"], 5 as unknown as bigint)).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(admin.fetchCommittedOffsets("g", [""])).rejects.toThrow(InvalidArgumentError);
    expect(calls).toEqual([]);
  });

  it("maps each reset target to its wire form", async () => {
    // Ensures earliest/latest/offset/time become position/offset/timestampMs, topics deduplicated.
    const { admin, calls } = fakeAdmin();
    const at = new Date("2026-01-02T03:04:05.678Z");
    await admin.resetOffsets("g", ["a", "b", "a"], "earliest");
    await admin.resetOffsets("g", ["a"], "latest");
    await admin.resetOffsets("g", ["a"], 2n ** 63n - 1n);
    await admin.resetOffsets("g", ["a"], at);
    await admin.fetchCommittedOffsets("g");
    expect(calls).toEqual([
      {
        method: "resetOffsets",
        request: {
          groupId: "g",
          topics: ["a", "b"],
          to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST },
        },
      },
      {
        method: "resetOffsets",
        request: {
          groupId: "g",
          topics: ["a"],
          to: { $case: "position", value: OffsetPosition.OFFSET_POSITION_LATEST },
        },
      },
      {
        method: "resetOffsets",
        request: { groupId: "g", topics: ["a"], to: { $case: "offset", value: 2n ** 63n - 1n } },
      },
      {
        method: "resetOffsets",
        request: { groupId: "g", topics: ["a"], to: { $case: "timestampMs", value: BigInt(at.getTime()) } },
      },
      { method: "fetchCommittedOffsets", request: { groupId: "g", topics: [] } },
    ]);
  });

  it("checks addPartitions' count and sends the new total", async () => {
    // Ensures a non-positive, fractional or over-int32 count never reaches the broker.
    const { admin, calls } = fakeAdmin({
      addPartitions: [{ topic: { topic: "t", partitions: [{}, {}, {}, {}, {}] } }],
    });
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 31]) {
      await expect(admin.addPartitions("t", n)).rejects.toThrow(/partitions must be a positive integer/);
    }
    await expect(admin.addPartitions("", 5)).rejects.toThrow(InvalidArgumentError);
    expect(calls).toEqual([]);
    const d = await admin.addPartitions("t", 5);
    expect(d.partitions).toHaveLength(5);
    expect(calls).toEqual([{ method: "addPartitions", request: { topic: "t", partitions: 5 } }]);
  });

  it("retries reads on UNAVAILABLE but never mutations", async () => {
    // Ensures listGroups/describeGroup/fetchCommittedOffsets retry, while resetOffsets, deleteGroup
    // and addPartitions fail after one attempt (a blind retry could repeat or misreport the change).
    const unavailable = () => grpcError(status.UNAVAILABLE, "down");
    const { admin, calls } = fakeAdmin({
      listGroups: [unavailable(), { groups: [{ groupId: "g", state: 1, memberCount: 0, topics: [] }] }],
      describeGroup: [unavailable(), unavailable(), { groupId: "g", members: [], partitions: [] }],
      fetchCommittedOffsets: [unavailable(), { offsets: [] }],
      resetOffsets: [unavailable()],
      deleteGroup: [unavailable()],
      addPartitions: [unavailable()],
    });
    expect((await admin.listGroups()).map((g) => g.groupId)).toEqual(["g"]);
    expect((await admin.describeGroup("g")).groupId).toBe("g");
    expect(await admin.fetchCommittedOffsets("g", ["t"])).toEqual([]);
    await expect(admin.resetOffsets("g", ["t"], "latest")).rejects.toThrow(/down/);
    await expect(admin.deleteGroup("g")).rejects.toThrow(/down/);
    await expect(admin.addPartitions("t", 2)).rejects.toThrow(/down/);
    const count = (m: string) => calls.filter((c) => c.method === m).length;
    expect([count("listGroups"), count("describeGroup"), count("fetchCommittedOffsets")]).toEqual([2, 3, 2]);
    expect([count("resetOffsets"), count("deleteGroup"), count("addPartitions")]).toEqual([1, 1, 1]);
  });

  it("reports the broker's FAILED_PRECONDITION as a FailedPreconditionError with its message", async () => {
    // Ensures a reset refused while the group has members surfaces the broker's words, not retried.
    const { admin, calls } = fakeAdmin({
      resetOffsets: [grpcError(status.FAILED_PRECONDITION, 'group "g" has 1 member')],
    });
    const err = await admin.resetOffsets("g", ["t"], "earliest").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toBe('group "g" has 1 member');
    expect(calls).toHaveLength(1);
  });
});
