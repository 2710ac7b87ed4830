/**
 * The producer's record accumulator: one open batch per (topic, partition) being filled, and a queue
 * of sealed batches ready to send. A batch is sealed when the next record would take it past
 * `batchBytes`, when its linger time runs out, or on flush. Records are encoded as they are appended
 * (see `batch-encoder.ts`); sealing finishes the `ProduceRequest` bytes, once (gzip-compressed with
 * the generated codec if asked); retries resend those bytes. Open batches are found by topic, then
 * by partition index, so the per-record path builds no string keys.
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
import { Compression } from "../gen/rill/v1/record.js";
import { BatchEncoder } from "./batch-encoder.js";
import { KeyCounts } from "./key-counts.js";
import type { Prepared } from "./producer-record.js";

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
    // The send hands this promise on; should a state ever be failed with nobody awaiting it, that
    // must not become an unhandled rejection (fatal on Node >= 15).
    this.promise.catch(() => {});
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
  readonly encoder: BatchEncoder;
  readonly owners: SendState[] = [];
  readonly ownerIndex: number[] = [];
  readonly sends: SendState[] = [];
  bytes = 0;
  private lastOwner: SendState | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly createdAt: number,
    expectedBytes: number,
  ) {
    this.encoder = new BatchEncoder(topic, partition, expectedBytes);
  }

  get recordCount(): number {
    return this.owners.length;
  }

  /** Adds record `index` of a send. */
  add(p: Prepared, index: number, owner: SendState): void {
    this.encoder.append(p.keys[index]!, p.values[index]!, p.headers[index]!, p.timestamps[index]);
    this.owners.push(owner);
    this.ownerIndex.push(index);
    this.bytes += p.sizes[index]!;
    if (owner !== this.lastOwner) {
      this.lastOwner = owner;
      this.sends.push(owner);
      owner.pendingBatches++;
    }
  }
}

/** Seal order of every batch of the process (a batch of a partition sealed later has a larger one). */
let sealCount = 0;

/** A batch encoded and queued for (re)sending. */
export class SealedBatch {
  /** The encoded ProduceRequest, sent as is on every attempt. */
  readonly encoded: Buffer;
  readonly recordCount: number;
  /** Bytes accounted against the producer's buffer (released when the batch settles). */
  readonly bufferedBytes: number;
  /** When it was sealed, relative to the other batches (resends go out in this order). */
  readonly order = ++sealCount;
  /** Failed attempts so far (the session sender's retry budget). */
  failedAttempts = 0;
  /** When its first attempt failed (ms since the epoch), if one did. */
  firstFailureAt: number | undefined;
  /** Not to be resent before this time (ms since the epoch): the backoff after a failure. */
  notBefore = 0;
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
    this.recordCount = open.recordCount;
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
    let offset = baseOffset;
    for (let i = 0; i < owners.length; i++) {
      owners[i]!.results[ownerIndex[i]!] = { topic: this.topic, partition: this.partition, offset };
      if (known) offset++;
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
    // Drop the owners so memory goes as soon as the batch settles.
    this.open.owners.length = 0;
    this.open.ownerIndex.length = 0;
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

/** A topic's open batches, and the encoded size of each partition's last batch, by partition. */
interface TopicBatches {
  open: (OpenBatch | undefined)[];
  lastBytes: number[];
}

/** Open batches per partition, and sealed batches in the order they were sealed. */
export class Accumulator {
  /** Open batches by topic, indexed by partition. */
  private readonly byTopic = new Map<string, TopicBatches>();
  /** The same open batches, in the order they were opened (linger and flush seal in this order). */
  private readonly open = new Set<OpenBatch>();
  /** How many sealed batches each partition (`partitionKey`) has in `ready`. */
  private readonly readyPerPartition = new KeyCounts();
  private ready: SealedBatch[] = [];
  private readonly now: () => number;

  constructor(private readonly options: AccumulatorOptions) {
    this.now = options.now ?? Date.now;
  }

  private openBatch(topic: string, partition: number): OpenBatch | undefined {
    return this.byTopic.get(topic)?.open[partition];
  }

  /** True if adding `size` bytes would take the open batch of the partition past batchBytes. */
  wouldOverflow(topic: string, partition: number, size: number): boolean {
    const b = this.openBatch(topic, partition);
    return b !== undefined && b.recordCount > 0 && b.bytes + size > this.options.batchBytes;
  }

  /** The accumulator's clock (ms). */
  time(): number {
    return this.now();
  }

  /**
   * Adds record `index` of a prepared send to the partition's open batch (opening one if needed,
   * created at `now`: pass one time for all the records of a send, so that its batches linger
   * together). True if a batch was opened.
   */
  append(
    topic: string,
    partition: number,
    prepared: Prepared,
    index: number,
    owner: SendState,
    now = this.now(),
  ): boolean {
    let batches = this.byTopic.get(topic);
    if (batches === undefined) {
      batches = { open: [], lastBytes: [] };
      this.byTopic.set(topic, batches);
    }
    let b = batches.open[partition];
    let opened = false;
    if (b === undefined) {
      // Size the buffer like the partition's last batch, so a steady stream never regrows it.
      const last = Math.min(batches.lastBytes[partition] ?? 0, 1.25 * this.options.batchBytes);
      const expected = last + 2 * prepared.sizes[index]!;
      b = new OpenBatch(topic, partition, now, expected);
      batches.open[partition] = b;
      this.open.add(b);
      opened = true;
    }
    b.add(prepared, index, owner);
    if (b.bytes >= this.options.batchBytes) this.seal(topic, partition);
    return opened;
  }

  /** Seals the open batch of a partition, if any. */
  seal(topic: string, partition: number): void {
    const batches = this.byTopic.get(topic);
    const b = batches?.open[partition];
    if (b === undefined) return;
    batches!.open[partition] = undefined;
    batches!.lastBytes[partition] = b.encoder.recordBytes;
    this.open.delete(b);
    this.ready.push(new SealedBatch(topic, partition, this.encode(b), b));
    this.readyPerPartition.add(partitionKey(topic, partition));
    this.options.onSealed(topic, partition);
  }

  /** Seals every open batch. */
  sealAll(): void {
    for (const b of [...this.open]) this.seal(b.topic, b.partition);
  }

  /**
   * Seals open batches created at least `lingerMs` ago, except those of partitions `holds` names
   * (they keep filling; see `sealIfExpired`); returns the time (ms) until the next open batch
   * expires, or undefined if none will.
   */
  sealExpired(lingerMs: number, holds?: (topic: string, partition: number) => boolean): number | undefined {
    const now = this.now();
    let next: number | undefined;
    for (const b of [...this.open]) {
      const due = b.createdAt + lingerMs - now;
      if (due > 0) next = next === undefined ? due : Math.min(next, due);
      else if (holds === undefined || !holds(b.topic, b.partition)) this.seal(b.topic, b.partition);
    }
    return next;
  }

  /** Seals the partition's open batch if it was created at least `lingerMs` ago. */
  sealIfExpired(topic: string, partition: number, lingerMs: number): void {
    const b = this.openBatch(topic, partition);
    if (b !== undefined && b.createdAt + lingerMs <= this.now()) this.seal(topic, partition);
  }

  get openCount(): number {
    return this.open.size;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  /** True if the partition has a sealed batch not taken yet. */
  hasReady(topic: string, partition: number): boolean {
    return this.readyPerPartition.has(partitionKey(topic, partition));
  }

  /** Counts `taken` out of the ready queue's per-partition tally. */
  private counted(taken: SealedBatch[]): SealedBatch[] {
    for (const b of taken) this.readyPerPartition.remove(b.key);
    return taken;
  }

  /** Every sealed batch still queued (for flush). */
  readyBatches(): readonly SealedBatch[] {
    return this.ready;
  }

  /**
   * Takes, in seal order, ready batches for one Produce stream: skipping partitions in `busy` (a
   * partition is in at most one stream at a time, which keeps its order), until `maxBytes` of encoded
   * batches (at least one batch) or `maxBatches` batches.
   */
  takeReady(
    maxBytes: number,
    busy: { readonly size: number; has(key: string): boolean },
    maxBatches = Number.POSITIVE_INFINITY,
  ): SealedBatch[] {
    if (busy.size === 0 && maxBytes === Number.POSITIVE_INFINITY) {
      // Nothing to skip: a prefix of the queue.
      return this.counted(this.ready.splice(0, Math.max(1, Math.min(maxBatches, this.ready.length))));
    }
    const taken: SealedBatch[] = [];
    const kept: SealedBatch[] = [];
    // Partitions with a batch left behind: their later batches stay behind too, to keep order.
    const skipped = new Set<string>();
    let bytes = 0;
    for (const b of this.ready) {
      const key = b.key;
      const fits = taken.length === 0 || (bytes + b.encoded.length <= maxBytes && taken.length < maxBatches);
      if (fits && !busy.has(key) && !skipped.has(key)) {
        taken.push(b);
        bytes += b.encoded.length;
      } else {
        kept.push(b);
        skipped.add(key);
      }
    }
    if (taken.length > 0) this.ready = kept;
    return this.counted(taken);
  }

  private encode(b: OpenBatch): Buffer {
    const { compression, durability } = this.options;
    if (compression === "none") return b.encoder.finish(durability);
    const bytes = ProduceRequest.encode({
      topic: b.topic,
      partition: b.partition,
      records: undefined,
      compression: Compression.COMPRESSION_GZIP,
      compressedRecords: gzipSync(b.encoder.records()),
      recordCount: b.recordCount,
      durability,
    }).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}
