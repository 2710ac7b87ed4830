/**
 * The entry point: `createClient({ brokers: "host:port" })` opens one gRPC channel, shared by every
 * producer, consumer and admin made from the client. `close()` flushes and closes the producers,
 * ends the consumers' reads and closes the channel.
 *
 * Single-node today: `brokers` may list several addresses (comma-separated or an array), but only
 * the first is dialed (routing by partition leader comes with cluster mode).
 */
import { Admin, type AdminOptions } from "./admin/admin.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import { Consumer, type ConsumerOptions } from "./consumer/consumer.js";
import { ClientClosedError, InvalidArgumentError } from "./errors.js";
import { createLogger, type Logger, type LogLevel, type LogSink } from "./logger.js";
import { Producer, type ProducerOptions } from "./producer/producer.js";
import { type RetryOptions, resolveRetryOptions } from "./retry.js";

/** Client settings. */
export interface RillClientOptions extends ConnectionOptions {
  /** "host:port", a comma-separated list, or an array (only the first is used today). */
  brokers: string | readonly string[];
  /** Receives the client's log entries; without it the client is silent. */
  log?: LogSink | undefined;
  /** Lowest level passed to `log` (default "info"). */
  logLevel?: LogLevel | undefined;
  /** Default retry policy of producers, consumers and admin reads. */
  retry?: Partial<RetryOptions> | undefined;
  /** Default deadline of unary calls and of a Produce stream (ms, default 30 000). */
  requestTimeoutMs?: number | undefined;
}

/** A connection to a Rill broker and the factory of producers, consumers and admins. */
export class RillClient {
  /** The broker address in use. */
  readonly broker: string;
  private readonly connection: Connection;
  private readonly logger: Logger;
  private readonly retry: Partial<RetryOptions>;
  private readonly requestTimeoutMs: number;
  private readonly producers = new Set<Producer>();
  private readonly consumers = new Set<Consumer>();
  private closePromise: Promise<void> | undefined;

  constructor(options: RillClientOptions) {
    const list = typeof options.brokers === "string" ? options.brokers.split(",") : [...options.brokers];
    const brokers = list.map((b) => b.trim()).filter((b) => b.length > 0);
    if (brokers.length === 0) throw new InvalidArgumentError("brokers: at least one host:port is required");
    this.broker = brokers[0]!;
    const timeout = options.requestTimeoutMs ?? 30_000;
    if (!(timeout > 0)) throw new InvalidArgumentError(`requestTimeoutMs must be > 0, got ${timeout}`);
    this.requestTimeoutMs = timeout;
    this.retry = { ...options.retry };
    resolveRetryOptions(this.retry);
    this.logger = createLogger({ sink: options.log, level: options.logLevel });
    this.connection = new Connection(this.broker, options);
  }

  /** A new producer (see {@link Producer}). */
  producer(options: ProducerOptions = {}): Producer {
    this.assertOpen();
    const producer: Producer = new Producer(
      {
        ...this.context(),
        onClose: () => this.producers.delete(producer),
      },
      options,
    );
    this.producers.add(producer);
    return producer;
  }

  /** A new consumer (see {@link Consumer}). */
  consumer(options: ConsumerOptions = {}): Consumer {
    this.assertOpen();
    const consumer: Consumer = new Consumer(
      { ...this.context(), onClose: () => this.consumers.delete(consumer) },
      options,
    );
    this.consumers.add(consumer);
    return consumer;
  }

  /** An admin (see {@link Admin}). */
  admin(options: AdminOptions = {}): Admin {
    this.assertOpen();
    return new Admin(this.context(), options);
  }

  /** Flushes and closes producers, ends reads, closes the channel. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closePromise = (async () => {
      const results = await Promise.allSettled([
        ...[...this.producers].map((p) => p.close()),
        ...[...this.consumers].map((c) => c.close()),
      ]);
      this.connection.close();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    })();
    return this.closePromise;
  }

  private context() {
    return {
      connection: this.connection,
      logger: this.logger,
      retry: this.retry,
      requestTimeoutMs: this.requestTimeoutMs,
    };
  }

  private assertOpen(): void {
    if (this.closePromise) throw new ClientClosedError("the client is closed");
  }
}

/** Creates a client: `createClient({ brokers: "127.0.0.1:50051" })`. */
export function createClient(options: RillClientOptions): RillClient {
  return new RillClient(options);
}
