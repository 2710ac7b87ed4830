/**
 * Reading a partition the way a paranoid client would, for crash tests: Fetch responses are taken
 * as raw bytes and walked frame by frame with the storage layer's own frame parser and CRC check
 * (server/src/storage/batch-frame.ts, the disk format is the wire format), so a torn or garbage
 * batch served after a crash is caught, not silently decoded. Segment files are walked the same way.
 *
 * Invariants: every batch returned passed its CRC32C; a walk stops with an error (never skips) at
 * the first bad frame; every call has a deadline; a following read stops on `stop()`.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  Durability,
  FetchRequest,
  FetchResponse,
  OffsetPosition,
  ProduceRequest,
  ProduceResponse,
} from "../../../clients/ts/src/gen/rill/v1/log.js";
import { Compression, RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import { isFrameProblem, parseFrameHeader, verifyFrameCrc } from "../../../server/src/storage/batch-frame.js";

export { Durability };

/** One stored batch, CRC checked, records decoded. */
export interface CheckedBatch {
  baseOffset: bigint;
  recordCount: number;
  values: string[];
}

/**
 * Walks the frames at the start of `buf` (a Fetch response or a segment file). Returns the batches
 * and where the frames end; throws (with `where`) on a bad frame or CRC, or an incomplete frame
 * when `allowIncompleteTail` is false.
 */
export function walkFrames(
  buf: Buffer,
  where: string,
  allowIncompleteTail = false,
): { batches: CheckedBatch[]; end: number; tail: string | null } {
  const batches: CheckedBatch[] = [];
  let pos = 0;
  while (pos < buf.length && buf[pos] === 0x0a) {
    const header = parseFrameHeader(buf, pos, buf.length);
    if (isFrameProblem(header)) {
      if (header.incomplete && allowIncompleteTail) return { batches, end: pos, tail: header.problem };
      throw new Error(`${where}: bad frame at byte ${pos}: ${header.problem}`);
    }
    if (pos + header.frameBytes > buf.length) {
      if (allowIncompleteTail) return { batches, end: pos, tail: "frame cut short" };
      throw new Error(`${where}: frame at byte ${pos} cut short`);
    }
    if (!verifyFrameCrc(buf, pos, header)) {
      if (allowIncompleteTail) return { batches, end: pos, tail: "bad CRC" };
      throw new Error(`${where}: batch at offset ${header.baseOffset} (byte ${pos}) fails its CRC`);
    }
    const records = buf.subarray(pos + header.recordsStart, pos + header.frameBytes);
    const decoded = RecordBatch.decode(records).records;
    if (decoded.length !== header.recordCount) {
      throw new Error(
        `${where}: batch at offset ${header.baseOffset} says ${header.recordCount} records, holds ${decoded.length}`,
      );
    }
    batches.push({
      baseOffset: header.baseOffset,
      recordCount: header.recordCount,
      values: decoded.map((r) => Buffer.from(r.value).toString("latin1")),
    });
    pos += header.frameBytes;
  }
  return { batches, end: pos, tail: null };
}

const FETCH = "/rill.v1.LogService/Fetch";
const PRODUCE = "/rill.v1.LogService/Produce";

/** A raw LogService client: Fetch answers as bytes, Produce with a deadline. */
export class RawLogClient {
  private readonly client: Client;

  constructor(readonly address: string) {
    this.client = new Client(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
    });
  }

  close(): void {
    this.client.close();
  }

  /** Appends one batch of `values`; resolves with the base offset, or the error (never rejects). */
  produce(
    topic: string,
    partition: number,
    values: string[],
    durability: Durability,
    deadlineMs = 5_000,
  ): Promise<{ baseOffset?: bigint; error?: ServiceError }> {
    return new Promise((resolve) => {
      const request: ProduceRequest = {
        topic,
        partition,
        records: {
          records: values.map((v) => ({
            key: Buffer.alloc(0),
            value: Buffer.from(v, "latin1"),
            headers: [],
            timestampMs: undefined,
          })),
        },
        compression: Compression.COMPRESSION_UNSPECIFIED,
        compressedRecords: Buffer.alloc(0),
        recordCount: 0,
        durability,
      };
      const call = this.client.makeClientStreamRequest<ProduceRequest, ProduceResponse>(
        PRODUCE,
        (r) => Buffer.from(ProduceRequest.encode(r).finish()),
        (b) => ProduceResponse.decode(b),
        new Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => {
          if (err) resolve({ error: err });
          else resolve({ baseOffset: res!.results[0]!.baseOffset });
        },
      );
      call.write(request);
      call.end();
    });
  }

  /**
   * Fetches from `from` (non-following) up to the high watermark of the call's start; every batch
   * is CRC checked. Rejects on a gRPC error or a bad batch.
   */
  fetchAll(
    topic: string,
    partition: number,
    from: bigint | "earliest" = 0n,
    deadlineMs = 15_000,
  ): Promise<{ batches: CheckedBatch[]; highWatermark: bigint; logStartOffset: bigint }> {
    return new Promise((resolve, reject) => {
      const batches: CheckedBatch[] = [];
      let highWatermark = -1n;
      let logStartOffset = -1n;
      const call = this.startFetch(topic, partition, from, false, deadlineMs);
      call.on("data", (buf: Buffer) => {
        try {
          const walked = walkFrames(buf, `fetch ${topic}/${partition}`);
          batches.push(...walked.batches);
          const rest = FetchResponse.decode(buf.subarray(walked.end));
          if (rest.batches.length > 0) throw new Error("frames after the scalar fields of a FetchResponse");
          highWatermark = rest.highWatermark;
          logStartOffset = rest.logStartOffset;
        } catch (err) {
          call.cancel();
          reject(err);
        }
      });
      call.on("error", (err: ServiceError) => {
        if (err.code !== status.CANCELLED) reject(err);
      });
      call.on("end", () => resolve({ batches, highWatermark, logStartOffset }));
    });
  }

  /**
   * Follows the partition from `from`, calling `onBatch` with every CRC-checked batch; resolves
   * when the stream ends (error, broker gone, or `stop`). `stop()` cancels it.
   */
  follow(
    topic: string,
    partition: number,
    from: bigint,
    onBatch: (b: CheckedBatch) => void,
  ): { done: Promise<ServiceError | Error | null>; stop(): void } {
    const call = this.startFetch(topic, partition, from, true, 0);
    const done = new Promise<ServiceError | Error | null>((resolve) => {
      call.on("data", (buf: Buffer) => {
        try {
          for (const b of walkFrames(buf, `follow ${topic}/${partition}`).batches) onBatch(b);
        } catch (err) {
          call.cancel();
          resolve(err as Error);
        }
      });
      call.on("error", (err: ServiceError) => resolve(err.code === status.CANCELLED ? null : err));
      call.on("end", () => resolve(null));
    });
    return { done, stop: () => call.cancel() };
  }

  private startFetch(
    topic: string,
    partition: number,
    from: bigint | "earliest",
    follow: boolean,
    deadlineMs: number,
  ) {
    const request: FetchRequest = {
      topic,
      partition,
      start:
        from === "earliest"
          ? { $case: "position", value: OffsetPosition.OFFSET_POSITION_EARLIEST }
          : { $case: "offset", value: from },
      maxBytes: 0,
      follow,
    };
    return this.client.makeServerStreamRequest<FetchRequest, Buffer>(
      FETCH,
      (r) => Buffer.from(FetchRequest.encode(r).finish()),
      (b) => b,
      request,
      new Metadata(),
      deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {},
    );
  }
}

/** What the segment files of a partition directory hold, walked with the storage frame parser. */
export interface SegmentScan {
  batches: CheckedBatch[];
  /** The first problem found (torn tail, bad CRC, gap between files), or null if every byte is good. */
  problem: string | null;
}

/**
 * Walks every `<base>.log` of `dir` in order: frames, CRCs, dense offsets from each file's base and
 * across files. Stops at the first problem (recovery would cut there).
 */
export async function scanPartitionDir(dir: string): Promise<SegmentScan> {
  const files = (await readdir(dir)).filter((n) => /^\d{20}\.log$/.test(n)).sort();
  const batches: CheckedBatch[] = [];
  let expected: bigint | null = null;
  for (const name of files) {
    const base = BigInt(name.slice(0, 20));
    if (expected !== null && base !== expected)
      return { batches, problem: `${name} starts at ${base}, the previous file ends at ${expected}` };
    expected = base;
    const buf = await readFile(join(dir, name));
    let walked: ReturnType<typeof walkFrames>;
    try {
      walked = walkFrames(buf, join(dir, name), true);
    } catch (err) {
      return { batches, problem: (err as Error).message };
    }
    for (const b of walked.batches) {
      if (b.baseOffset !== expected)
        return { batches, problem: `${name}: batch at ${b.baseOffset}, expected ${expected}` };
      batches.push(b);
      expected += BigInt(b.recordCount);
    }
    if (walked.tail !== null) return { batches, problem: `${name}: ${walked.tail} at byte ${walked.end}` };
    if (walked.end !== buf.length)
      return { batches, problem: `${name}: ${buf.length - walked.end} bytes of garbage at ${walked.end}` };
  }
  return { batches, problem: null };
}
