/**
 * The deployment files: every Kubernetes object in deploy/kubernetes/ validated against the
 * official OpenAPI schemas (kubernetes-models), the facts that tie the objects together and to the
 * broker, and the Dockerfile's runtime settings. No cluster and no Docker daemon are needed.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Service } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig, parseListen } from "../../server/src/config.js";
import { decideExposure } from "../../server/src/rpc/exposure.js";
import { HEALTH_SERVICES } from "../../server/src/rpc/health.js";

const ROOT = join(import.meta.dirname, "..", "..");
const DIR = join(ROOT, "deploy", "kubernetes");

const MODELS = {
  "v1/Service": Service,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
} as const;

interface Loaded {
  file: string;
  object: { apiVersion: string; kind: string; metadata: { name: string } } & Record<string, unknown>;
}

function loadManifests(): Loaded[] {
  const out: Loaded[] = [];
  for (const file of readdirSync(DIR).sort()) {
    expect(file, "only YAML in deploy/kubernetes (kubectl apply -f takes the whole folder)").toMatch(
      /\.yaml$/,
    );
    for (const doc of parseAllDocuments(readFileSync(join(DIR, file), "utf8"))) {
      expect(doc.errors, file).toEqual([]);
      const object = doc.toJS();
      if (object !== null) out.push({ file, object });
    }
  }
  return out;
}

const manifests = loadManifests();
function only<K extends keyof typeof MODELS>(key: K): InstanceType<(typeof MODELS)[K]> {
  const found = manifests.filter((m) => `${m.object.apiVersion}/${m.object.kind}` === key);
  expect(
    found.map((m) => m.file),
    key,
  ).toHaveLength(1);
  return new MODELS[key](found[0]!.object as never) as InstanceType<(typeof MODELS)[K]>;
}

describe("deploy > kubernetes manifests", () => {
  it("are valid Kubernetes objects of known kinds", () => {
    // Ensures `kubectl apply -f deploy/kubernetes/` would not be refused for a schema error.
    expect(manifests.length).toBeGreaterThanOrEqual(3);
    for (const { file, object } of manifests) {
      const key = `${object.apiVersion}/${object.kind}`;
      const Model = MODELS[key as keyof typeof MODELS];
      expect(Model, `${file}: ${key}`).toBeDefined();
      expect(() => new Model(object as never).validate(), `${file}: ${key}`).not.toThrow();
    }
  });

  it("wire the StatefulSet, the headless Service and the PodDisruptionBudget to the same pods", () => {
    // Ensures the objects agree with each other: DNS, endpoints and the disruption budget all
    // select the broker pods.
    const sts = only("apps/v1/StatefulSet");
    const svc = only("v1/Service");
    const pdb = only("policy/v1/PodDisruptionBudget");
    const podLabels = sts.spec!.template.metadata!.labels!;
    const matches = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => podLabels[k] === v);

    expect(sts.spec!.serviceName).toBe(svc.metadata!.name);
    expect(svc.spec!.clusterIP).toBe("None");
    expect(Object.keys(svc.spec!.selector!).length).toBeGreaterThan(0);
    expect(matches(svc.spec!.selector!)).toBe(true);
    expect(matches(sts.spec!.selector.matchLabels!)).toBe(true);
    expect(pdb.spec!.selector!.matchExpressions ?? []).toEqual([]);
    expect(matches(pdb.spec!.selector!.matchLabels!)).toBe(true);
    expect(sts.spec!.replicas).toBe(1); // single-node mode: replicas would be separate brokers

    const [port] = svc.spec!.ports!;
    expect(port).toMatchObject({ name: "grpc", port: 50051, appProtocol: "grpc", targetPort: "grpc" });
    const container = sts.spec!.template.spec!.containers[0]!;
    expect(container.ports).toContainEqual(expect.objectContaining({ name: "grpc", containerPort: 50051 }));
  });

  it("probe the broker's gRPC health services and outlast its shutdown", () => {
    // Ensures readiness follows LogService (NOT_SERVING while recovering and draining), liveness
    // the whole broker, that a long recovery is not killed by liveness, and that Kubernetes never
    // SIGKILLs a draining broker.
    const sts = only("apps/v1/StatefulSet");
    const pod = sts.spec!.template.spec!;
    const container = pod.containers[0]!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    const config = loadConfig({}, env);
    expect(config.listen).toBe("0.0.0.0:50051");
    expect(config.dataDir).toBe("/data");
    // Plaintext on the pod address is allowed only explicitly (the safe default refuses it).
    expect(config.insecure).toBe(true);
    const { host } = parseListen(config.listen);
    const { metricsPort: metrics, insecure } = config;
    const tls = config.tlsCert !== undefined;
    expect(decideExposure({ host, tls, metricsPort: metrics, insecure }).ok).toBe(true);
    // Metrics are served where the container port named "metrics" and the annotations say.
    const metricsPort = container.ports?.find((p) => p.name === "metrics")?.containerPort;
    expect(config.metricsPort).toBe(metricsPort);
    expect(sts.spec!.template.metadata?.annotations?.["prometheus.io/port"]).toBe(String(metricsPort));

    expect(container.readinessProbe?.grpc).toEqual({ port: 50051, service: "rill.v1.LogService" });
    expect(container.livenessProbe?.grpc).toEqual({ port: 50051, service: "" });
    expect(container.startupProbe?.grpc).toEqual({ port: 50051, service: "" });
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
      expect(HEALTH_SERVICES).toContain(probe!.grpc!.service);
    }
    const startup = container.startupProbe!;
    expect((startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3)).toBeGreaterThanOrEqual(600);

    // runBroker exits at the latest 10 s after shutdown.timeout.ms; keep 5 s more of margin.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
      config.shutdownTimeoutMs / 1000 + 10 + 5,
    );

    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(container.resources?.requests).toMatchObject({
      cpu: expect.any(String),
      memory: expect.any(String),
    });
    expect(container.resources?.limits).toMatchObject({ memory: expect.any(String) });

    const claim = sts.spec!.volumeClaimTemplates![0]!;
    expect(container.volumeMounts).toContainEqual({ name: claim.metadata!.name, mountPath: "/data" });
    expect(claim.spec!.resources!.requests!.storage).toBeDefined();
  });
});

describe("deploy > Dockerfile", () => {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  // The last stage is the image that runs.
  const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  const instructions = runtime
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const instruction = (name: string) => instructions.filter((l) => l.startsWith(`${name} `));

  it("runs the broker as a non-root user on a volume, listening beyond loopback", () => {
    // Ensures the image matches the manifests: uid 1000, /data, 0.0.0.0:50051, SIGTERM drains.
    expect(dockerfile.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2); // multi-stage
    expect(instruction("USER")).toEqual(["USER 1000:1000"]);
    expect(instruction("VOLUME")).toEqual(["VOLUME /data"]);
    expect(instruction("EXPOSE")).toEqual(["EXPOSE 50051"]);
    expect(instruction("STOPSIGNAL")).toEqual(["STOPSIGNAL SIGTERM"]);
    expect(instruction("ENTRYPOINT")).toEqual(['ENTRYPOINT ["node", "bin/rill.js", "broker"]']);
    const env = instruction("ENV").join(" ");
    expect(env).toMatch(/RILL_LISTEN=0\.0\.0\.0:50051\b/);
    expect(env).toMatch(/RILL_INSECURE=true\b/); // or the broker refuses 0.0.0.0 without TLS
    expect(env).toMatch(/RILL_DATA_DIR=\/data\b/);
    expect(runtime).toMatch(/npm ci --omit=dev/);
  });
});
