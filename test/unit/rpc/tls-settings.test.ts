/**
 * buildServerCredentials (rpc/tls.ts) on configs that did not go through loadConfig (an embedder
 * calling startBrokerWithConfig): half a TLS setup is refused before any file is read or anything
 * binds, never served as plaintext (which would also pass the loopback-only rule as "TLS").
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../server/src/config.js";
import { buildServerCredentials } from "../../../server/src/rpc/tls.js";

const warnings: unknown[] = [];
const logger = { warn: (...a: unknown[]) => warnings.push(a), info: () => {} } as unknown as Parameters<
  typeof buildServerCredentials
>[1];

const base = { listen: "0.0.0.0:0", insecure: false, metricsPort: -1, requireClientCert: false };

describe("unit > rpc > tls settings", () => {
  it("refuses a certificate without its key (or a client CA without TLS) instead of serving plaintext", async () => {
    // Ensures no silent fallback: each case would otherwise return plaintext credentials.
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ tlsCert: "/nonexistent/server.crt" }, /tls\.cert is set but tls\.key is not/],
      [{ tlsKey: "/nonexistent/server.key" }, /tls\.key is set but tls\.cert is not/],
      [{ tlsClientCa: "/nonexistent/ca.crt" }, /tls\.client\.ca needs TLS/],
    ];
    for (const [tls, message] of cases) {
      const built = buildServerCredentials({ ...base, ...tls }, logger);
      await expect(built, JSON.stringify(tls)).rejects.toThrow(ConfigError);
      await expect(buildServerCredentials({ ...base, ...tls }, logger)).rejects.toThrow(message);
    }
    expect(warnings).toEqual([]);
  });

  it("still serves plaintext on loopback when no TLS setting is given", async () => {
    // Ensures the check above does not refuse the default configuration.
    const built = await buildServerCredentials({ ...base, listen: "127.0.0.1:0" }, logger);
    expect(built.mode).toBe("plaintext");
  });
});
