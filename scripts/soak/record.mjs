// The soak's record values and the per-partition bookkeeping every reader of them shares.
//
// Value layout (big-endian), `valueBytes` long (at least 16):
//   [0, 2)   producer id (uint16)
//   [2, 6)   the producer's sequence number of this record (uint32, 0, 1, 2, ... per producer)
//   [6, 10)  CRC32C of bytes [0, 6) followed by bytes [10, end)
//   [10, end) filler derived from (producer, seq), so a corrupted byte changes the CRC
// Key: "p<producer>-k<seq mod 16>", so the default murmur2 partitioner spreads one producer's records
// over several partitions of a topic.
//
// PartitionReader invariants: it is fed the records of ONE partition in the order a reader received
// them; it counts every record whose offset is not exactly the next expected one (gaps, repeats),
// every value whose CRC fails, and every producer sequence that does not increase within the
// partition (order). Its digest is a CRC32C chained over (offset, producer, seq) of every record in
// order, so two readers that saw the same records at the same offsets have the same digest.
import { crc32c } from "@node-rs/crc32";

export const HEADER_BYTES = 10;

/** The value of record `seq` of producer `producer`. */
export function encodeValue(producer, seq, valueBytes) {
  const v = Buffer.allocUnsafe(valueBytes);
  v.writeUInt16BE(producer, 0);
  v.writeUInt32BE(seq, 2);
  const seed = (producer * 31 + seq * 17) & 0xff;
  for (let i = HEADER_BYTES; i < valueBytes; i++) v[i] = (seed + i) & 0xff;
  v.writeUInt32BE(checksum(v), 6);
  return v;
}

export function keyOf(producer, seq) {
  return `p${producer}-k${seq % 16}`;
}

function checksum(v) {
  return crc32c(v.subarray(HEADER_BYTES), crc32c(v.subarray(0, 6)));
}

/** { producer, seq } of a value, or null when it is too short or its CRC does not match. */
export function decodeValue(v) {
  if (v.length < HEADER_BYTES) return null;
  if (v.readUInt32BE(6) !== checksum(v)) return null;
  return { producer: v.readUInt16BE(0), seq: v.readUInt32BE(2) };
}

const MAX_EXAMPLES = 5;

/** Reads one partition in order (see the file header). */
export class PartitionReader {
  constructor(label, start = 0) {
    this.label = label;
    this.next = start;
    this.count = 0;
    this.gaps = 0;
    this.repeats = 0;
    this.badCrc = 0;
    this.orderViolations = 0;
    this.digest = 0;
    this.examples = [];
    this.lastSeq = new Map();
    this.scratch = Buffer.alloc(14);
  }

  /** Feeds one record (offset: number); returns the decoded value or null. */
  add(offset, value) {
    this.count++;
    if (offset > this.next) {
      this.gaps++;
      this.example(`offset ${offset} follows ${this.next - 1}: ${offset - this.next} record(s) missing`);
    } else if (offset < this.next) {
      this.repeats++;
      this.example(`offset ${offset} again after ${this.next - 1}`);
    }
    this.next = Math.max(this.next, offset + 1);
    const d = decodeValue(value);
    if (d === null) {
      this.badCrc++;
      this.example(`offset ${offset}: value fails its CRC`);
      return null;
    }
    const last = this.lastSeq.get(d.producer);
    if (last !== undefined && d.seq <= last) {
      this.orderViolations++;
      this.example(`offset ${offset}: producer ${d.producer} seq ${d.seq} after seq ${last}`);
    }
    this.lastSeq.set(d.producer, d.seq);
    const s = this.scratch;
    s.writeUIntBE(offset, 0, 6);
    s.writeUInt16BE(d.producer, 6);
    s.writeUInt32BE(d.seq, 8);
    this.digest = crc32c(s.subarray(0, 12), this.digest);
    return d;
  }

  example(text) {
    if (this.examples.length < MAX_EXAMPLES) this.examples.push(`${this.label}: ${text}`);
  }

  summary() {
    return {
      next: this.next,
      count: this.count,
      gaps: this.gaps,
      repeats: this.repeats,
      badCrc: this.badCrc,
      orderViolations: this.orderViolations,
      digest: this.digest,
      examples: this.examples,
    };
  }
}
