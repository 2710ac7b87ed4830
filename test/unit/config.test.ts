import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  envName,
  flagName,
  loadConfig,
  parseListen,
  SETTINGS,
} from "../../server/src/config.js";

describe("config > load", () => {
  it("uses embedded defaults with no flags and no environment", () => {
    // Ensures `npm start` needs nothing: 127.0.0.1:50051, ./data, 7-day retention, 1 GiB segments.
    const c = loadConfig();
    expect(c.listen).toBe("127.0.0.1:50051");
    expect(c.dataDir).toBe("./data");
    expect(c.autoCreateTopics).toBe(true);
    expect(c.topicDefaults.retentionMs).toBe(7 * 24 * 3600 * 1000);
    expect(c.topicDefaults.segmentBytes).toBe(1024 ** 3);
    expect(c.topicDefaults.durability).toBe("written");
  });

  it("takes flags over environment over defaults", () => {
    // Ensures the documented precedence and the mechanical flag/env names.
    const env = { RILL_RETENTION_MS: "1000", RILL_LISTEN: "127.0.0.1:7000" };
    const c = loadConfig({ "retention.ms": "2000" }, env);
    expect(c.topicDefaults.retentionMs).toBe(2000);
    expect(c.listen).toBe("127.0.0.1:7000");
    expect(flagName("retention.ms")).toBe("retention-ms");
    expect(envName("max.batch.bytes")).toBe("RILL_MAX_BATCH_BYTES");
  });

  it("refuses bad values with a message naming the setting", () => {
    // Ensures a typo fails at start with what to fix, not later with a crash.
    expect(() => loadConfig({ "segment.bytes": "12x" })).toThrow(/segment.bytes.*integer/);
    expect(() => loadConfig({ "segment.bytes": "10" })).toThrow(ConfigError);
    expect(() => loadConfig({ durability: "maybe" })).toThrow(/written or fsynced/);
    expect(() => loadConfig({ "auto.create.topics": "perhaps" })).toThrow(/true or false/);
    expect(() => loadConfig({ listen: "localhost" })).toThrow(/HOST:PORT/);
    expect(() => loadConfig({ "max.connection.age.ms": "0" })).toThrow(/-1 \(never\) or a positive/);
    expect(() => loadConfig({ "stream.idle.timeout.ms": "0" })).toThrow(
      /stream.idle.timeout.ms.*-1 \(never\) or at least 100/,
    );
    expect(() => loadConfig({ "max.connection.idle.ms": "50" })).toThrow(
      /max.connection.idle.ms.*at least 100/,
    );
    expect(() => loadConfig({ "keepalive.time.ms": "0" })).toThrow(/keepalive.time.ms/);
    expect(() => loadConfig({ "fetch.default.max.bytes": "5000000", "fetch.max.bytes": "4000000" })).toThrow(
      /must not exceed/,
    );
  });

  it("parses IPv4, names and bracketed IPv6 listen addresses", () => {
    // Ensures --listen accepts the forms users type.
    expect(parseListen("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("[::1]:50051")).toEqual({ host: "::1", port: 50051 });
    expect(() => parseListen("127.0.0.1:70000")).toThrow(ConfigError);
  });
});

describe("config > README", () => {
  it("documents every setting with its flag, variable and default", () => {
    // Ensures the README's config table cannot drift from config.ts.
    const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");
    for (const s of SETTINGS) {
      const unset = s.key === "log.pretty" ? "(TTY)" : "(none)";
      const row = `| \`${s.key}\` | \`--${flagName(s.key)}\` | \`${envName(s.key)}\` | ${s.default === undefined ? unset : `\`${s.default}\``} |`;
      expect(readme, s.key).toContain(row);
    }
  });
});
