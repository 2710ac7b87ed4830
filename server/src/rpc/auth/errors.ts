/**
 * The errors of authentication and authorization. status.ts maps them: UnauthenticatedError →
 * UNAUTHENTICATED, PermissionDeniedError → PERMISSION_DENIED. Their messages go to the client as
 * they are, so they say what to do and never which part of a credential was wrong. An auth file
 * that cannot be read or parsed is an AuthFileError at startup (`readAuthFile` reads one).
 */
import { readFileSync } from "node:fs";

/** The call carries no usable credentials (none, a malformed header, or an unknown token). */
export class UnauthenticatedError extends Error {
  override name = "UnauthenticatedError";
}

/** The caller is known but no ACL grants the operation. */
export class PermissionDeniedError extends Error {
  override name = "PermissionDeniedError";
}

/** The call ended (cancelled) while it waited out its principal's quota debt; nothing was done. */
export class QuotaWaitEndedError extends Error {
  override name = "QuotaWaitEndedError";
}

/** An auth file (tokens or ACLs) is missing or invalid; thrown at startup. */
export class AuthFileError extends Error {
  override name = "AuthFileError";
}

/** The text of the file `path` given as `setting`; AuthFileError naming both if it cannot be read. */
export function readAuthFile(setting: "auth.tokens.file" | "auth.acl.file", path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new AuthFileError(
      `cannot read ${setting} ${path}: ${(err as Error).message}; give a readable JSON file`,
    );
  }
}
