/**
 * Sends one batch and waits for its acknowledgement, for phases 1 and 2: over one
 * `LogService.ProduceSession` stream (the generated stub: a request per batch, an answer per
 * request), or, when the broker answers UNIMPLEMENTED, over one client-streaming `Produce` call per
 * batch. `method` says which was used.
 */
import { type ClientDuplexStream, type ServiceError, status } from "@grpc/grpc-js";
import type {
  ProduceRequest,
  ProduceResponse,
  ProduceResult,
  ProduceSessionRequest,
  ProduceSessionResponse,
} from "../../../ts/src/gen/rill/v1/log.js";
import type { Connection } from "../../../ts/src/index.js";

export interface AckedSender {
  readonly method: string;
  /** Sends the batch and resolves with where it landed once the broker acknowledged it. */
  send(request: ProduceRequest): Promise<ProduceResult>;
  close(): Promise<void>;
}

interface Waiter {
  resolve: (r: ProduceResult) => void;
  reject: (e: Error) => void;
}

/** One ProduceSession stream; answers are matched to requests by sequence number. */
class SessionSender implements AckedSender {
  readonly method = "ProduceSession";
  private readonly call: ClientDuplexStream<ProduceSessionRequest, ProduceSessionResponse>;
  private readonly waiting = new Map<bigint, Waiter>();
  private sequence = 0n;
  private failure: Error | undefined;
  private readonly ended: Promise<void>;

  constructor(connection: Connection, deadline: Date) {
    this.call = connection.log.produceSession(connection.metadata(), { deadline });
    this.call.on("data", (res: ProduceSessionResponse) => {
      const w = this.waiting.get(res.sequence);
      if (w === undefined) return;
      this.waiting.delete(res.sequence);
      if (res.outcome?.$case === "result") w.resolve(res.outcome.value);
      else if (res.outcome?.$case === "error") {
        w.reject(Object.assign(new Error(res.outcome.value.message), { code: res.outcome.value.code }));
      } else w.reject(new Error(`answer ${res.sequence} has no outcome`));
    });
    this.ended = new Promise<void>((resolve) => {
      this.call.on("error", (e: ServiceError) => {
        this.fail(e);
        resolve();
      });
      this.call.on("end", () => {
        this.fail(new Error("the ProduceSession stream ended"));
        resolve();
      });
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  send(request: ProduceRequest): Promise<ProduceResult> {
    if (this.failure) return Promise.reject(this.failure);
    this.sequence++;
    const sequence = this.sequence;
    const answered = new Promise<ProduceResult>((resolve, reject) => {
      this.waiting.set(sequence, { resolve, reject });
    });
    this.call.write({ sequence, produce: request });
    return answered;
  }

  async close(): Promise<void> {
    this.call.end();
    const timer = setTimeout(() => this.call.cancel(), 5_000);
    await this.ended;
    clearTimeout(timer);
  }
}

/** One client-streaming Produce call per batch. */
class PerBatchProduceSender implements AckedSender {
  readonly method = "Produce (a call per batch; the broker has no ProduceSession)";

  constructor(
    private readonly connection: Connection,
    private readonly deadline: Date,
  ) {}

  send(request: ProduceRequest): Promise<ProduceResult> {
    return new Promise((resolve, reject) => {
      const call = this.connection.log.produce(
        this.connection.metadata(),
        { deadline: this.deadline },
        (err: ServiceError | null, res: ProduceResponse) => {
          if (err) reject(err);
          else if (res.results[0] === undefined) reject(new Error("Produce answered no result"));
          else resolve(res.results[0]);
        },
      );
      call.write(request);
      call.end();
    });
  }

  async close(): Promise<void> {}
}

/** ProduceSession if the broker implements it (found out by the first batch), else Produce per batch. */
class FallbackSender implements AckedSender {
  private impl: AckedSender;
  private first = true;

  constructor(
    private readonly connection: Connection,
    private readonly deadline: Date,
  ) {
    this.impl = new SessionSender(connection, deadline);
  }

  get method(): string {
    return this.impl.method;
  }

  async send(request: ProduceRequest): Promise<ProduceResult> {
    if (!this.first) return this.impl.send(request);
    this.first = false;
    try {
      return await this.impl.send(request);
    } catch (e) {
      if ((e as { code?: number }).code !== status.UNIMPLEMENTED) throw e;
      await this.impl.close().catch(() => {});
      this.impl = new PerBatchProduceSender(this.connection, this.deadline);
      return this.impl.send(request);
    }
  }

  close(): Promise<void> {
    return this.impl.close();
  }
}

/** A sender over `connection` whose calls end at `deadline`. */
export function openAckedSender(connection: Connection, deadline: Date): AckedSender {
  return new FallbackSender(connection, deadline);
}
