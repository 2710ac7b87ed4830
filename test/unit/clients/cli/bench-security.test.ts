/**
 * How `rill bench` hands its TLS settings and token to its child processes (bench/security.ts):
 * through one environment variable, every field intact, and what the report says of them.
 */
import { describe, expect, it } from "vitest";
import {
  type BenchSecurity,
  describeSecurity,
  SECURITY_ENV,
  securityEnv,
  securityFromEnv,
} from "../../../../clients/cli/src/bench/security.js";

const PEM = (what: string) => Buffer.from(`-----BEGIN ${what}-----\nAAEC/w==\n-----END ${what}-----\n`);

describe("rill bench > security for child processes", () => {
  it("carries every TLS field and the token through the environment unchanged", () => {
    // Ensures a child (phase 5's reader and writer) connects exactly as the bench does, mutual TLS included.
    const security: BenchSecurity = {
      tls: {
        rootCerts: PEM("CERTIFICATE"),
        certChain: PEM("CERTIFICATE"),
        privateKey: Buffer.from([0, 1, 2, 255, 128]),
        serverName: "broker.example",
      },
      token: "t0ken with spaces",
    };
    const back = securityFromEnv(securityEnv(security));
    expect(back.token).toBe(security.token);
    expect(back.tls?.serverName).toBe("broker.example");
    for (const f of ["rootCerts", "certChain", "privateKey"] as const) {
      expect(back.tls?.[f]?.equals(security.tls![f]!), f).toBe(true);
    }
  });

  it("leaves a plaintext run's children without the variable, and reads its absence as plaintext", () => {
    // Ensures a plaintext bench does not hand children a stale variable from its own environment.
    const before = process.env[SECURITY_ENV];
    process.env[SECURITY_ENV] = JSON.stringify({ token: "stale" });
    try {
      expect(SECURITY_ENV in securityEnv({})).toBe(false);
      expect(securityFromEnv(securityEnv({ token: "fresh" })).token).toBe("fresh");
    } finally {
      if (before === undefined) delete process.env[SECURITY_ENV];
      else process.env[SECURITY_ENV] = before;
    }
    expect(securityFromEnv({})).toEqual({});
    expect(securityFromEnv(securityEnv({ token: "x" }))).toEqual({ tls: undefined, token: "x" });
  });

  it("refuses a variable that is not a JSON object with a message naming it", () => {
    for (const bad of ["{nope", "null", "42"]) {
      expect(() => securityFromEnv({ [SECURITY_ENV]: bad }), bad).toThrow(SECURITY_ENV);
    }
  });

  it("describes what was used, never the secrets", () => {
    expect(describeSecurity({})).toBe("plaintext");
    expect(describeSecurity({ token: "secret" })).toBe("bearer token");
    expect(describeSecurity({ tls: {} })).toBe("TLS");
    expect(describeSecurity({ tls: { certChain: PEM("CERTIFICATE") }, token: "secret" })).toBe(
      "mutual TLS, bearer token",
    );
  });
});
