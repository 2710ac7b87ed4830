import { describe, expect, it } from "vitest";
import { AdminServiceService } from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { ClusterServiceService } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import { GroupServiceService } from "../../../clients/ts/src/gen/rill/v1/group.js";
import { LogServiceService } from "../../../clients/ts/src/gen/rill/v1/log.js";
import { ConfigError, loadConfig } from "../../../server/src/config.js";
import { AuthFileError } from "../../../server/src/rpc/auth/errors.js";
import { createAuth } from "../../../server/src/rpc/auth/guard.js";
import { RULES } from "../../../server/src/rpc/auth/rules.js";

describe("unit > auth > guard", () => {
  it("has an authorization rule for every method of the broker's services", () => {
    // Ensures a new RPC cannot ship unguarded: without a row it is refused when ACLs are on.
    const paths = [
      LogServiceService,
      AdminServiceService,
      GroupServiceService,
      ClusterServiceService,
    ].flatMap((svc) => Object.values(svc).map((m) => m.path));
    expect(paths.length).toBeGreaterThan(15);
    for (const p of paths) expect(RULES, p).toHaveProperty([p]);
  });

  it("installs nothing when neither authentication, ACLs nor quotas are configured", () => {
    // Ensures the default broker behaves (and performs) exactly as without auth.
    expect(createAuth(loadConfig())).toBeUndefined();
    const quotaOnly = createAuth(loadConfig({ "quota.fetch.bytes.per.second": "1000" }));
    expect(quotaOnly?.source.required).toBe(false);
    expect(quotaOnly?.quotas?.rateOf("fetch", "ANONYMOUS")).toBe(1000);
    const mtls = loadConfig(
      {},
      {},
      { tlsCert: "c", tlsKey: "k", tlsClientCa: "ca", requireClientCert: true },
    );
    expect(createAuth(mtls)?.source.required).toBe(true);
    // Certificates are suggested to unauthenticated callers only when tls.client.ca is set.
    expect(createAuth(mtls)?.source.certificates).toBe(true);
    expect(quotaOnly?.source.certificates).toBe(false);
  });

  it("fails the start on a missing auth file and refuses a zero quota", () => {
    // Ensures misconfiguration is reported at start with the setting's name.
    expect(() => createAuth(loadConfig({ "auth.tokens.file": "/nonexistent/tokens.json" }))).toThrow(
      AuthFileError,
    );
    expect(() => createAuth(loadConfig({ "auth.acl.file": "/nonexistent/acl.json" }))).toThrow(
      /auth.acl.file/,
    );
    expect(() => loadConfig({ "quota.produce.bytes.per.second": "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ "quota.fetch.bytes.per.second": "0" })).toThrow(
      /-1 \(unlimited\) or a positive/,
    );
    expect(loadConfig({}, { RILL_AUTH_PUBLIC_HEALTH: "false" }).authPublicHealth).toBe(false);
  });
});
