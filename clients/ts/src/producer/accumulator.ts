/**
 * The producer's record accumulator: one open batch per (topic, partition) being filled, and a queue
 * of sealed batches ready to send. A batch is sealed when the next record would take it past
 * `batchBytes`, when its linger time runs out, or on flush. Sealing encodes it, once, with the
 * generated `ProduceRequest`/`RecordBatch` codecs (gzip-compressed if asked); retries resend those
 * bytes.
 *
 * Acknowledgement fan-out costs one promise per `send` call, not per record: each batch remembers,
 * per record, which send it came from and its index there (two parallel arrays), and each send
 * counts the batches it still waits for. A send's records enter the accumulator in one synchronous
 * loop, so they are contiguous within every batch; `lastOwner` therefore counts each send once per
 * batch.
 *
 * Single-threaded by construction: only the producer calls it, from the event loop.
 */
import { gzipSync } from "node:zlib";
import type { Durability } from "../gen/rill/v1/log.js";
import { ProduceRequest } from "../gen/rill/v1/log.js";
import { Compression, RecordBatch, type Record as WireRecord } from "../gen/rill/v1/record.js";

/** Where one produced record landed. `offset` is -1n when the batch was appended but its offset is unknown. */
export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: bigint;
}

/** The state of one `send` call: its results, and how many of its batches are still unsettled. */
export class SendState {
  readonly results: RecordMetadata[];
  /** Batches holding records of this send that are not acknowledged or failed yet. */
  pendingBatches = 0;
  settled = false;
  readonly promise: Promise<RecordMetadata[]>;
  private resolveFn!: (value: RecordMetadata[]) => void;
  private rejectFn!: (error: unknown) => void;

  constructor(recordCount: number) {
    this.results = new Array<RecordMetadata>(recordCount);
    this.promise = new Promise<RecordMetadata[]>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
  }

  /** One of its batches was appended. */
  batchDone(): void {
    if (--this.pendingBatches === 0 && !this.settled) {
      this.settled = true;
      this.resolveFn(this.results);
    }
  }

  /** Rejects the send (first failure wins; later batches of it are still sent). */
  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(error);
  }
}

/** A batch being filled. */
class OpenBatch {
  readonly records: WireRecord[] = [];
  readonly owners: SendState[] = [];
  readonly ownerIndex: number[] = [];
  readonly sends: SendState[] = [];
  bytes = 0;
  private lastOwner: SendState | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly createdAt: number,
  ) {}

  add(record: WireRecord, size: number, owner: SendState, index: number): void {
    this.records.push(record);
    this.owners.push(owner);
    this.ownerIndex.push(index);
    this.bytes += size;
    if (owner !== this.lastOwner) {
      this.lastOwner = owner;
      this.sends.push(owner);
      owner.pendingBatches++;
    }
  }
}

/** A batch encoded and queued for (re)sending. */
export class SealedBatch {
  /** The encoded ProduceRequest, sent as is on every attempt. */
  readonly encoded: Buffer;
  readonly recordCount: number;
  /** Bytes accounted against the producer's buffer (released when the batch settles). */
  readonly bufferedBytes: number;
  settled = false;
  readonly done: Promise<void>;
  private markDone!: () => void;

  constructor(
    readonly topic: string,
    readonly partition: number,
    encoded: Buffer,
    private readonly open: OpenBatch,
  ) {
    this.encoded = encoded;
    this.recordCount = open.records.length;
    this.bufferedBytes = open.bytes;
    this.done = new Promise<void>((resolve) => {
      this.markDone = resolve;
    });
  }

  /** "topic\0partition" */
  get key(): string {
    return partitionKey(this.topic, this.partition);
  }

  /** The broker appended the batch at `baseOffset` (or at an unknown offset: -1n). */
  acknowledge(baseOffset: bigint): void {
    if (this.settled) return;
    this.settled = true;
    const { owners, ownerIndex } = this.open;
    const known = baseOffset >= 0n;
    for (let i = 0; i < owners.length; i++) {
      owners[i]!.results[ownerIndex[i]!] = {
        topic: this.topic,
        partition: this.partition,
        offset: known ? baseOffset + BigInt(i) : -1n,
      };
    }
    for (const s of this.open.sends) s.batchDone();
    this.release();
  }

  /** The batch will not be appended: reject every send that has records in it. */
  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    for (const s of this.open.sends) s.fail(error);
    this.release();
  }

  private release(): void {
    // Drop the records so memory goes as soon as the batch settles.
    this.open.records.length = 0;
    this.markDone();
  }
}

/** Key of a partition in maps and sets. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** Settings the accumulator needs. */
export interface AccumulatorOptions {
  batchBytes: number;
  compression: "none" | "gzip";
  durability: Durability;
  /** Called after a batch of (topic, partition) is sealed (the sticky partitioner moves on). */
  onSealed: (topic: string, partition: number) => void;
  now?: () => number;
}

/** Open batches per partition, and sealed batches in the order they were sealed. */
export class Accumulator {
  private readonly open = new Map<string, OpenBatch>();
  private ready: SealedBatch[] = [];
  private readonly now: () => number;

  constructor(private readonly options: AccumulatorOptions) {
    this.now = options.now ?? Date.now;
  }

  /** True if adding `size` bytes would take the open batch of the partition past batchBytes. */
  wouldOverflow(topic: string, partition: number, size: number): boolean {
    const b = this.open.get(partitionKey(topic, partition));
    return b !== undefined && b.records.length > 0 && b.bytes + size > this.options.batchBytes;
  }

  /** Adds a record to the partition's open batch (opening one if needed). True if a batch was opened. */
  append(
    topic: string,
    partition: number,
    record: WireRecord,
    size: number,
    owner: SendState,
    index: number,
  ): boolean {
    const key = partitionKey(topic, partition);
    let b = this.open.get(key);
    let opened = false;
    if (b === undefined) {
      b = new OpenBatch(topic, partition, this.now());
      this.open.set(key, b);
      opened = true;
    }
    b.add(record, size, owner, index);
    if (b.bytes >= this.options.batchBytes) this.seal(topic, partition);
    return opened;
  }

  /** Seals the open batch of a partition, if any. */
  seal(topic: string, partition: number): void {
    const key = partitionKey(topic, partition);
    const b = this.open.get(key);
    if (b === undefined) return;
    this.open.delete(key);
    this.ready.push(new SealedBatch(topic, partition, this.encode(b), b));
    this.options.onSealed(topic, partition);
  }

  /** Seals every open batch. */
  sealAll(): void {
    for (const b of [...this.open.values()]) this.seal(b.topic, b.partition);
  }

  /**
   * Seals open batches created at least `lingerMs` ago; returns the time (ms) until the next open
   * batch expires, or undefined if none is open.
   */
  sealExpired(lingerMs: number): number | undefined {
    const now = this.now();
    let next: number | undefined;
    for (const b of [...this.open.values()]) {
      const due = b.createdAt + lingerMs - now;
      if (due <= 0) this.seal(b.topic, b.partition);
      else next = next === undefined ? due : Math.min(next, due);
    }
    return next;
  }

  get openCount(): number {
    return this.open.size;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  /** Every sealed batch still queued (for flush). */
  readyBatches(): readonly SealedBatch[] {
    return this.ready;
  }

  /**
   * Takes, in seal order, ready batches for one Produce stream: skipping partitions in `busy` (a
   * partition is in at most one stream at a time, which keeps its order), until `maxBytes` of encoded
   * batches (at least one batch).
   */
  takeReady(maxBytes: number, busy: ReadonlySet<string>): SealedBatch[] {
    const taken: SealedBatch[] = [];
    const kept: SealedBatch[] = [];
    // Partitions with a batch left behind: their later batches stay behind too, to keep order.
    const skipped = new Set<string>();
    let bytes = 0;
    for (const b of this.ready) {
      const key = b.key;
      const fits = taken.length === 0 || bytes + b.encoded.length <= maxBytes;
      if (fits && !busy.has(key) && !skipped.has(key)) {
        taken.push(b);
        bytes += b.encoded.length;
      } else {
        kept.push(b);
        skipped.add(key);
      }
    }
    if (taken.length > 0) this.ready = kept;
    return taken;
  }

  private encode(b: OpenBatch): Buffer {
    const { compression, durability } = this.options;
    let bytes: Uint8Array;
    if (compression === "gzip") {
      const plain = RecordBatch.encode({ records: b.records }).finish();
      bytes = ProduceRequest.encode({
        topic: b.topic,
        partition: b.partition,
        records: undefined,
        compression: Compression.COMPRESSION_GZIP,
        compressedRecords: gzipSync(plain),
        recordCount: b.records.length,
        durability,
      }).finish();
    } else {
      bytes = ProduceRequest.encode({
        topic: b.topic,
        partition: b.partition,
        records: { records: b.records },
        compression: Compression.COMPRESSION_NONE,
        compressedRecords: EMPTY,
        recordCount: 0,
        durability,
      }).finish();
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

const EMPTY = Buffer.alloc(0);
