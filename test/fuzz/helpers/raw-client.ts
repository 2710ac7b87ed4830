/**
 * A raw-bytes gRPC client for fuzzing: one generic client (makeGenericClientConstructor) whose
 * serializers and deserializers are identity functions on Buffers, with one entry per method of
 * every service the broker serves. The method table comes from the service definitions themselves
 * (the generated rill.v1 code, grpc-health-check, and the reflection protos of @grpc/reflection).
 *
 * Invariants: every call is bounded (a gRPC deadline, at most MAX_MESSAGES answers kept, and a
 * hard timer that cancels the call and reports a hang); `send` never rejects.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  Metadata,
  makeGenericClientConstructor,
  type ServiceDefinition,
  type status,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { AdminServiceService } from "../../../clients/ts/src/gen/rill/v1/admin.js";
import { ClusterServiceService } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import { GroupServiceService } from "../../../clients/ts/src/gen/rill/v1/group.js";
import { LogServiceService } from "../../../clients/ts/src/gen/rill/v1/log.js";

export interface RawMethod {
  /** "rill.v1.LogService/Produce": the key of the generic client and of the fuzz tables. */
  key: string;
  service: string;
  name: string;
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

interface MethodAttrs {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

function methodsOf(definition: Record<string, MethodAttrs>): RawMethod[] {
  return Object.values(definition).map((m) => {
    const slash = m.path.lastIndexOf("/");
    const service = m.path.slice(1, slash);
    const name = m.path.slice(slash + 1);
    return {
      key: `${service}/${name}`,
      service,
      name,
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
    };
  });
}

/** The server reflection services (v1 and v1alpha), from the protos @grpc/reflection serves. */
function reflectionDefinitions(): Record<string, MethodAttrs>[] {
  const require = createRequire(import.meta.url);
  const protoLoader = require(
    require.resolve("@grpc/proto-loader", { paths: [dirname(require.resolve("@grpc/reflection"))] }),
  ) as typeof import("@grpc/proto-loader");
  const protoRoot = join(dirname(require.resolve("@grpc/reflection")), "..", "proto");
  return ["v1", "v1alpha"].map((version) => {
    const pkg = loadPackageDefinition(
      protoLoader.loadSync(join(protoRoot, "grpc/reflection", version, "reflection.proto")),
    );
    const reflection = (pkg.grpc as GrpcObject).reflection as GrpcObject;
    const ctor = (reflection[version] as GrpcObject).ServerReflection as unknown as {
      service: Record<string, MethodAttrs>;
    };
    return ctor.service;
  });
}

/** Every method of every service the broker serves, in a stable order. */
export function allMethods(): RawMethod[] {
  const definitions = [
    LogServiceService,
    AdminServiceService,
    ClusterServiceService,
    GroupServiceService,
    healthService,
    ...reflectionDefinitions(),
  ] as unknown as Record<string, MethodAttrs>[];
  return definitions.flatMap(methodsOf);
}

/** What one call ended with. */
export interface Outcome {
  code: status;
  details: string;
  /** Response messages received (at most MAX_MESSAGES). */
  messages: Buffer[];
  trailers: Metadata | undefined;
  /** The test itself cancelled the call (too many answers); `code` is then CANCELLED. */
  cancelledByUs: boolean;
}

/** A streaming answer beyond this many messages is cancelled: a bound, not an oracle. */
export const MAX_MESSAGES = 64;

const identity = (b: Buffer) => b;

type AnyCall = NodeJS.EventEmitter & {
  cancel(): void;
  write?(b: Buffer): boolean;
  end?(): void;
};
type GenericClient = Record<string, (...args: unknown[]) => AnyCall> & { close(): void };

export class RawClient {
  private readonly client: GenericClient;

  constructor(
    address: string,
    readonly methods: RawMethod[] = allMethods(),
  ) {
    const definition: Record<string, ServiceDefinition[string]> = {};
    for (const m of methods) {
      definition[m.key] = {
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      };
    }
    const Ctor = makeGenericClientConstructor(definition as ServiceDefinition, "RillFuzz");
    this.client = new Ctor(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      "grpc.max_send_message_length": -1,
    }) as unknown as GenericClient;
  }

  method(key: string): RawMethod {
    const m = this.methods.find((x) => x.key === key);
    if (!m) throw new Error(`no method ${key}`);
    return m;
  }

  /**
   * Sends `requests` as the raw request(s) of `key` (unary and server-streaming methods take the
   * first) with a deadline of `deadlineMs`; resolves with how the call ended, never rejects.
   */
  send(key: string, requests: Buffer[], deadlineMs: number, metadata = new Metadata()): Promise<Outcome> {
    const m = this.method(key);
    const deadline = new Date(Date.now() + deadlineMs);
    const fn = this.client[key]!.bind(this.client);
    return new Promise<Outcome>((resolve) => {
      const messages: Buffer[] = [];
      let cancelledByUs = false;
      let statusSeen: { code: status; details: string; metadata: Metadata } | undefined;
      let replied = m.responseStream; // unary-style calls also wait for their callback
      let settled = false;
      let call: AnyCall;
      const finish = () => {
        if (settled || !statusSeen || !replied) return;
        settled = true;
        clearTimeout(hard);
        resolve({
          code: statusSeen.code,
          details: statusSeen.details,
          messages,
          trailers: statusSeen.metadata,
          cancelledByUs,
        });
      };
      // A call the deadline did not end is a hang: report it as such (never an allowed code).
      const hard = setTimeout(() => {
        if (settled) return;
        settled = true;
        call?.cancel();
        resolve({ code: -1 as status, details: "hang", messages, trailers: undefined, cancelledByUs });
      }, deadlineMs + 5000);
      const callback = (_err: unknown, value?: Buffer) => {
        if (value) messages.push(value);
        replied = true;
        finish();
      };
      const options = { deadline };
      const first = requests[0] ?? Buffer.alloc(0);
      if (!m.requestStream && !m.responseStream) call = fn(first, metadata, options, callback);
      else if (!m.requestStream) call = fn(first, metadata, options);
      else if (!m.responseStream) call = fn(metadata, options, callback);
      else call = fn(metadata, options);
      call.on("data", (b: Buffer) => {
        if (messages.length < MAX_MESSAGES) messages.push(b);
        else if (!cancelledByUs) {
          cancelledByUs = true;
          call.cancel();
        }
      });
      call.on("error", () => {}); // the status event carries the code
      call.on("status", (s: { code: status; details: string; metadata: Metadata }) => {
        statusSeen = s;
        finish();
      });
      if (m.requestStream) {
        for (const r of requests) call.write!(r);
        call.end!();
      }
    });
  }

  close(): void {
    this.client.close();
  }
}
