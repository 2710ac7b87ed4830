/**
 * A scripted in-process gRPC server speaking the generated LogService and ClusterService, for unit
 * tests of the client's failure paths (partial appends, retries, broken streams, backpressure) that
 * a real broker cannot be made to produce on demand. Port 0 on 127.0.0.1; `stop()` force-closes.
 */
import {
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import {
  ClusterServiceService,
  type GetMetadataResponse,
} from "../../../../clients/ts/src/gen/rill/v1/cluster.js";
import {
  type FetchRequest,
  type FetchResponse,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  LogServiceService,
  type ProduceRequest,
  type ProduceResponse,
  type ProduceResult,
  type ProduceSessionRequest,
  type ProduceSessionResponse,
} from "../../../../clients/ts/src/gen/rill/v1/log.js";
import { type Batch, Compression, type Record } from "../../../../clients/ts/src/gen/rill/v1/record.js";

/** A ProduceSession call as the fake broker sees it. */
export type SessionCall = ServerDuplexStream<ProduceSessionRequest, ProduceSessionResponse>;

/** What a scripted Produce call does with the requests it received. */
export type ProduceScript = (
  requests: ProduceRequest[],
) => { ok: true } | { ok: false; code: number; message: string; appended?: number };

export interface FakeBroker {
  address: string;
  /** Every Produce call's requests, in order. */
  produceCalls: ProduceRequest[][];
  /** Every Fetch request. */
  fetchRequests: FetchRequest[];
  /** Records appended per partition (what a consumer can read). */
  logs: Map<number, Record[]>;
  partitions: number;
  /** Scripts for the next Produce calls (shifted per call; default: append all). */
  produceScripts: ProduceScript[];
  /** Replaces the default Fetch behaviour. */
  fetchHandler?: (call: ServerWritableStream<FetchRequest, FetchResponse>) => void;
  /** Replaces the default GetMetadata behaviour (e.g. to never answer). */
  metadataHandler?: (request: { topics: string[] }, cb: sendUnaryData<GetMetadataResponse>) => void;
  /** Delay before answering a Produce (ms). */
  produceDelayMs: number;
  /** Every ProduceSession call's requests, filled as they arrive (one array per call). */
  sessions: ProduceSessionRequest[][];
  /** ProduceSession calls the client half-closed. */
  sessionsHalfClosed: number;
  /**
   * Replaces the default ProduceSession behaviour (append every batch and answer it at once; end
   * when the client half-closes). `requests` is this call's entry of `sessions`, already filled.
   */
  sessionHandler?: (
    call: SessionCall,
    requests: ProduceSessionRequest[],
    request: ProduceSessionRequest,
  ) => void;
  /** Appends a batch to `logs` as the default Produce does. */
  append(req: ProduceRequest): ProduceResult;
  stop(): Promise<void>;
}

export function record(value: string | Buffer): Record {
  return { key: Buffer.alloc(0), value: Buffer.from(value), headers: [], timestampMs: undefined };
}

export function storedBatch(baseOffset: bigint, records: Record[]): Batch {
  return {
    crc32c: 0,
    baseOffset,
    recordCount: records.length,
    appendTimeMs: 1n,
    producerId: 0n,
    producerSequence: 0,
    compression: Compression.COMPRESSION_NONE,
    records: { records },
    compressedRecords: Buffer.alloc(0),
  };
}

export async function startFakeBroker(partitions = 1): Promise<FakeBroker> {
  const server = new Server();
  const fake: FakeBroker = {
    address: "",
    produceCalls: [],
    fetchRequests: [],
    logs: new Map(Array.from({ length: partitions }, (_, p) => [p, [] as Record[]])),
    partitions,
    produceScripts: [],
    produceDelayMs: 0,
    sessions: [],
    sessionsHalfClosed: 0,
    append: (req) => append(req),
    async stop() {
      server.forceShutdown();
    },
  };

  const append = (req: ProduceRequest): ProduceResult => {
    const log = fake.logs.get(req.partition)!;
    const base = BigInt(log.length);
    log.push(...(req.records?.records ?? []));
    return {
      topic: req.topic,
      partition: req.partition,
      baseOffset: base,
      recordCount: req.records?.records.length ?? 0,
      appendTimeMs: 1n,
    };
  };

  server.addService(LogServiceService, {
    produce(call: ServerReadableStream<ProduceRequest, ProduceResponse>, cb: sendUnaryData<ProduceResponse>) {
      const requests: ProduceRequest[] = [];
      call.on("data", (r: ProduceRequest) => requests.push(r));
      call.on("end", () => {
        fake.produceCalls.push(requests);
        const script = fake.produceScripts.shift() ?? (() => ({ ok: true as const }));
        const outcome = script(requests);
        setTimeout(() => {
          if (outcome.ok) {
            cb(null, { results: requests.map(append) });
            return;
          }
          const appended = outcome.appended;
          requests.slice(0, appended ?? 0).forEach(append);
          const md = new Metadata();
          if (appended !== undefined) md.set("rill-appended-batches", String(appended));
          cb({ code: outcome.code, details: outcome.message, metadata: md });
        }, fake.produceDelayMs);
      });
    },
    produceSession(call: SessionCall) {
      const requests: ProduceSessionRequest[] = [];
      fake.sessions.push(requests);
      call.on("data", (r: ProduceSessionRequest) => {
        requests.push(r);
        if (fake.sessionHandler) {
          fake.sessionHandler(call, requests, r);
          return;
        }
        call.write({ sequence: r.sequence, outcome: { $case: "result", value: append(r.produce!) } });
      });
      call.on("end", () => {
        fake.sessionsHalfClosed++;
        call.end();
      });
      call.on("error", () => {});
    },
    fetch(call: ServerWritableStream<FetchRequest, FetchResponse>) {
      fake.fetchRequests.push(call.request);
      if (fake.fetchHandler) {
        fake.fetchHandler(call);
        return;
      }
      const log = fake.logs.get(call.request.partition) ?? [];
      const start = call.request.start;
      const from = start?.$case === "offset" ? Number(start.value) : 0;
      if (log.length > from) {
        call.write({
          batches: [storedBatch(BigInt(from), log.slice(from))],
          highWatermark: BigInt(log.length),
          logStartOffset: 0n,
        });
      }
      call.end();
    },
    listOffsets(call: { request: ListOffsetsRequest }, cb: sendUnaryData<ListOffsetsResponse>) {
      const ps = call.request.partitions.length > 0 ? call.request.partitions : [...fake.logs.keys()];
      cb(null, {
        partitions: ps.map((p) => ({
          partition: p,
          earliest: 0n,
          latest: BigInt(fake.logs.get(p)?.length ?? 0),
          timestampOffset: undefined,
        })),
      });
    },
  });
  server.addService(ClusterServiceService, {
    getMetadata(call: { request: { topics: string[] } }, cb: sendUnaryData<GetMetadataResponse>) {
      if (fake.metadataHandler) {
        fake.metadataHandler(call.request, cb);
        return;
      }
      cb(null, {
        clusterId: "fake",
        brokers: [{ brokerId: 1, host: "127.0.0.1", port: 0 }],
        topics: call.request.topics.map((topic) => ({
          topic,
          partitions: Array.from({ length: fake.partitions }, (_, p) => ({ partition: p, leaderId: 1 })),
        })),
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  fake.address = `127.0.0.1:${port}`;
  return fake;
}

export { status };
