import { describe, expect, it } from "vitest";
import { decideExposure, isLoopbackHost } from "../../../server/src/rpc/exposure.js";

describe("rpc > exposure > loopback hosts", () => {
  const loopback = [
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "localhost",
    "LOCALHOST",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "0000:0000:0000:0000:0000:0000:0000:0001",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:127.1.2.3",
    "::ffff:7f00:1",
  ];
  const network = [
    "0.0.0.0",
    "::",
    "[::]",
    "0:0:0:0:0:0:0:0",
    "192.168.1.10",
    "10.0.0.1",
    "128.0.0.1",
    "1.127.0.0",
    "::2",
    "::ffff:10.0.0.1",
    "::ffff:0.0.0.0",
    "fe80::1",
    "2001:db8::1",
    "::127.0.0.1", // IPv4-compatible (deprecated), not loopback
    "localhost.example.com",
    "my-host",
    "localhost.",
    "127.0.0.1.nip.io",
    // Forms a resolver might map to loopback are still not "certainly loopback": refused (safe).
    "0",
    "2130706433",
    "0x7f000001",
    "127.1",
    "::1%lo",
    "::ffff:127.0.0.1%eth0",
    "",
    "not an address",
  ];

  it.each(loopback)("%s is loopback", (host) => {
    // Ensures every spelling of a loopback address keeps the plaintext default working.
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each(network)("%s is reachable from the network", (host) => {
    // Ensures wildcards, LAN addresses and names (never resolved) count as exposed.
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe("rpc > exposure > decision", () => {
  it("allows plaintext on loopback, refuses it elsewhere with the fix, and warns under --insecure", () => {
    // Ensures the safe default: no TLS → loopback only, unless --insecure says otherwise.
    expect(decideExposure({ host: "127.0.0.1", tls: false, metricsPort: 9464, insecure: false })).toEqual({
      ok: true,
      warnings: [],
    });
    const refused = decideExposure({ host: "0.0.0.0", tls: false, metricsPort: -1, insecure: false });
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error).toMatch(/0\.0\.0\.0/);
    expect(refused.error).toMatch(/--tls-cert and --tls-key/);
    expect(refused.error).toMatch(/--insecure/);
    const allowed = decideExposure({ host: "0.0.0.0", tls: false, metricsPort: -1, insecure: true });
    expect(allowed.ok).toBe(true);
    if (!allowed.ok) return;
    expect(allowed.warnings).toHaveLength(1);
    expect(allowed.warnings[0]).toMatch(/--insecure.*gRPC without TLS.*0\.0\.0\.0/);
  });

  it("allows TLS anywhere, but the plain-HTTP metrics port off loopback only with --insecure", () => {
    // Ensures the metrics endpoint (always plaintext) follows the same rule as gRPC.
    expect(decideExposure({ host: "::", tls: true, metricsPort: -1, insecure: false }).ok).toBe(true);
    const metrics = decideExposure({ host: "::", tls: true, metricsPort: 9464, insecure: false });
    expect(metrics.ok).toBe(false);
    if (!metrics.ok) expect(metrics.error).toMatch(/metrics\.port.*--metrics-port at -1/);
    const both = decideExposure({ host: "10.1.2.3", tls: false, metricsPort: 0, insecure: true });
    expect(both.ok && both.warnings[0]).toMatch(/gRPC without TLS and the plain-HTTP metrics endpoint/);
  });
});
