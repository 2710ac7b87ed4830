/**
 * Lazy, wire-compatible codecs of LogService.ProduceSession (DESIGN §3.1).
 *
 * Requests: a rill.v1.ProduceSessionRequest is `sequence` (field 1, varint) and the embedded
 * ProduceRequest (field 2, LEN). The view reads the sequence and hands the embedded bytes, as a
 * subarray of the request buffer, to the ProduceRequest view (produce-request.ts): records are never
 * decoded, only counted later by the record walk (record-batch.ts). As the generated decoder does,
 * a repeated field keeps its last occurrence and unknown fields are skipped.
 *
 * The deserializer never throws. A broken envelope (no readable sequence: the broker could not say
 * which request an answer is for) sets `malformed` and concerns the whole stream; a broken embedded
 * ProduceRequest sets `produce.malformed` and concerns that batch only (answered with its sequence).
 *
 * Responses: one ProduceSessionResponse per batch, encoded here field by field, byte for byte what
 * the generated encoder writes for the same message (proto3: default scalars omitted).
 */
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { checkLength, decodeProduceRequestView, type ProduceRequestView } from "./produce-request.js";

export interface ProduceSessionRequestView {
  /** Field 1, echoed in the answer. */
  sequence: bigint;
  /** Field 2 read lazily (an empty ProduceRequest when absent, which fails validation). */
  produce: ProduceRequestView;
  /** Why the envelope is not a valid ProduceSessionRequest, if it is not. */
  malformed?: string;
}

const EMPTY = Buffer.alloc(0);

export function decodeProduceSessionRequestView(buffer: Buffer): ProduceSessionRequestView {
  let sequence = 0n;
  let produceStart = 0;
  let produceEnd = 0;
  let malformed: string | undefined;
  try {
    const reader = new BinaryReader(buffer);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      switch (field) {
        case 1:
          if (wireType !== WireType.Varint)
            throw new Error(`field sequence has wire type ${wireType}, expected ${WireType.Varint}`);
          sequence = BigInt.asUintN(64, BigInt(reader.uint64()));
          break;
        case 2: {
          if (wireType !== WireType.LengthDelimited)
            throw new Error(`field produce has wire type ${wireType}, expected ${WireType.LengthDelimited}`);
          // The full varint, not uint32: a length of 2^32 + n must not pass for n.
          const claimed = BigInt(reader.uint64());
          const start = reader.pos;
          if (claimed > BigInt(reader.len - start))
            throw new Error(`field produce claims ${claimed} bytes, past the end`);
          const len = Number(claimed);
          reader.pos = start + len;
          produceStart = start;
          produceEnd = start + len;
          break;
        }
        default:
          if (field === 0) throw new Error("field number 0");
          // Unknown fields too: reader.skip() reads their length as uint32.
          if (wireType === WireType.LengthDelimited) checkLength(reader, `number ${field}`);
          reader.skip(wireType, field);
      }
    }
  } catch (err) {
    malformed = `malformed ProduceSessionRequest: ${(err as Error).message}`;
  }
  const produce = decodeProduceRequestView(
    produceEnd > produceStart ? buffer.subarray(produceStart, produceEnd) : EMPTY,
  );
  return malformed === undefined ? { sequence, produce } : { sequence, produce, malformed };
}

/** Where one batch landed (the fields of rill.v1.ProduceResult). */
export interface SessionResult {
  topic: string;
  partition: number;
  baseOffset: bigint;
  recordCount: number;
  appendTimeMs: number;
}

/** `sequence` (field 1) of a response; written only when not 0, as the generated encoder does. */
function writeSequence(w: BinaryWriter, sequence: bigint): void {
  if (sequence !== 0n) w.uint32(8).uint64(sequence);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A ProduceSessionResponse with `outcome.result`. */
export function encodeSessionResult(sequence: bigint, r: SessionResult): Buffer {
  const w = new BinaryWriter();
  writeSequence(w, sequence);
  w.uint32(18).fork();
  if (r.topic !== "") w.uint32(10).string(r.topic);
  if (r.partition !== 0) w.uint32(16).int32(r.partition);
  if (r.baseOffset !== 0n) w.uint32(24).int64(r.baseOffset);
  if (r.recordCount !== 0) w.uint32(32).uint32(r.recordCount);
  if (r.appendTimeMs !== 0) w.uint32(40).int64(r.appendTimeMs);
  w.join();
  return toBuffer(w.finish());
}

/** A ProduceSessionResponse with `outcome.error`. */
export function encodeSessionError(sequence: bigint, code: number, message: string): Buffer {
  const w = new BinaryWriter();
  writeSequence(w, sequence);
  w.uint32(26).fork();
  if (code !== 0) w.uint32(8).int32(code);
  if (message !== "") w.uint32(18).string(message);
  w.join();
  return toBuffer(w.finish());
}
