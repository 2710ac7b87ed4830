/**
 * The safe-default rule: a broker without TLS listens on loopback only. Deciding it is pure (no DNS,
 * no sockets) so it runs before anything binds and is unit-tested on many addresses.
 *
 * Invariants:
 * - only addresses that are certainly loopback count as loopback: 127.0.0.0/8, ::1 (any spelling),
 *   IPv4-mapped 127.x (`::ffff:127.0.0.1`) and the name `localhost`. Any other name, a wildcard
 *   (`0.0.0.0`, `::`) or anything unparsable is treated as reachable from the network;
 * - every plaintext listener on a non-loopback address needs `insecure`: gRPC without TLS, and the
 *   metrics endpoint (always plain HTTP, on the listen host). With `insecure` each one yields a
 *   warning instead of an error.
 */
import { isIP } from "node:net";

/** True when `host` (as in `listen`, IPv6 without brackets) can only be reached from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().replace(/^\[|\]$/g, "");
  if (h.toLowerCase() === "localhost") return true;
  const family = isIP(h);
  if (family === 4) return h.split(".")[0] === "127";
  if (family !== 6) return false;
  let normal: string;
  try {
    // The URL parser gives IPv6 its canonical compressed form: `0:0::1` → `[::1]`,
    // `::ffff:127.0.0.1` → `[::ffff:7f00:1]`.
    normal = new URL(`http://[${h}]/`).hostname;
  } catch {
    return false;
  }
  return normal === "[::1]" || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(normal);
}

export interface ExposureInput {
  /** The listen host (IPv6 without brackets). */
  host: string;
  /** gRPC is served over TLS. */
  tls: boolean;
  /** metrics.port (-1 = off). */
  metricsPort: number;
  insecure: boolean;
}

export type ExposureDecision = { ok: true; warnings: string[] } | { ok: false; error: string };

/** Whether the configured listeners may start, and what to warn about when `insecure` allowed them. */
export function decideExposure(input: ExposureInput): ExposureDecision {
  if (isLoopbackHost(input.host)) return { ok: true, warnings: [] };
  const plaintext: string[] = [];
  if (!input.tls) plaintext.push("gRPC without TLS");
  if (input.metricsPort !== -1) plaintext.push("the plain-HTTP metrics endpoint (metrics.port)");
  if (plaintext.length === 0) return { ok: true, warnings: [] };
  const what = plaintext.join(" and ");
  if (input.insecure) {
    return {
      ok: true,
      warnings: [
        `--insecure: serving ${what} on ${input.host}, reachable from the network; anyone who can connect can read and write every topic unless a proxy or mesh in front secures it`,
      ],
    };
  }
  const fixes = input.tls
    ? "leave --metrics-port at -1, listen on 127.0.0.1, or pass --insecure if only trusted scrapers can reach it"
    : "configure --tls-cert and --tls-key (and --tls-client-ca for mutual TLS), listen on 127.0.0.1, or pass --insecure if a proxy or mesh in front terminates (m)TLS";
  return {
    ok: false,
    error: `refusing to serve ${what} on non-loopback address ${input.host}: ${fixes}`,
  };
}
