/**
 * One gRPC channel per broker address, shared by every service client of one `RillClient`
 * (connect-es `node-transport-options.ts` is the anchor for the option shape). The defaults keep a
 * long-lived connection healthy and let big fetch responses through:
 *
 * - keepalive ping every 30 s, dead after 10 s without an answer, also while no call is open
 *   (a following consumer may sit idle for hours; the ping finds a dead peer);
 * - max receive message 64 MiB (a Fetch response holds whole batches, up to max_bytes and at least
 *   one batch), max send message 16 MiB (one Produce request carries one batch);
 * - a 4 MiB HTTP/2 flow-control window, so a Fetch stream is not throttled by round trips.
 *
 * Also the small promise wrapper for unary calls, with a deadline, which turns failures into
 * `RillError`s.
 */
import {
  type CallOptions,
  Channel,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials as grpcCredentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { decodeFetchResponse, type RawFetchResponse } from "./consumer/fetch-decoder.js";
import { fromGrpcError, InvalidArgumentError } from "./errors.js";
import { AdminServiceClient } from "./gen/rill/v1/admin.js";
import { ClusterServiceClient } from "./gen/rill/v1/cluster.js";
import { GroupServiceClient } from "./gen/rill/v1/group.js";
import {
  type FetchRequest,
  LogServiceClient,
  LogServiceService,
  type ProduceResponse,
  type ProduceSessionResponse,
} from "./gen/rill/v1/log.js";

/** Channel options every connection starts from; `ConnectionOptions.channelOptions` overrides them. */
export const DEFAULT_CHANNEL_OPTIONS: Readonly<ChannelOptions> = Object.freeze({
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 16 * 1024 * 1024,
  // HTTP/2 flow-control window (per stream and per connection). grpc-js's default is 64 KiB, so a
  // broker streaming a Fetch could send only ~300 records of 200 B before waiting a round trip for
  // the client's WINDOW_UPDATE; 4 MiB measured +45–57 % consume throughput (BENCHMARKS.md). It bounds
  // what one stream may have in flight unread, so memory stays bounded by streams × 4 MiB.
  "grpc-node.flow_control_window": 4 * 1024 * 1024,
});

/** TLS material; all optional (system roots are used when `rootCerts` is absent). */
export interface TlsOptions {
  /** PEM CA certificate(s) the broker's certificate must chain to (default: the system roots). */
  rootCerts?: Buffer | undefined;
  /** PEM private key of `certChain`: a client certificate, for mutual TLS. */
  privateKey?: Buffer | undefined;
  /** PEM client certificate chain, for mutual TLS (with `privateKey`). */
  certChain?: Buffer | undefined;
  /** Name to check the broker's certificate against, when it differs from the address's host. */
  serverName?: string | undefined;
}

/** How to reach a broker. */
export interface ConnectionOptions {
  /** Use TLS (default false: plaintext, as the broker listens by default). */
  tls?: boolean | TlsOptions | undefined;
  /** Credentials to use as they are; overrides `tls`. */
  credentials?: ChannelCredentials | undefined;
  /** grpc-js channel options merged over {@link DEFAULT_CHANNEL_OPTIONS}. */
  channelOptions?: ChannelOptions | undefined;
  /** Metadata sent with every call, e.g. `{ "x-request-source": "billing" }`. */
  metadata?: Record<string, string> | undefined;
  /** Bearer token sent as `authorization: Bearer <token>` with every call (overrides `metadata`). */
  token?: string | undefined;
}

/**
 * The Produce method with a pass-through request serializer: the producer encodes each batch's
 * `ProduceRequest` once with the generated codec and keeps the bytes, so a retry resends them
 * without encoding again.
 */
export interface RawProduceClient {
  produce(
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response?: ProduceResponse) => void,
  ): ClientWritableStream<Buffer>;
  close(): void;
}

const RawProduceClientCtor = makeGenericClientConstructor(
  {
    produce: {
      ...LogServiceService.produce,
      requestSerialize: (value: Buffer): Buffer => value,
      requestDeserialize: (value: Buffer): Buffer => value,
    },
  },
  "rill.v1.LogService",
) as unknown as new (
  address: string,
  credentials: ChannelCredentials,
  options: Record<string, unknown>,
) => RawProduceClient;

/**
 * The ProduceSession method with a request serializer that takes the encoded
 * `ProduceSessionRequest` (the producer frames each batch's kept `ProduceRequest` bytes itself).
 */
export interface RawProduceSessionClient {
  produceSession(
    metadata: Metadata,
    options?: Partial<CallOptions>,
  ): ClientDuplexStream<Buffer, ProduceSessionResponse>;
  close(): void;
}

const RawProduceSessionClientCtor = makeGenericClientConstructor(
  {
    produceSession: {
      ...LogServiceService.produceSession,
      requestSerialize: (value: Buffer): Buffer => value,
    },
  },
  "rill.v1.LogService",
) as unknown as new (
  address: string,
  credentials: ChannelCredentials,
  options: Record<string, unknown>,
) => RawProduceSessionClient;

/**
 * The Fetch method with a response deserializer that leaves the batches encoded: the consumer
 * decodes their records itself, without the generated per-record objects and copies.
 */
export interface RawFetchClient {
  fetch(request: FetchRequest, metadata: Metadata): ClientReadableStream<RawFetchResponse>;
  close(): void;
}

const RawFetchClientCtor = makeGenericClientConstructor(
  { fetch: { ...LogServiceService.fetch, responseDeserialize: decodeFetchResponse } },
  "rill.v1.LogService",
) as unknown as new (
  address: string,
  credentials: ChannelCredentials,
  options: Record<string, unknown>,
) => RawFetchClient;

/** Checks a `host:port` (or `[v6]:port`) broker address and returns it trimmed. */
export function parseBrokerAddress(address: string): string {
  const a = address.trim();
  const m = /^(\[[0-9a-fA-F:.%a-zA-Z]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(a);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new InvalidArgumentError(`invalid broker address "${address}": expected host:port`);
  }
  return a;
}

function makeCredentials(options: ConnectionOptions): ChannelCredentials {
  if (options.credentials) return options.credentials;
  const tls = options.tls;
  if (!tls) return grpcCredentials.createInsecure();
  if (tls === true) return grpcCredentials.createSsl();
  if ((tls.privateKey === undefined) !== (tls.certChain === undefined)) {
    throw new InvalidArgumentError(
      "tls: certChain and privateKey go together (a client certificate and its key)",
    );
  }
  return grpcCredentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null);
}

/** Channel options implied by `tls.serverName`: the name checked in the broker's certificate. */
function tlsChannelOptions(options: ConnectionOptions): ChannelOptions {
  const name = typeof options.tls === "object" ? options.tls.serverName : undefined;
  if (name === undefined || options.credentials) return {};
  return { "grpc.ssl_target_name_override": name, "grpc.default_authority": name };
}

/** The static metadata of every call: `metadata`, plus the bearer token when given. */
function staticMetadata(options: ConnectionOptions): Record<string, string> {
  const md = { ...options.metadata };
  if (options.token !== undefined) {
    const token = options.token.trim();
    if (!/^[!-~]+$/.test(token)) {
      throw new InvalidArgumentError("token must be non-empty printable ASCII, without spaces");
    }
    md.authorization = `Bearer ${token}`;
  }
  return md;
}

/** The channel to one broker and the service clients that share it. */
export class Connection {
  /** The broker's `host:port`. */
  readonly address: string;
  readonly channel: Channel;
  readonly log: LogServiceClient;
  readonly rawProduce: RawProduceClient;
  readonly rawProduceSession: RawProduceSessionClient;
  readonly rawFetch: RawFetchClient;
  readonly admin: AdminServiceClient;
  readonly cluster: ClusterServiceClient;
  readonly group: GroupServiceClient;
  private readonly staticMetadata: Record<string, string>;
  private closed = false;

  constructor(address: string, options: ConnectionOptions = {}) {
    this.address = parseBrokerAddress(address);
    const creds = makeCredentials(options);
    const channelOptions: ChannelOptions = {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...tlsChannelOptions(options),
      ...options.channelOptions,
    };
    this.channel = new Channel(this.address, creds, channelOptions);
    const clientOptions = { channelOverride: this.channel };
    this.log = new LogServiceClient(this.address, creds, clientOptions);
    this.rawProduce = new RawProduceClientCtor(this.address, creds, clientOptions);
    this.rawProduceSession = new RawProduceSessionClientCtor(this.address, creds, clientOptions);
    this.rawFetch = new RawFetchClientCtor(this.address, creds, clientOptions);
    this.admin = new AdminServiceClient(this.address, creds, clientOptions);
    this.cluster = new ClusterServiceClient(this.address, creds, clientOptions);
    this.group = new GroupServiceClient(this.address, creds, clientOptions);
    this.staticMetadata = staticMetadata(options);
  }

  /** A fresh Metadata carrying the configured static entries (grpc-js mutates what it is given). */
  metadata(): Metadata {
    const md = new Metadata();
    for (const [k, v] of Object.entries(this.staticMetadata)) md.set(k, v);
    return md;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the channel; calls still open fail with CANCELLED/UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
  }
}

/** Milliseconds → a grpc deadline; `undefined`/Infinity means none. */
export function deadlineAfter(timeoutMs: number | undefined): Date | undefined {
  if (timeoutMs === undefined || !Number.isFinite(timeoutMs)) return undefined;
  return new Date(Date.now() + timeoutMs);
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls a unary method with a deadline; failures reject with a `RillError`. */
export function unaryCall<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
  timeoutMs: number | undefined,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const deadline = deadlineAfter(timeoutMs);
    method(request, metadata, deadline ? { deadline } : {}, (error, response) => {
      if (error) reject(fromGrpcError(error));
      else resolve(response);
    });
  });
}
