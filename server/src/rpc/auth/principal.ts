/**
 * Who is calling: resolves a call's principal once, from its metadata and its TLS session.
 *
 * Order:
 * 1. `authorization: Bearer <token>` metadata, when a tokens file is configured → that token's
 *    principal (tokens.ts). A header that is not `Bearer <token>`, or an unknown token →
 *    UNAUTHENTICATED with the same message either way (nothing tells which part was wrong).
 * 2. Else a client certificate the TLS handshake verified against `tls.client.ca` (grpc-js only
 *    exposes verified certificates, `call.getAuthContext()`) → `CN=<subject common name>`; other
 *    subject fields are ignored. A verified certificate without a CN → UNAUTHENTICATED.
 * 3. Else, when authentication is on (a tokens file, or require.client.cert) → UNAUTHENTICATED
 *    saying how to authenticate; when it is off → ANONYMOUS.
 * A token wins over a certificate, so a shared service certificate can carry per-user tokens.
 */
import type { Metadata } from "@grpc/grpc-js";
import { UnauthenticatedError } from "./errors.js";
import type { TokenTable } from "./tokens.js";

/** The principal of every call when authentication is off (ACLs may name it). */
export const ANONYMOUS = "ANONYMOUS";

export interface CallWithCredentials {
  metadata: Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: Record<string, string | string[]> } };
}

export interface PrincipalSource {
  tokens: TokenTable | undefined;
  /** Authentication is on: a call must carry a token or a verified client certificate. */
  required: boolean;
  /** tls.client.ca is set, so a client certificate can identify a caller (else not suggested). */
  certificates: boolean;
}

const HOW_TOKEN =
  "send the metadata `authorization: Bearer <token>` (rill CLI: --token-file or RILL_TOKEN; TS client: the token option)";
const HOW_CERT = "connect with a client certificate signed by the broker's tls.client.ca";

/** What a caller without credentials can do: only the ways this broker accepts. */
function how(source: PrincipalSource): string {
  const ways = [source.tokens ? HOW_TOKEN : undefined, source.certificates ? HOW_CERT : undefined];
  return ways.filter((w) => w !== undefined).join(", or ");
}

export function resolvePrincipal(call: CallWithCredentials, source: PrincipalSource): string {
  if (source.tokens) {
    const values = call.metadata.get("authorization");
    if (values.length > 0) {
      const value = values.length === 1 && typeof values[0] === "string" ? values[0] : "";
      const m = /^Bearer[ ]+(\S+)$/i.exec(value);
      const principal = m ? source.tokens.principalOf(m[1]!) : undefined;
      if (principal === undefined) {
        throw new UnauthenticatedError(
          "the authorization metadata is not a valid bearer token for this broker; check the token you were given",
        );
      }
      return principal;
    }
  }
  const cert = certificatePrincipal(call);
  if (cert !== undefined) return cert;
  if (source.required) throw new UnauthenticatedError(`this broker requires authentication: ${how(source)}`);
  return ANONYMOUS;
}

function certificatePrincipal(call: CallWithCredentials): string | undefined {
  let subject: Record<string, string | string[]> | undefined;
  try {
    subject = call.getAuthContext?.().sslPeerCertificate?.subject;
  } catch {
    return undefined;
  }
  if (subject === undefined) return undefined;
  const cn = subject.CN;
  const name = Array.isArray(cn) ? cn[cn.length - 1] : cn;
  if (typeof name !== "string" || name.length === 0) {
    throw new UnauthenticatedError(
      "the client certificate has no subject common name (CN); use a certificate whose CN names you",
    );
  }
  return `CN=${name}`;
}
