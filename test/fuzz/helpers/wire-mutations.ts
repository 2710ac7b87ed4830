/**
 * Seeded mutations of valid Protobuf encodings, for fuzzing the broker's request decoding.
 *
 * A request is parsed into a tree of fields (a length-delimited payload that itself parses as a
 * message, up to MAX_DEPTH, gets children), one node is mutated, and the tree is written back with
 * every *other* length recomputed: so a lying length, a duplicated field or a wrong wire type
 * stays local to the field it was applied to, deep inside a RecordBatch as well as at the top.
 * Byte-level mutations (bit flips, truncation, splicing, insertion) work on the encoded bytes.
 *
 * Everything here is a pure function of its inputs (fast-check supplies the randomness), so a
 * failing case is reproduced by the seed alone.
 */
import fc from "fast-check";

const MAX_DEPTH = 5;

interface Field {
  field: number;
  wire: number;
  /** The payload as encoded (varint bytes, fixed bytes, or the LEN payload without its length). */
  payload: Buffer;
  /** For LEN fields whose payload parses as a message. */
  children?: Field[];
  /** A length written instead of the real one (a lie). */
  lengthOverride?: bigint;
  /** A wire type written in the tag instead of the real one (payload kept). */
  wireOverride?: number;
}

function readVarint(buf: Buffer, pos: number): [bigint, number] | null {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) return null;
    const b = buf[pos++]!;
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) return [value, pos];
  }
  return null;
}

export function varint(value: bigint): Buffer {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return Buffer.from(out);
}

/** The fields of `buf` as a message, or null when it does not parse exactly. */
function parse(buf: Buffer, depth: number): Field[] | null {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    if (!tag || tag[0] > 0xffffffffn) return null;
    const field = Number(tag[0] >> 3n);
    const wire = Number(tag[0] & 7n);
    if (field === 0) return null;
    pos = tag[1];
    let end: number;
    let start = pos;
    if (wire === 0) {
      const v = readVarint(buf, pos);
      if (!v) return null;
      end = v[1];
    } else if (wire === 1) end = pos + 8;
    else if (wire === 5) end = pos + 4;
    else if (wire === 2) {
      const len = readVarint(buf, pos);
      if (!len) return null;
      start = len[1];
      end = start + Number(len[0]);
    } else return null;
    if (end > buf.length) return null;
    const payload = buf.subarray(start, end);
    const f: Field = { field, wire, payload };
    if (wire === 2 && depth < MAX_DEPTH && payload.length > 0) {
      const children = parse(payload, depth + 1);
      if (children) f.children = children;
    }
    fields.push(f);
    pos = end;
  }
  return fields;
}

function write(fields: Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    parts.push(varint(BigInt(f.field) * 8n + BigInt(f.wireOverride ?? f.wire)));
    if (f.wire === 2) {
      const payload = f.children ? write(f.children) : f.payload;
      parts.push(varint(f.lengthOverride ?? BigInt(payload.length)), payload);
    } else parts.push(f.payload);
  }
  return Buffer.concat(parts);
}

/** Every field of the tree with the list that holds it, depth first. */
function flatten(fields: Field[], out: { list: Field[]; index: number }[] = []) {
  fields.forEach((f, index) => {
    out.push({ list: fields, index });
    if (f.children) flatten(f.children, out);
  });
  return out;
}

/** Lengths that no allocation should ever trust. */
export const HUGE_LENGTHS = [
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 35n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** int32/int64/uint64 extremes, as the varint that encodes them. */
export const EXTREME_VALUES = [
  0n,
  1n,
  -1n,
  2n ** 31n - 1n,
  -(2n ** 31n),
  2n ** 32n - 1n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
];

export type MutationKind =
  | "bitflip"
  | "truncate"
  | "splice"
  | "insert"
  | "hugeLength"
  | "lengthOffByOne"
  | "duplicate"
  | "drop"
  | "wireType"
  | "extremeVarint";

export interface Mutation {
  kind: MutationKind;
  a: number;
  b: number;
  bytes: Uint8Array;
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<MutationKind>(
    "bitflip",
    "truncate",
    "splice",
    "insert",
    "hugeLength",
    "lengthOffByOne",
    "duplicate",
    "drop",
    "wireType",
    "extremeVarint",
  ),
  a: fc.nat(),
  b: fc.nat(),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
});

/** Applies one mutation; `other` is a second valid request (for splicing). */
export function mutate(input: Buffer, m: Mutation, other: Buffer): Buffer {
  const len = input.length;
  switch (m.kind) {
    case "bitflip": {
      if (len === 0) return Buffer.from(m.bytes);
      const out = Buffer.from(input);
      out[m.a % len]! ^= 1 << (m.b % 8);
      return out;
    }
    case "truncate":
      return input.subarray(0, len === 0 ? 0 : m.a % len);
    case "splice":
      return Buffer.concat([input.subarray(0, m.a % (len + 1)), other.subarray(m.b % (other.length + 1))]);
    case "insert": {
      const at = m.a % (len + 1);
      return Buffer.concat([input.subarray(0, at), Buffer.from(m.bytes), input.subarray(at)]);
    }
    default:
      return mutateTree(input, m);
  }
}

function mutateTree(input: Buffer, m: Mutation): Buffer {
  const tree = parse(input, 0);
  if (!tree || tree.length === 0) return mutate(input, { ...m, kind: "bitflip" }, input);
  const nodes = flatten(tree);
  const pick = (want: (f: Field) => boolean) => {
    const fitting = nodes.filter((n) => want(n.list[n.index]!));
    return fitting.length === 0 ? undefined : fitting[m.a % fitting.length]!;
  };
  switch (m.kind) {
    case "hugeLength":
    case "lengthOffByOne": {
      const n = pick((f) => f.wire === 2);
      if (!n) break;
      const f = n.list[n.index]!;
      const real = BigInt(f.children ? write(f.children).length : f.payload.length);
      f.lengthOverride =
        m.kind === "hugeLength" ? HUGE_LENGTHS[m.b % HUGE_LENGTHS.length]! : real + BigInt((m.b % 3) + 1);
      break;
    }
    case "duplicate": {
      const n = pick(() => true)!;
      n.list.splice(n.index, 0, n.list[n.index]!);
      break;
    }
    case "drop": {
      const n = pick(() => true)!;
      n.list.splice(n.index, 1);
      break;
    }
    case "wireType": {
      const n = pick(() => true)!;
      const f = n.list[n.index]!;
      f.wireOverride = (f.wire + 1 + (m.b % 7)) % 8;
      break;
    }
    case "extremeVarint": {
      const n = pick((f) => f.wire === 0);
      if (!n) break;
      n.list[n.index]!.payload = varint(EXTREME_VALUES[m.b % EXTREME_VALUES.length]!);
      break;
    }
    default:
      break;
  }
  return write(tree);
}

/** One fuzz request for a method: random bytes, a valid request, or 1-3 mutations of one. */
export function requestArb(seeds: Buffer[]): fc.Arbitrary<Buffer> {
  const seed = fc.constantFrom(...seeds);
  return fc.oneof(
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: seed },
    {
      weight: 7,
      arbitrary: fc
        .tuple(seed, fc.array(fc.tuple(mutationArb, seed), { minLength: 1, maxLength: 3 }))
        .map(([s, ms]) => ms.reduce((b, [m, other]) => mutate(b, m, other), s)),
    },
  );
}
