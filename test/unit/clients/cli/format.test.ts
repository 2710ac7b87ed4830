import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { jsonLine, parseFrom, render } from "../../../../clients/cli/src/commands/consume.js";
import { formatSummary, LineSplitter, recordMaker } from "../../../../clients/cli/src/commands/produce.js";
import { formatTable } from "../../../../clients/cli/src/commands/topic.js";
import { CliError, describeError } from "../../../../clients/cli/src/context.js";
import {
  AuthError,
  BrokerUnavailableError,
  type ConsumedRecord,
  TopicExistsError,
  TopicNotFoundError,
} from "../../../../clients/ts/src/index.js";

function rec(value: Buffer | string, key: Buffer | string | null = null): ConsumedRecord {
  return {
    topic: "t",
    partition: 1,
    offset: 12345678901234n,
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(value),
    headers: [],
    timestamp: 1_700_000_000_000,
  };
}

describe("client > cli > produce input", () => {
  it("splits lines on \\n only and keeps the unterminated rest", () => {
    // Ensures line splitting is byte-exact: \r stays, empty lines are records, the tail waits.
    const s = new LineSplitter();
    expect(s.push(Buffer.from("a\r\n\nb\npartial")).map(String)).toEqual(["a\r", "", "b"]);
    expect(s.end()?.toString()).toBe("partial");
    const t = new LineSplitter();
    expect(t.push(Buffer.from("x\n")).map(String)).toEqual(["x"]);
    expect(t.end()).toBeNull();
  });

  it("joins a line spanning many chunks, across CRLF and chunk edges", () => {
    // Ensures chunked input gives the same lines as one buffer, whatever the chunk boundaries.
    const text = `${"x".repeat(10_000)}\r\nshort\r\n\n${"y".repeat(5_000)}\nlast`;
    const s = new LineSplitter();
    const lines: string[] = [];
    const input = Buffer.from(text);
    for (let i = 0; i < input.length; i += 7) lines.push(...s.push(input.subarray(i, i + 7)).map(String));
    const last = s.end();
    if (last !== null) lines.push(last.toString());
    expect(lines).toEqual([`${"x".repeat(10_000)}\r`, "short\r", "", "y".repeat(5_000), "last"]);
  });

  it("copies an unfinished tail rather than pinning its chunk", () => {
    // Ensures the pending rest of a chunk is its own bytes (the chunk it came from can go).
    const t = new LineSplitter();
    const chunk = Buffer.from("x\nyz");
    t.push(chunk);
    chunk.fill(0x21);
    expect(t.end()?.toString()).toBe("yz");
  });

  it("fails with a one-line error as soon as a line passes the limit", () => {
    // Ensures an over-long line is refused early (before its newline) instead of buffered whole.
    const s = new LineSplitter(10, 'the max.batch.bytes of topic "t"');
    expect(s.push(Buffer.from("ok\n0123456789\n")).map(String)).toEqual(["ok", "0123456789"]);
    s.push(Buffer.from("01234"));
    const err = (() => {
      try {
        s.push(Buffer.from("567890"));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(1);
    expect((err as Error).message).toBe(
      'line 3 is longer than 10 bytes (the max.batch.bytes of topic "t"); each line is one record and must fit in one batch',
    );
    expect(() => new LineSplitter(3).push(Buffer.from("abcd\n"))).toThrow(/line 1 is longer than 3 bytes/);
  });

  it("splits the key at the first separator and applies --partition", () => {
    // Ensures --key-separator splits once and lines without it have no key.
    const make = recordMaker("::", 2);
    expect(make(Buffer.from("k::v::w"))).toMatchObject({ partition: 2 });
    const r = make(Buffer.from("k::v::w"));
    expect([(r.key as Buffer).toString(), (r.value as Buffer).toString()]).toEqual(["k", "v::w"]);
    expect(make(Buffer.from("no separator")).key).toBeUndefined();
  });

  it("summarizes offsets per partition", () => {
    // Ensures the end-of-run summary lists each partition's count and offset range.
    const s = formatSummary(
      "orders",
      new Map([
        [1, { count: 1, min: 7n, max: 7n, unknown: 0 }],
        [0, { count: 3, min: 0n, max: 2n, unknown: 0 }],
      ]),
    );
    expect(s).toBe(
      'produced 4 records to "orders"\n  partition 0: 3 records, offsets 0..2\n  partition 1: 1 record, offset 7\n',
    );
  });
});

describe("client > cli > consume output", () => {
  it("renders text as raw values, one per line", () => {
    // Ensures text output is the value bytes exactly, each followed by a newline.
    const out = render([rec(Buffer.from([0xff, 0x00])), rec("b")], "text");
    expect([...out]).toEqual([0xff, 0x00, 0x0a, 0x62, 0x0a]);
  });

  it("renders JSON with string offsets and base64 for non-UTF-8 bytes", () => {
    // Ensures JSON lines keep 64-bit offsets exact and mark binary fields.
    expect(JSON.parse(jsonLine(rec("héllo", "k")))).toEqual({
      topic: "t",
      partition: 1,
      offset: "12345678901234",
      key: "k",
      value: "héllo",
      headers: [],
      timestamp: 1_700_000_000_000,
    });
    const bin = JSON.parse(
      jsonLine({ ...rec(Buffer.from([0xc3])), headers: [{ key: "h", value: Buffer.from([0xff]) }] }),
    );
    expect(bin).toMatchObject({
      key: null,
      value: "ww==",
      valueEncoding: "base64",
      headers: [{ key: "h", value: "/w==", encoding: "base64" }],
    });
  });

  it("parses --from", () => {
    // Ensures every documented --from form is accepted and anything else is a usage error.
    expect(parseFrom(undefined)).toBe("earliest");
    expect(parseFrom("latest")).toBe("latest");
    expect(parseFrom("42")).toBe(42n);
    expect(parseFrom("9223372036854775807")).toBe(2n ** 63n - 1n);
    expect(parseFrom("2024-01-02T03:04:05Z")).toEqual(new Date("2024-01-02T03:04:05Z"));
    expect(() => parseFrom("yesterday")).toThrow(CliError);
  });

  it("refuses a --from offset past int64 as a usage error", () => {
    // Ensures an offset that cannot go on the wire is rejected up front with exit code 2.
    for (const v of ["9223372036854775808", "99999999999999999999"]) {
      const err = (() => {
        try {
          parseFrom(v);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(2);
      expect((err as Error).message).toMatch(/--from offset must be at most 9223372036854775807/);
    }
    expect(() => parseFrom("-1")).toThrow(CliError);
  });
});

describe("client > cli > messages", () => {
  it("gives one actionable line per failure", () => {
    // Ensures the common failures read as plain advice.
    expect(describeError(new TopicNotFoundError("no such topic"), { topic: "x" })).toBe(
      'topic "x" not found — create it with: rill topic create x',
    );
    expect(describeError(new TopicExistsError("exists"), { topic: "x" })).toBe('topic "x" already exists');
    expect(
      describeError(new BrokerUnavailableError("connect ECONNREFUSED. Resolution note: "), { broker: "h:1" }),
    ).toBe("cannot reach the broker at h:1 (connect ECONNREFUSED) — is it running? (rill broker starts one)");
    expect(describeError(new AuthError("requires authentication", { code: status.UNAUTHENTICATED }))).toBe(
      "not authenticated: requires authentication (rill sends a token from --token-file or RILL_TOKEN, a client certificate from --tls-cert and --tls-key)",
    );
    expect(describeError(new AuthError("may not write topic x"))).toBe("not allowed: may not write topic x");
    expect(
      formatTable([
        ["A", "BB"],
        ["ccc", "d"],
      ]),
    ).toBe("A    BB\nccc  d\n");
  });
});
