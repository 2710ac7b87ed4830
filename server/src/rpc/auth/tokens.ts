/**
 * The bearer-token file (`auth.tokens.file`): maps tokens to principals.
 *
 * Format (JSON):
 *   {"tokens": [{"token": "s3cret", "principal": "alice"},
 *               {"sha256": "<64 hex digits of SHA-256(token)>", "principal": "bob"}]}
 * The `sha256` form keeps no secret in the file. Invariants:
 * - the file is read and validated once, at startup; any problem is an AuthFileError naming the
 *   entry and what to fix, so a broker never starts with a half-read token list; no message
 *   quotes a token (a JSON syntax error gets only its position, not V8's excerpt of the text);
 * - every token is held only as its SHA-256 digest; a presented token is hashed and compared with
 *   EVERY digest using crypto.timingSafeEqual (no early exit), so the time taken does not depend
 *   on which token, or how much of one, matched;
 * - a principal is 1-256 printable characters, never starts with `CN=` (that form is reserved
 *   for certificate principals, principal.ts) and is never ANONYMOUS or `*` (the ACL file's
 *   wildcard), so a token cannot pose as a certificate, an unauthenticated caller or everyone;
 * - two entries may not carry the same token (ambiguous principal).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AuthFileError, readAuthFile } from "./errors.js";

interface Entry {
  digest: Buffer;
  principal: string;
}

const PRINCIPAL = /^[\x21-\x7e][\x20-\x7e]{0,255}$/;

/** Checks a principal name as written in the tokens or ACL file; returns an error text or undefined. */
export function principalProblem(principal: unknown): string | undefined {
  if (typeof principal !== "string" || !PRINCIPAL.test(principal) || principal.endsWith(" ")) {
    return "principal must be 1-256 printable ASCII characters without leading or trailing spaces";
  }
  return undefined;
}

export function sha256(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export class TokenTable {
  private constructor(private readonly entries: readonly Entry[]) {}

  /** How many tokens the file holds. */
  get size(): number {
    return this.entries.length;
  }

  /** Reads and validates the tokens file; throws AuthFileError with what to fix. */
  static load(path: string): TokenTable {
    return TokenTable.parse(readAuthFile("auth.tokens.file", path), path);
  }

  static parse(text: string, source: string): TokenTable {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      // V8's message quotes the text around the error, which may be a token: give only the position.
      const at = /at position (\d+)/.exec((err as Error).message);
      throw new AuthFileError(
        `auth.tokens.file ${source} is not JSON${at ? ` (syntax error at character ${at[1]})` : ""}; fix its syntax (the parser's message is not shown, as it could quote a token)`,
      );
    }
    const list = (doc as { tokens?: unknown } | null)?.tokens;
    if (!Array.isArray(list)) {
      throw new AuthFileError(
        `auth.tokens.file ${source} must be {"tokens": [{"token" or "sha256": ..., "principal": ...}]}`,
      );
    }
    const entries: Entry[] = [];
    const seen = new Set<string>();
    list.forEach((raw: unknown, i: number) => {
      const where = `auth.tokens.file ${source}: tokens[${i}]`;
      const e = (raw ?? {}) as { token?: unknown; sha256?: unknown; principal?: unknown };
      const problem = principalProblem(e.principal);
      if (problem) throw new AuthFileError(`${where}: ${problem}`);
      const principal = e.principal as string;
      if (principal.startsWith("CN=") || principal === "ANONYMOUS" || principal === "*") {
        throw new AuthFileError(
          `${where}: principal "${principal}" is reserved (CN=... names client certificates, ANONYMOUS unauthenticated callers, * every principal in the ACL file); choose another name`,
        );
      }
      let digest: Buffer;
      if (typeof e.token === "string" && e.sha256 === undefined) {
        if (e.token.length < 16 || /\s/.test(e.token)) {
          throw new AuthFileError(`${where}: token must be at least 16 characters without whitespace`);
        }
        digest = sha256(e.token);
      } else if (typeof e.sha256 === "string" && e.token === undefined) {
        if (!/^[0-9a-fA-F]{64}$/.test(e.sha256)) {
          throw new AuthFileError(`${where}: sha256 must be the 64 hex digits of SHA-256(token)`);
        }
        digest = Buffer.from(e.sha256, "hex");
      } else {
        throw new AuthFileError(`${where}: give exactly one of "token" or "sha256"`);
      }
      const hex = digest.toString("hex");
      if (seen.has(hex)) throw new AuthFileError(`${where}: the same token appears twice`);
      seen.add(hex);
      entries.push({ digest, principal });
    });
    return new TokenTable(entries);
  }

  /** The principal of `token`, or undefined; compares against every entry in constant time. */
  principalOf(token: string): string | undefined {
    const digest = sha256(token);
    let found: string | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(digest, e.digest) && found === undefined) found = e.principal;
    }
    return found;
  }
}
