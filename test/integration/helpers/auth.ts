/**
 * Helpers for the authentication, ACL and quota tests: auth files in a temp dir, generated stubs
 * that send a bearer token (a client interceptor adds `authorization: Bearer <token>` to every
 * call), and raw calls to health and reflection with or without a token.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChannelCredentials,
  Client,
  credentials,
  InterceptingCall,
  type Interceptor,
  type ServiceError,
} from "@grpc/grpc-js";
import { AdminServiceClient } from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { ClusterServiceClient } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import { GroupServiceClient } from "../../../clients/ts/src/gen/rill/v1/group.js";
import { LogServiceClient } from "../../../clients/ts/src/gen/rill/v1/log.js";
import type { Stubs } from "./grpc.js";

export interface AuthFiles {
  dir: string;
  tokensFile: string;
  aclFile: string;
  cleanup(): Promise<void>;
}

/** Writes `{"tokens": tokens}` and `{"acls": acls, "quotas": quotas}` to a fresh temp dir. */
export async function writeAuthFiles(
  tokens: unknown[],
  acls: unknown[],
  quotas: Record<string, unknown> = {},
): Promise<AuthFiles> {
  const dir = await mkdtemp(join(tmpdir(), "rill-auth-"));
  const tokensFile = join(dir, "tokens.json");
  const aclFile = join(dir, "acl.json");
  await writeFile(tokensFile, JSON.stringify({ tokens }));
  await writeFile(aclFile, JSON.stringify({ acls, quotas }));
  return { dir, tokensFile, aclFile, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Adds `authorization: <value>` to every call (value undefined: no header). */
export function authorizationInterceptor(value: string | undefined): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        if (value !== undefined) metadata.set("authorization", value);
        next(metadata, listener);
      },
    });
}

export interface AuthStubs extends Stubs {
  group: GroupServiceClient;
}

/** Generated stubs sending `Bearer <token>` (or the raw `authorization` value given, or none). */
export function authStubs(
  address: string,
  auth: { token?: string; header?: string } = {},
  creds: ChannelCredentials = credentials.createInsecure(),
): AuthStubs {
  const header = auth.header ?? (auth.token === undefined ? undefined : `Bearer ${auth.token}`);
  const options = {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    interceptors: [authorizationInterceptor(header)],
  };
  const log = new LogServiceClient(address, creds, options);
  const admin = new AdminServiceClient(address, creds, options);
  const cluster = new ClusterServiceClient(address, creds, options);
  const group = new GroupServiceClient(address, creds, options);
  return {
    log,
    admin,
    cluster,
    group,
    close() {
      log.close();
      admin.close();
      cluster.close();
      group.close();
    },
  };
}

const identity = (b: Buffer) => b;

/** grpc.health.v1.Health/Check for the whole broker: resolves OK or with the error's code. */
export function healthCheck(address: string, token?: string): Promise<ServiceError | "ok"> {
  const client = new Client(address, credentials.createInsecure(), {
    interceptors: [authorizationInterceptor(token === undefined ? undefined : `Bearer ${token}`)],
  });
  return new Promise<ServiceError | "ok">((resolve) => {
    client.makeUnaryRequest("/grpc.health.v1.Health/Check", identity, identity, Buffer.alloc(0), (err) =>
      resolve(err ?? "ok"),
    );
  }).finally(() => client.close());
}

/** One ServerReflectionInfo exchange (list_services) over v1: "ok" with a response, or the error. */
export function reflectionList(address: string, token?: string): Promise<ServiceError | "ok"> {
  const client = new Client(address, credentials.createInsecure(), {
    interceptors: [authorizationInterceptor(token === undefined ? undefined : `Bearer ${token}`)],
  });
  return new Promise<ServiceError | "ok">((resolve) => {
    const call = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      identity,
      identity,
    );
    call.on("data", () => {
      resolve("ok");
      call.cancel();
    });
    call.on("error", (err: ServiceError) => resolve(err));
    call.write(Buffer.from([0x3a, 0x00])); // field 7 list_services = ""
    call.end();
  }).finally(() => client.close());
}
