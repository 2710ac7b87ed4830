/**
 * Authentication and authorization against a real broker (port 0, 127.0.0.1): bearer tokens from a
 * tokens file (clear and sha256 forms), ACLs on topic and group patterns for every operation
 * class, Kafka-style list filtering, health and reflection per setting, and the client-certificate
 * principal over mutual TLS. Every refusal is checked to change nothing (topics, offsets, groups).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProduceSessionResponse } from "../../clients/ts/src/gen/rill/v1/log.js";
import { createClient, RillError } from "../../clients/ts/src/index.js";
import { sha256 } from "../../server/src/rpc/auth/tokens.js";
import { makeTestPki, type TestPki } from "../helpers/certs.js";
import {
  type AuthFiles,
  type AuthStubs,
  authStubs,
  healthCheck,
  reflectionList,
  writeAuthFiles,
} from "./helpers/auth.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { buildIfMissing, cli } from "./helpers/cli.js";
import { flat, groupApi, RawMember } from "./helpers/group.js";
import { api, fetchAll, produce, produceRequest, record, values } from "./helpers/grpc.js";

const T = {
  admin: "admin-token-000000000000",
  alice: "alice-token-111111111111",
  bob: "bob-token-22222222222222",
  carol: "carol-token-333333333333",
};

const ACLS = [
  { principal: "admin", resource: "topic", pattern: "*", operations: ["all"] },
  { principal: "admin", resource: "group", pattern: "*", operations: ["all"] },
  { principal: "alice", resource: "topic", pattern: "orders.*", operations: ["read", "write"] },
  { principal: "alice", resource: "topic", pattern: "alice-own", operations: ["all"] },
  { principal: "alice", resource: "group", pattern: "alice-*", operations: ["join", "commit"] },
  { principal: "bob", resource: "topic", pattern: "orders.*", operations: ["read"] },
  { principal: "bob", resource: "group", pattern: "bob-g", operations: ["describe"] },
  { principal: "*", resource: "topic", pattern: "public", operations: ["read"] },
];

let files: AuthFiles;
let tb: TestBroker;
const as: Record<keyof typeof T, AuthStubs> = {} as never;
const open: AuthStubs[] = [];

function stubsFor(auth: { token?: string; header?: string }): AuthStubs {
  const s = authStubs(tb.address, auth);
  open.push(s);
  return s;
}

async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
  return { code: status.OK, details: "" };
}

async function latest(topic: string, partition = 0): Promise<bigint> {
  const r = await api(as.admin).listOffsets({ topic, partitions: [partition], timestampMs: undefined });
  return r.partitions[0]!.latest;
}

async function topicNames(s: AuthStubs): Promise<string[]> {
  return (await api(s).listTopics()).topics.map((t) => t.topic).sort();
}

beforeAll(async () => {
  files = await writeAuthFiles(
    [
      { token: T.admin, principal: "admin" },
      { token: T.alice, principal: "alice" },
      { sha256: sha256(T.bob).toString("hex"), principal: "bob" },
      { token: T.carol, principal: "carol" },
    ],
    ACLS,
  );
  await writeFile(
    join(files.dir, "acl-mtls.json"),
    JSON.stringify({
      acls: [{ principal: "CN=alice", resource: "topic", pattern: "cert-*", operations: ["all"] }],
    }),
  );
  tb = await startTestBroker({ authTokensFile: files.tokensFile, authAclFile: files.aclFile });
  for (const k of Object.keys(T) as (keyof typeof T)[]) as[k] = stubsFor({ token: T[k] });
  for (const topic of ["orders.a", "public", "secret"]) {
    await api(as.admin).createTopic({ topic, partitions: 1, config: undefined });
    const out = await produce(as.admin.log, [produceRequest(topic, 0, [record(`${topic}-0`)])]);
    expect(out.error).toBeUndefined();
  }
});

afterAll(async () => {
  for (const s of open) s.close();
  await tb?.stop();
  await files?.cleanup();
});

describe("integration > auth > authentication", () => {
  it("refuses calls without credentials with UNAUTHENTICATED saying how to authenticate", async () => {
    // Ensures no anonymous access once a tokens file is set, for unary and streaming calls alike.
    const anon = stubsFor({});
    const list = await code(api(anon).listTopics());
    expect(list.code).toBe(status.UNAUTHENTICATED);
    expect(list.details).toMatch(/Bearer <token>.*--token-file/);
    const out = await produce(anon.log, [produceRequest("orders.a", 0, [record("x")])]);
    expect(out.error?.code).toBe(status.UNAUTHENTICATED);
    const fetched = await fetchAll(anon.log, { topic: "orders.a" });
    expect(fetched.error?.code).toBe(status.UNAUTHENTICATED);
    expect(fetched.responses).toEqual([]);
    expect(await latest("orders.a")).toBe(1n);
  });

  it("refuses a wrong or malformed token with one message that does not reveal which part is wrong", async () => {
    // Ensures a prober cannot tell "unknown token" from "bad scheme"; nothing is created.
    const details = new Set<string>();
    for (const header of [`Bearer ${T.alice}x`, `Basic ${T.alice}`, T.alice, "Bearer"]) {
      const r = await code(
        api(stubsFor({ header })).createTopic({ topic: "alice-own", partitions: 1, config: undefined }),
      );
      expect(r.code, header).toBe(status.UNAUTHENTICATED);
      details.add(r.details);
    }
    expect(details.size).toBe(1);
    expect(await topicNames(as.admin)).not.toContain("alice-own");
  });

  it("maps clear and sha256 tokens to their principals (the principal shows in refusals)", async () => {
    // Ensures tokens → principal: bob's token exists only as a digest in the file.
    const bob = await code(
      produce(as.bob.log, [produceRequest("orders.a", 0, [record("b")])]).then((o) => {
        if (o.error) throw o.error;
      }),
    );
    expect(bob.code).toBe(status.PERMISSION_DENIED);
    expect(bob.details).toContain('principal "bob" may not write topic "orders.a"');
    const read = await fetchAll(as.bob.log, { topic: "orders.a" });
    expect(read.error).toBeUndefined();
    expect(values(read.responses)).toEqual(["orders.a-0"]);
  });
});

describe("integration > auth > topic ACLs", () => {
  it("grants write on a prefix pattern and denies it elsewhere, writing nothing when denied", async () => {
    // Ensures Produce is checked per batch before anything is appended.
    const ok = await produce(as.alice.log, [produceRequest("orders.a", 0, [record("a1")])]);
    expect(ok.error).toBeUndefined();
    const before = await latest("secret");
    const denied = await produce(as.alice.log, [produceRequest("secret", 0, [record("s")])]);
    expect(denied.error?.code).toBe(status.PERMISSION_DENIED);
    expect(denied.trailers?.get("rill-appended-batches")).toEqual(["0"]);
    expect(await latest("secret")).toBe(before);
  });

  it("needs create to auto-create a topic by producing, and creates nothing when denied", async () => {
    // Ensures auto-creation is not a way around the create permission.
    const denied = await produce(as.alice.log, [produceRequest("orders.new", 0, [record("n")])]);
    expect(denied.error?.code).toBe(status.PERMISSION_DENIED);
    expect(denied.error?.details).toContain("may not create topic");
    expect(await topicNames(as.admin)).not.toContain("orders.new");
    const own = await produce(as.alice.log, [produceRequest("alice-own", 0, [record("o")])]);
    expect(own.error).toBeUndefined();
    expect(await topicNames(as.admin)).toContain("alice-own");
  });

  it("checks read for Fetch, with a wildcard-principal grant for everyone", async () => {
    // Ensures read ACLs, including principal "*", and that a denied fetch sends no data.
    const carolOrders = await fetchAll(as.carol.log, { topic: "orders.a" });
    expect(carolOrders.error?.code).toBe(status.PERMISSION_DENIED);
    expect(carolOrders.responses).toEqual([]);
    const carolPublic = await fetchAll(as.carol.log, { topic: "public" });
    expect(carolPublic.error).toBeUndefined();
    expect(values(carolPublic.responses)).toEqual(["public-0"]);
  });

  it("checks create, delete, alter and describe on AdminService and changes nothing when denied", async () => {
    // Ensures every admin operation class is gated, and a refusal leaves the topic as it was.
    const a = api(as.alice);
    expect((await code(a.createTopic({ topic: "orders.b", partitions: 1, config: undefined }))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect((await code(a.deleteTopic({ topic: "orders.a" }))).code).toBe(status.PERMISSION_DENIED);
    expect((await code(a.describeTopic({ topic: "orders.a" }))).code).toBe(status.OK); // read ⇒ describe
    const add = await code(
      new Promise((resolve, reject) =>
        as.alice.admin.addPartitions({ topic: "orders.a", partitions: 3 }, (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      ),
    );
    expect(add.code).toBe(status.PERMISSION_DENIED);
    expect((await code(api(as.carol).describeTopic({ topic: "orders.a" }))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect(
      (await code(api(as.carol).listOffsets({ topic: "orders.a", partitions: [], timestampMs: undefined })))
        .code,
    ).toBe(status.PERMISSION_DENIED);
    const d = await api(as.admin).describeTopic({ topic: "orders.a" });
    expect(d.topic?.partitions.length).toBe(1);
    expect(await topicNames(as.admin)).toEqual(expect.arrayContaining(["orders.a"]));
    expect(await topicNames(as.admin)).not.toContain("orders.b");
    // A literal pattern is not a prefix: "alice-own" grants nothing on "alice-own.x".
    expect((await code(a.createTopic({ topic: "alice-own.x", partitions: 1, config: undefined }))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect(await topicNames(as.admin)).not.toContain("alice-own.x");
  });

  it("filters ListTopics and GetMetadata to what the caller may describe", async () => {
    // Ensures Kafka-style filtering: unseen topics are left out, naming one is refused.
    expect(await topicNames(as.carol)).toEqual(["public"]);
    expect(await topicNames(as.bob)).toEqual(["orders.a", "public"]);
    const all = await topicNames(as.admin);
    expect(all).toEqual(expect.arrayContaining(["orders.a", "public", "secret"]));
    const meta = await api(as.carol).getMetadata({ topics: [] });
    expect(meta.topics.map((t) => t.topic)).toEqual(["public"]);
    expect((await code(api(as.carol).getMetadata({ topics: ["secret"] }))).code).toBe(
      status.PERMISSION_DENIED,
    );
  });
});

describe("integration > auth > group ACLs", () => {
  it("checks join (and read of its topics), commit, describe and delete on group patterns", async () => {
    // Ensures each group operation class is gated and a refused commit changes no offset.
    const ok = new RawMember(as.alice.group, "alice-g", { topics: ["orders.a"] });
    try {
      await ok.until((m) => m.assigned.length === 1);
      const g = groupApi(as.alice.group);
      await g.commit({
        groupId: "alice-g",
        memberId: ok.memberId,
        generationId: ok.generation,
        offsets: [{ topic: "orders.a", partition: 0, offset: 1n, metadata: "" }],
      });
      // alice may not describe-by-delete: delete is not granted.
      expect((await code(g.deleteGroup("alice-g"))).code).toBe(status.PERMISSION_DENIED);
      // bob may not join, commit or describe alice's group.
      const bobG = groupApi(as.bob.group);
      expect((await code(bobG.describe("alice-g"))).code).toBe(status.PERMISSION_DENIED);
      expect(
        (
          await code(
            bobG.commit({
              groupId: "alice-g",
              memberId: ok.memberId,
              generationId: ok.generation,
              offsets: [{ topic: "orders.a", partition: 0, offset: 0n, metadata: "" }],
            }),
          )
        ).code,
      ).toBe(status.PERMISSION_DENIED);
      expect((await code(bobG.heartbeat("alice-g", ok.memberId))).code).toBe(status.PERMISSION_DENIED);
      const committed = await groupApi(as.admin.group).committed("alice-g");
      expect(committed.offsets.map((o) => o.offset)).toEqual([1n]);
      // Groups bob may describe are the only ones he sees listed.
      const adminList = (await groupApi(as.admin.group).list()).groups.map((x) => x.groupId);
      expect(adminList).toContain("alice-g");
      expect((await bobG.list()).groups.map((x) => x.groupId)).not.toContain("alice-g");
    } finally {
      ok.kill();
    }
    const denied = [
      new RawMember(as.alice.group, "other-g", { topics: ["orders.a"] }), // group not granted
      new RawMember(as.alice.group, "alice-h", { topics: ["secret"] }), // topic not readable
    ];
    try {
      for (const m of denied) {
        await m.until((x) => x.ended, 10_000, "the refused JoinGroup to end");
        expect(m.error?.code).toBe(status.PERMISSION_DENIED);
        expect(m.messages).toEqual([]);
      }
    } finally {
      for (const m of denied) m.kill();
    }
    expect((await groupApi(as.admin.group).list()).groups.map((x) => x.groupId)).not.toContain("other-g");
    await groupApi(as.admin.group).deleteGroup("alice-g");
  });
});

describe("integration > auth > health and reflection", () => {
  it("serves health without credentials and reflection only with them, by default", async () => {
    // Ensures the defaults: probes work, the schema is not public once auth is on.
    expect(await healthCheck(tb.address)).toBe("ok");
    expect(((await reflectionList(tb.address)) as ServiceError).code).toBe(status.UNAUTHENTICATED);
    expect(await reflectionList(tb.address, T.carol)).toBe("ok");
  });

  it("follows auth.public.health=false and auth.public.reflection=true", async () => {
    // Ensures both settings do what they say, in the other direction.
    const other = await startTestBroker({
      authTokensFile: files.tokensFile,
      authPublicHealth: false,
      authPublicReflection: true,
    });
    try {
      expect(((await healthCheck(other.address)) as ServiceError).code).toBe(status.UNAUTHENTICATED);
      expect(await healthCheck(other.address, T.carol)).toBe("ok");
      expect(await reflectionList(other.address)).toBe("ok");
    } finally {
      await other.stop();
    }
  });
});

describe("integration > auth > produce sessions, resets and clients", () => {
  it("answers a denied ProduceSession batch with PERMISSION_DENIED and goes on with the next", async () => {
    // Ensures the per-batch error form of ProduceSession, and that the denied batch is not written.
    const before = await latest("secret");
    const ordersBefore = await latest("orders.a");
    const call = as.alice.log.produceSession();
    const answers: ProduceSessionResponse[] = [];
    const done = new Promise<ServiceError | undefined>((resolve) => {
      call.on("data", (r: ProduceSessionResponse) => answers.push(r));
      call.on("error", (e: ServiceError) => resolve(e));
      call.on("end", () => resolve(undefined));
    });
    call.write({ sequence: 1n, produce: produceRequest("secret", 0, [record("no")]) });
    call.write({ sequence: 2n, produce: produceRequest("orders.a", 0, [record("yes")]) });
    call.end();
    expect(await done).toBeUndefined();
    expect(answers.map((a) => [a.sequence, a.outcome?.$case])).toEqual([
      [1n, "error"],
      [2n, "result"],
    ]);
    const first = answers[0]!.outcome;
    expect(first?.$case === "error" && first.value.code).toBe(status.PERMISSION_DENIED);
    expect(await latest("secret")).toBe(before);
    expect(await latest("orders.a")).toBe(ordersBefore + 1n);
  });

  it("lists committed offsets only for topics the caller may describe", async () => {
    // Ensures FetchCommittedOffsets filtering: bob may describe group bob-g but not topic "secret".
    await groupApi(as.admin.group).reset({
      groupId: "bob-g",
      topics: ["orders.a", "secret"],
      to: { $case: "offset", value: 0n },
    });
    const adminView = await groupApi(as.admin.group).committed("bob-g");
    expect(adminView.offsets.map((o) => o.topic).sort()).toEqual(["orders.a", "secret"]);
    const bobView = await groupApi(as.bob.group).committed("bob-g");
    expect(bobView.offsets.map((o) => o.topic)).toEqual(["orders.a"]);
    expect((await groupApi(as.bob.group).list()).groups.map((g) => g.groupId)).toContain("bob-g");
    // DescribeGroup and ListGroups show the same group: they must not give away what
    // FetchCommittedOffsets withholds (the committed offset, watermarks and name of "secret").
    const adminDescribe = await groupApi(as.admin.group).describe("bob-g");
    expect(adminDescribe.partitions.map((p) => p.topic).sort()).toEqual(["orders.a", "secret"]);
    const bobDescribe = await groupApi(as.bob.group).describe("bob-g");
    expect(bobDescribe.partitions.map((p) => p.topic)).toEqual(["orders.a"]);
    expect(bobDescribe.partitions[0]!.committedOffset).toBe(0n);
    const adminSummary = (await groupApi(as.admin.group).list()).groups.find((g) => g.groupId === "bob-g");
    expect(adminSummary?.topics).toEqual(["orders.a", "secret"]);
    const bobSummary = (await groupApi(as.bob.group).list()).groups.find((g) => g.groupId === "bob-g");
    expect(bobSummary?.topics).toEqual(["orders.a"]);
    // A member reading both topics: bob sees it, but not its topic or partition of "secret".
    const member = new RawMember(as.admin.group, "bob-g", { topics: ["orders.a", "secret"] });
    try {
      await member.until((m) => m.assigned.length === 2, 10_000, "the member to own both partitions");
      const adminMembers = (await groupApi(as.admin.group).describe("bob-g")).members;
      expect(adminMembers.map((m) => [m.topics, flat(m.assigned)])).toEqual([
        [
          ["orders.a", "secret"],
          ["orders.a/0", "secret/0"],
        ],
      ]);
      const bobMembers = (await groupApi(as.bob.group).describe("bob-g")).members;
      expect(bobMembers.map((m) => [m.topics, flat(m.assigned)])).toEqual([[["orders.a"], ["orders.a/0"]]]);
    } finally {
      member.kill();
    }
  });

  it("refuses ResetOffsets without commit on the group", async () => {
    // Ensures a describe-only principal cannot move a group's offsets.
    const r = await code(
      groupApi(as.bob.group).reset({
        groupId: "bob-g",
        topics: ["orders.a"],
        to: { $case: "offset", value: 0n },
      }),
    );
    expect(r.code).toBe(status.PERMISSION_DENIED);
    expect(r.details).toContain('may not commit group "bob-g"');
  });

  it("lets the TS client authenticate with its token option", async () => {
    // Ensures the client library's token reaches the broker as the principal.
    const make = (token?: string) =>
      createClient({
        brokers: tb.address,
        ...(token ? { token } : {}),
        requestTimeoutMs: 10_000,
        retry: { maxAttempts: 1, maxElapsedMs: 5_000 },
      });
    const alice = make(T.alice);
    const nobody = make();
    try {
      expect((await alice.admin().listTopics()).map((t) => t.topic)).toContain("orders.a");
      const err = await nobody
        .admin()
        .listTopics()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(RillError);
      expect((err as RillError).codeName).toBe("UNAUTHENTICATED");
    } finally {
      alice.close();
      nobody.close();
    }
  });

  it("lets the CLI authenticate with --token-file and lists only what the principal may see", async () => {
    // Ensures `rill --token-file` works end to end (a child process, stopped by PID on timeout).
    buildIfMissing("clients", "cli", "src", "main.js");
    const tokenFile = join(files.dir, "carol.token");
    await writeFile(tokenFile, `${T.carol}\n`);
    const rill = cli(() => tb.address);
    try {
      const ok = await rill.run(["topic", "list", "--token-file", tokenFile]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain("public");
      expect(ok.stdout).not.toContain("secret");
      const anon = await rill.run(["topic", "list"]);
      expect(anon.code).not.toBe(0);
      expect(anon.stderr).toMatch(/not authenticated: this broker requires authentication/);
      expect(anon.stderr).toContain("--token-file or RILL_TOKEN");
    } finally {
      rill.killAll();
    }
  });
});

describe("integration > auth > mutual TLS principal", () => {
  let pki: TestPki;
  let mtls: TestBroker;
  const opened: AuthStubs[] = [];

  beforeAll(async () => {
    pki = await makeTestPki();
    mtls = await startTestBroker({
      tlsCert: pki.server.certPath,
      tlsKey: pki.server.keyPath,
      tlsClientCa: pki.ca.certPath,
      requireClientCert: true,
      authTokensFile: files.tokensFile,
      authAclFile: files.aclFile.replace("acl.json", "acl-mtls.json"),
    });
  });

  afterAll(async () => {
    for (const s of opened) s.close();
    await mtls?.stop();
    await pki?.cleanup();
  });

  async function as_(cn: string, token?: string): Promise<AuthStubs> {
    const cert = await pki.client(cn, { org: "acme" });
    const s = authStubs(
      mtls.address,
      token === undefined ? {} : { token },
      credentials.createSsl(pki.ca.cert, cert.key, cert.cert),
    );
    opened.push(s);
    return s;
  }

  it("uses CN=<common name> of the verified client certificate as the principal", async () => {
    // Ensures the certificate subject authenticates without a token and ACLs name it as CN=...
    const alice = await as_("alice");
    const ok = await produce(alice.log, [produceRequest("cert-topic", 0, [record("c")])]);
    expect(ok.error).toBeUndefined();
    expect((await api(alice).listTopics()).topics.map((t) => t.topic)).toEqual(["cert-topic"]);
    const bob = await as_("bob");
    const denied = await produce(bob.log, [produceRequest("cert-topic", 0, [record("d")])]);
    expect(denied.error?.code).toBe(status.PERMISSION_DENIED);
    expect(denied.error?.details).toContain('principal "CN=bob"');
    const d = await api(alice).listOffsets({ topic: "cert-topic", partitions: [0], timestampMs: undefined });
    expect(d.partitions[0]!.latest).toBe(1n);
  });

  it("prefers a bearer token over the certificate, and still refuses a bad token", async () => {
    // Ensures the documented order: a token names the principal even on an mTLS connection.
    const viaToken = await as_("alice", T.carol);
    const r = await code(api(viaToken).describeTopic({ topic: "cert-topic" }));
    expect(r.code).toBe(status.PERMISSION_DENIED);
    expect(r.details).toContain('principal "carol"');
    const bad = await as_("alice", `${T.carol}x`);
    expect((await code(api(bad).listTopics())).code).toBe(status.UNAUTHENTICATED);
  });
});
