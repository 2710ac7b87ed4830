import { describe, expect, it } from "vitest";
import { AuthFileError } from "../../../server/src/rpc/auth/errors.js";
import { sha256, TokenTable } from "../../../server/src/rpc/auth/tokens.js";

const ALICE = "alice-token-0123456789";
const BOB = "bob-token-abcdefghijkl";

function table(tokens: unknown[]): TokenTable {
  return TokenTable.parse(JSON.stringify({ tokens }), "test.json");
}

describe("unit > auth > tokens file", () => {
  it("maps clear and sha256 tokens to their principals and nothing else", () => {
    // Ensures both forms authenticate and a near-miss (prefix, extra char, other case) does not.
    const t = table([
      { token: ALICE, principal: "alice" },
      { sha256: sha256(BOB).toString("hex"), principal: "bob" },
    ]);
    expect(t.size).toBe(2);
    expect(t.principalOf(ALICE)).toBe("alice");
    expect(t.principalOf(BOB)).toBe("bob");
    expect(t.principalOf(ALICE.slice(0, -1))).toBeUndefined();
    expect(t.principalOf(`${ALICE}x`)).toBeUndefined();
    expect(t.principalOf(ALICE.toUpperCase())).toBeUndefined();
    expect(t.principalOf("")).toBeUndefined();
  });

  it("refuses invalid files with a message naming the entry and the fix", () => {
    // Ensures a broker never starts with a half-understood tokens file.
    const bad: [string, RegExp][] = [
      ["not json", /not JSON/],
      [JSON.stringify({ users: [] }), /must be \{"tokens"/],
      [JSON.stringify({ tokens: [{ token: "short", principal: "a" }] }), /tokens\[0\].*at least 16/],
      [JSON.stringify({ tokens: [{ token: ALICE }] }), /tokens\[0\].*principal must be/],
      [JSON.stringify({ tokens: [{ token: ALICE, sha256: "00", principal: "a" }] }), /exactly one/],
      [JSON.stringify({ tokens: [{ sha256: "xyz", principal: "a" }] }), /64 hex digits/],
      [JSON.stringify({ tokens: [{ token: ALICE, principal: "CN=alice" }] }), /reserved/],
      [JSON.stringify({ tokens: [{ token: ALICE, principal: "ANONYMOUS" }] }), /reserved/],
      [JSON.stringify({ tokens: [{ token: ALICE, principal: "*" }] }), /reserved/],
      [
        JSON.stringify({
          tokens: [
            { token: ALICE, principal: "a" },
            { sha256: sha256(ALICE).toString("hex"), principal: "b" },
          ],
        }),
        /tokens\[1\].*twice/,
      ],
    ];
    for (const [text, message] of bad) {
      expect(() => TokenTable.parse(text, "t.json"), text).toThrow(AuthFileError);
      expect(() => TokenTable.parse(text, "t.json"), text).toThrow(message);
    }
    expect(() => TokenTable.load("/nonexistent/rill-tokens.json")).toThrow(/cannot read auth.tokens.file/);
  });

  it("never quotes a token when the file is not valid JSON", () => {
    // Ensures a syntax error near a token does not put (part of) the secret into the broker's log:
    // V8's JSON.parse messages quote the text around the error.
    const secret = "Zq9XvWKp3RtLm7YbHs2NdFg5";
    const broken = [
      `{"tokens": [{"token": ${secret}, "principal": "alice"}]}`, // unquoted token
      `{"tokens": [{"token": "${secret}", "principal": "alice"},]}`, // trailing comma
      `{"tokens": [{"token": "${secret}" "principal": "alice"}]}`, // missing comma
    ];
    for (const text of broken) {
      let message = "";
      try {
        TokenTable.parse(text, "t.json");
      } catch (err) {
        expect(err).toBeInstanceOf(AuthFileError);
        message = (err as Error).message;
      }
      expect(message, text).toMatch(/auth\.tokens\.file t\.json is not JSON/);
      for (let i = 0; i + 3 <= secret.length; i++)
        expect(message, text).not.toContain(secret.slice(i, i + 3));
    }
  });
});
