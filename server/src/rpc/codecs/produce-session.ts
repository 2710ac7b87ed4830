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
 * Responses: one ProduceSessionResponse per batch, encoded here field by field into one sized
 * Buffer (wire-writer.ts), byte for byte what the generated encoder writes for the same message
 * (proto3: default scalars omitted).
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { checkLength, decodeProduceRequestView, type ProduceRequestView } from "./produce-request.js";
import {
  lengthFieldSize,
  stringFieldSize,
  varintFieldSize,
  writeStringField,
  writeVarint,
  writeVarintField,
} from "./wire-writer.js";

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

/** A ProduceSessionResponse with `outcome.result` (field 2, a ProduceResult). */
export function encodeSessionResult(sequence: bigint, r: SessionResult): Buffer {
  const result =
    stringFieldSize(r.topic) +
    varintFieldSize(r.partition) +
    varintFieldSize(r.baseOffset) +
    varintFieldSize(r.recordCount) +
    varintFieldSize(r.appendTimeMs);
  const out = Buffer.allocUnsafe(varintFieldSize(sequence) + lengthFieldSize(result));
  let pos = writeVarintField(out, 0, 0x08, sequence);
  out[pos] = 0x12;
  pos = writeVarint(out, pos + 1, result);
  pos = writeStringField(out, pos, 0x0a, r.topic);
  pos = writeVarintField(out, pos, 0x10, r.partition);
  pos = writeVarintField(out, pos, 0x18, r.baseOffset);
  pos = writeVarintField(out, pos, 0x20, r.recordCount);
  writeVarintField(out, pos, 0x28, r.appendTimeMs);
  return out;
}

/** A ProduceSessionResponse with `outcome.error` (field 3, a ProduceError). */
export function encodeSessionError(sequence: bigint, code: number, message: string): Buffer {
  const error = varintFieldSize(code) + stringFieldSize(message);
  const out = Buffer.allocUnsafe(varintFieldSize(sequence) + lengthFieldSize(error));
  let pos = writeVarintField(out, 0, 0x08, sequence);
  out[pos] = 0x1a;
  pos = writeVarint(out, pos + 1, error);
  pos = writeVarintField(out, pos, 0x08, code);
  writeStringField(out, pos, 0x12, message);
  return out;
}
