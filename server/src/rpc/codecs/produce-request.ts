/**
 * A lazy, wire-compatible view of rill.v1.ProduceRequest (DESIGN §3.1). grpc-js hands the broker
 * the raw request bytes; this reads the scalar fields and keeps the RecordBatch (field 3) or the
 * compressed records (field 5) as a subarray of the request buffer, without decoding records.
 * Clients encode the same message with the generated, fully typed codec.
 *
 * The deserializer never throws: a malformed request becomes a view with `malformed` set, so the
 * handler can answer INVALID_ARGUMENT with a useful message instead of grpc-js's generic error.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export interface ProduceRequestView {
  topic: string;
  partition: number;
  /** Field 3 exactly as sent (an encoded RecordBatch), or null when absent. */
  records: Uint8Array | null;
  /** rill.v1.Compression number. */
  compression: number;
  /** Field 5 exactly as sent, or null when absent. */
  compressedRecords: Uint8Array | null;
  /** Field 6: the producer's count, used only for compressed batches. */
  recordCount: number;
  /** rill.v1.Durability number. */
  durability: number;
  /** Why the bytes are not a valid ProduceRequest, if they are not. */
  malformed?: string;
}

/**
 * Checks the length prefix at the reader's position against the bytes left, reading it as the full
 * varint: BinaryReader reads lengths as uint32, so a length of 2^32 + n would silently become n and
 * the rest of the field would be read as more fields. Leaves the reader where it was.
 */
export function checkLength(reader: BinaryReader, name: string): void {
  const start = reader.pos;
  const len = BigInt(reader.uint64());
  const remaining = reader.len - reader.pos;
  if (len > BigInt(remaining))
    throw new Error(`field ${name} claims ${len} bytes but only ${remaining} remain`);
  reader.pos = start;
}

export function decodeProduceRequestView(buffer: Buffer): ProduceRequestView {
  const view: ProduceRequestView = {
    topic: "",
    partition: 0,
    records: null,
    compression: 0,
    compressedRecords: null,
    recordCount: 0,
    durability: 0,
  };
  try {
    const reader = new BinaryReader(buffer);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      const expect = (wt: WireType, name: string) => {
        if (wireType !== wt) throw new Error(`field ${name} has wire type ${wireType}, expected ${wt}`);
        if (wt === WireType.LengthDelimited) checkLength(reader, name);
      };
      switch (field) {
        case 1:
          expect(WireType.LengthDelimited, "topic");
          view.topic = reader.string();
          break;
        case 2:
          expect(WireType.Varint, "partition");
          view.partition = reader.int32();
          break;
        case 3:
          expect(WireType.LengthDelimited, "records");
          view.records = reader.bytes();
          break;
        case 4:
          expect(WireType.Varint, "compression");
          view.compression = reader.int32();
          break;
        case 5:
          expect(WireType.LengthDelimited, "compressed_records");
          view.compressedRecords = reader.bytes();
          break;
        case 6:
          expect(WireType.Varint, "record_count");
          view.recordCount = reader.uint32();
          break;
        case 7:
          expect(WireType.Varint, "durability");
          view.durability = reader.int32();
          break;
        default:
          if (field === 0) throw new Error("field number 0");
          // Unknown fields too: reader.skip() reads their length as uint32.
          if (wireType === WireType.LengthDelimited) checkLength(reader, `number ${field}`);
          reader.skip(wireType, field);
      }
    }
  } catch (err) {
    view.malformed = `malformed ProduceRequest: ${(err as Error).message}`;
  }
  return view;
}
