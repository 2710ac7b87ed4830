/**
 * Raw generated-stub access to a broker for server-level integration tests (the client library
 * has its own tests). Every client made here is closed by `closeAll`.
 */
import { credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  AdminServiceClient,
  type CreateTopicRequest,
  type CreateTopicResponse,
  type DeleteTopicRequest,
  type DeleteTopicResponse,
  type DescribeTopicRequest,
  type DescribeTopicResponse,
  type ListTopicsResponse,
} from "../../../clients/ts/src/gen/rill/v1/admin.js";
import {
  ClusterServiceClient,
  type GetMetadataRequest,
  type GetMetadataResponse,
} from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import {
  type FetchRequest,
  type FetchResponse,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  LogServiceClient,
  type ProduceRequest,
  type ProduceResponse,
} from "../../../clients/ts/src/gen/rill/v1/log.js";
import { Compression, type Record as RillRecord } from "../../../clients/ts/src/gen/rill/v1/record.js";

export interface Stubs {
  log: LogServiceClient;
  admin: AdminServiceClient;
  cluster: ClusterServiceClient;
  close(): void;
}

export function stubs(address: string): Stubs {
  const creds = credentials.createInsecure();
  const options = { "grpc.max_receive_message_length": 64 * 1024 * 1024 };
  const log = new LogServiceClient(address, creds, options);
  const admin = new AdminServiceClient(address, creds, options);
  const cluster = new ClusterServiceClient(address, creds, options);
  return {
    log,
    admin,
    cluster,
    close() {
      log.close();
      admin.close();
      cluster.close();
    },
  };
}

export function record(value: string | Buffer, key?: string): RillRecord {
  return {
    key: key === undefined ? Buffer.alloc(0) : Buffer.from(key),
    value: typeof value === "string" ? Buffer.from(value) : value,
    headers: [],
    timestampMs: undefined,
  };
}

export function produceRequest(
  topic: string,
  partition: number,
  records: RillRecord[],
  extra: Partial<ProduceRequest> = {},
): ProduceRequest {
  return {
    topic,
    partition,
    records: { records },
    compression: Compression.COMPRESSION_UNSPECIFIED,
    compressedRecords: Buffer.alloc(0),
    recordCount: 0,
    durability: 0,
    ...extra,
  };
}

export interface ProduceOutcome {
  response?: ProduceResponse;
  error?: ServiceError;
  trailers?: Metadata;
}

/** One Produce stream carrying `requests`; resolves with the response or the error (never rejects). */
export function produce(log: LogServiceClient, requests: ProduceRequest[]): Promise<ProduceOutcome> {
  return new Promise((resolve) => {
    let trailers: Metadata | undefined;
    const call = log.produce((error, response) => {
      // The status (with trailers) may arrive after the callback; give it a tick.
      setImmediate(() => resolve(error ? { error, trailers: trailers ?? error.metadata } : { response }));
    });
    call.on("status", (s) => {
      trailers = s.metadata;
    });
    for (const r of requests) call.write(r);
    call.end();
  });
}

/** Reads a non-following Fetch to its end; returns every response or the error. */
export function fetchAll(
  log: LogServiceClient,
  request: Partial<FetchRequest> & Pick<FetchRequest, "topic">,
): Promise<{ responses: FetchResponse[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const responses: FetchResponse[] = [];
    const call = log.fetch({
      partition: 0,
      maxBytes: 0,
      follow: false,
      start: { $case: "offset", value: 0n },
      ...request,
    });
    call.on("data", (r: FetchResponse) => responses.push(r));
    call.on("error", (error: ServiceError) => resolve({ responses, error }));
    call.on("end", () => resolve({ responses }));
  });
}

/** A following Fetch of partition 0 of `topic` from offset 0 (the caller listens and cancels). */
export function follow(log: LogServiceClient, topic: string) {
  return log.fetch({ topic, partition: 0, maxBytes: 0, follow: true, start: { $case: "offset", value: 0n } });
}

/** The values of every record in the responses, in order, skipping offsets below `from`. */
export function values(responses: FetchResponse[], from = 0n): string[] {
  const out: string[] = [];
  for (const r of responses) {
    for (const b of r.batches) {
      b.records?.records.forEach((rec, i) => {
        if (b.baseOffset + BigInt(i) >= from) out.push(Buffer.from(rec.value).toString());
      });
    }
  }
  return out;
}

type Callback<T> = (err: ServiceError | null, res: T) => void;

function call<T>(invoke: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Promise-returning unary calls over the generated stubs. */
export function api(s: Stubs) {
  return {
    createTopic: (r: CreateTopicRequest) => call<CreateTopicResponse>((cb) => s.admin.createTopic(r, cb)),
    deleteTopic: (r: DeleteTopicRequest) => call<DeleteTopicResponse>((cb) => s.admin.deleteTopic(r, cb)),
    listTopics: () => call<ListTopicsResponse>((cb) => s.admin.listTopics({}, cb)),
    describeTopic: (r: DescribeTopicRequest) =>
      call<DescribeTopicResponse>((cb) => s.admin.describeTopic(r, cb)),
    listOffsets: (r: ListOffsetsRequest) => call<ListOffsetsResponse>((cb) => s.log.listOffsets(r, cb)),
    getMetadata: (r: GetMetadataRequest) => call<GetMetadataResponse>((cb) => s.cluster.getMetadata(r, cb)),
  };
}
