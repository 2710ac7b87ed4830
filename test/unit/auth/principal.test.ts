import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { UnauthenticatedError } from "../../../server/src/rpc/auth/errors.js";
import { ANONYMOUS, resolvePrincipal } from "../../../server/src/rpc/auth/principal.js";
import { TokenTable } from "../../../server/src/rpc/auth/tokens.js";

const TOKEN = "alice-token-0123456789";
const tokens = TokenTable.parse(JSON.stringify({ tokens: [{ token: TOKEN, principal: "alice" }] }), "t");

function call(authorization?: string | string[], cn?: string | null) {
  const metadata = new Metadata();
  for (const v of [authorization ?? []].flat()) metadata.add("authorization", v);
  const subject: Record<string, string> | undefined =
    cn === undefined ? undefined : cn === null ? { O: "acme" } : { CN: cn, O: "acme" };
  return { metadata, getAuthContext: () => (subject ? { sslPeerCertificate: { subject } } : {}) };
}

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UnauthenticatedError);
    return (err as Error).message;
  }
  throw new Error("expected UnauthenticatedError");
}

describe("unit > auth > principal", () => {
  const on = { tokens, required: true, certificates: true };

  it("takes the bearer token's principal, case-insensitive scheme, token over certificate", () => {
    // Ensures the documented resolution order.
    expect(resolvePrincipal(call(`Bearer ${TOKEN}`), on)).toBe("alice");
    expect(resolvePrincipal(call(`bearer ${TOKEN}`), on)).toBe("alice");
    expect(resolvePrincipal(call(`Bearer ${TOKEN}`, "mallory"), on)).toBe("alice");
  });

  it("takes CN=<common name> of a verified client certificate", () => {
    // Ensures the certificate principal form ACLs must name.
    expect(resolvePrincipal(call(undefined, "bob"), on)).toBe("CN=bob");
    expect(
      resolvePrincipal(call(undefined, "bob"), { tokens: undefined, required: true, certificates: true }),
    ).toBe("CN=bob");
    expect(failure(() => resolvePrincipal(call(undefined, null), on))).toMatch(/no subject common name/);
  });

  it("refuses bad tokens with one message that does not say what was wrong", () => {
    // Ensures a prober learns nothing from the difference between bad forms.
    const messages = new Set(
      [
        `Bearer ${TOKEN}x`,
        `Basic ${TOKEN}`,
        TOKEN,
        "Bearer",
        `Bearer ${TOKEN} extra`,
        [`Bearer ${TOKEN}`, "Bearer x"],
      ].map((h) => failure(() => resolvePrincipal(call(h), on))),
    );
    expect(messages.size).toBe(1);
    expect([...messages][0]).not.toContain(TOKEN);
  });

  it("says how to authenticate when there are no credentials, and is ANONYMOUS when auth is off", () => {
    // Ensures the message tells the user what to do, and quotas-only brokers need no credentials.
    expect(failure(() => resolvePrincipal(call(), on))).toMatch(
      /Bearer <token>.*--token-file.*client certificate/,
    );
    expect(resolvePrincipal(call(), { tokens: undefined, required: false, certificates: false })).toBe(
      ANONYMOUS,
    );
  });

  it("suggests only the ways this broker accepts: no certificate without tls.client.ca, no token without a tokens file", () => {
    // A tokens-only broker (often plaintext on loopback) must not send users looking for a client certificate.
    const tokensOnly = failure(() =>
      resolvePrincipal(call(), { tokens, required: true, certificates: false }),
    );
    expect(tokensOnly).toMatch(/Bearer <token>.*--token-file/);
    expect(tokensOnly).not.toMatch(/certificate|tls\.client\.ca/);
    const certsOnly = failure(() =>
      resolvePrincipal(call(), { tokens: undefined, required: true, certificates: true }),
    );
    expect(certsOnly).toMatch(/client certificate signed by the broker's tls\.client\.ca/);
    expect(certsOnly).not.toMatch(/Bearer|token/);
  });
});
