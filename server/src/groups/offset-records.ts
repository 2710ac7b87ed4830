/**
 * The records of the offset store's internal log (offset-store.ts): how they are encoded and read,
 * and the in-memory state (OffsetState) that applying them in log order gives.
 *
 * Every stored batch is uncompressed and its `records` field is a valid rill.v1.RecordBatch, so
 * the log can be read with any Fetch tool. One Record per entry:
 *
 *   key     the group id, UTF-8
 *   value   a JSON document, UTF-8, one of (field order as written; readers do not depend on it):
 *     {"v":1,"type":"commit","topic":"orders","partition":3,"offset":"1042","metadata":"","time":1700000000000}
 *     {"v":1,"type":"delete-group","time":1700000000000}              forgets every offset of the group
 *     {"v":1,"type":"forget-topic","topic":"orders","time":1700000000000}  forgets the group's offsets of the topic
 *   headers none; timestamp_ms unset
 *
 * `offset` is a decimal string (an int64 does not fit a JSON number exactly); `partition` is a
 * non-negative integer; `time` is the commit's wall-clock time in ms since the Unix epoch.
 * Forward compatibility: a record whose `v` or `type` this code does not know, or that is not
 * valid JSON of the shape above, is skipped with a reason (decodeValue returns a string), never
 * fatal, so a log written by a newer broker still replays.
 *
 * OffsetState invariants: only groups and topics with at least one offset are kept; a commit
 * replaces the entry of its (group, topic, partition); `snapshotBytes()` is an upper bound of the
 * log bytes of the state written out as commit records (snapshotInputs), kept up to date per
 * entry so that the store can decide cheaply when to compact.
 */
import { RecordBatch } from "../../../clients/ts/src/gen/rill/v1/record.js";
import {
  isFrameProblem,
  MAX_FRAME_HEADER_BYTES,
  parseFrameHeader,
  usesRecordsField,
  varintBytes,
} from "../storage/batch-frame.js";
import { type AppendInput, CompressionCode } from "../storage/log-api.js";

export const RECORD_VERSION = 1;
/** The largest offset (int64 on the wire). */
export const MAX_OFFSET = 2n ** 63n - 1n;

export interface OffsetCommitInput {
  topic: string;
  partition: number;
  offset: bigint;
  metadata: string;
}

export interface StoredOffset extends OffsetCommitInput {
  commitTimeMs: number;
}

export type OffsetRecord =
  | { type: "commit"; topic: string; partition: number; offset: bigint; metadata: string; time: number }
  | { type: "delete-group"; time: number }
  | { type: "forget-topic"; topic: string; time: number };

/** A record with its key (the group) and its encoded value, as stored. */
export interface KeyedValue {
  group: string;
  value: Uint8Array;
}

/** A decoded record with its key. */
export interface KeyedRecord {
  group: string;
  record: OffsetRecord;
}

/** Records per batch when a snapshot of the state is written (compaction). */
export const SNAPSHOT_CHUNK_RECORDS = 1000;

const OFFSET = /^(0|[1-9][0-9]{0,18})$/;

/** The JSON value of `record` (a fixed field order, so a record always encodes to the same bytes). */
export function encodeValue(record: OffsetRecord): Buffer {
  const v = RECORD_VERSION;
  switch (record.type) {
    case "commit": {
      const { topic, partition, metadata, time } = record;
      const offset = record.offset.toString();
      return Buffer.from(JSON.stringify({ v, type: "commit", topic, partition, offset, metadata, time }));
    }
    case "delete-group":
      return Buffer.from(JSON.stringify({ v, type: "delete-group", time: record.time }));
    case "forget-topic":
      return Buffer.from(JSON.stringify({ v, type: "forget-topic", topic: record.topic, time: record.time }));
  }
}

/** The record a value holds, or why it must be skipped (unknown version or type, malformed). */
export function decodeValue(value: Uint8Array): OffsetRecord | string {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8"));
  } catch {
    return "value is not valid JSON";
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "value is not a JSON object";
  const d = doc as { [field: string]: unknown };
  if (d.v !== RECORD_VERSION) return `unknown record version ${JSON.stringify(d.v)}`;
  const time = d.time;
  if (typeof time !== "number" || !Number.isSafeInteger(time) || time < 0) return "bad time";
  switch (d.type) {
    case "commit": {
      const { topic, partition, offset, metadata } = d;
      if (typeof topic !== "string") return "commit without a topic";
      if (typeof partition !== "number" || !Number.isSafeInteger(partition) || partition < 0)
        return "commit with a bad partition";
      if (typeof offset !== "string" || !OFFSET.test(offset) || BigInt(offset) > MAX_OFFSET)
        return "commit with a bad offset";
      if (typeof metadata !== "string") return "commit without metadata";
      return { type: "commit", topic, partition, offset: BigInt(offset), metadata, time };
    }
    case "delete-group":
      return { type: "delete-group", time };
    case "forget-topic":
      if (typeof d.topic !== "string") return "forget-topic without a topic";
      return { type: "forget-topic", topic: d.topic, time };
    default:
      return `unknown record type ${JSON.stringify(d.type)}`;
  }
}

/** An encoded rill.v1.RecordBatch holding one record per entry, in order. */
export function encodeRecordBatch(entries: readonly KeyedValue[]): Uint8Array {
  return RecordBatch.encode({
    records: entries.map((e) => ({
      key: Buffer.from(e.group, "utf8"),
      value: Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength),
      headers: [],
      timestampMs: undefined,
    })),
  }).finish();
}

/** The records of an encoded RecordBatch. Throws if the bytes are not one. */
export function decodeRecordBatch(bytes: Uint8Array): KeyedValue[] {
  return RecordBatch.decode(bytes).records.map((r) => ({ group: r.key.toString("utf8"), value: r.value }));
}

/** An upper bound of the bytes one record adds to an encoded RecordBatch. */
export function recordBytes(groupBytes: number, valueBytes: number): number {
  const record = 1 + varintBytes(groupBytes) + groupBytes + 1 + varintBytes(valueBytes) + valueBytes;
  return 1 + varintBytes(record) + record;
}

/** The append input holding `entries` as one uncompressed batch. */
export function toAppendInput(entries: readonly KeyedValue[]): AppendInput {
  return {
    records: encodeRecordBatch(entries),
    recordCount: entries.length,
    compression: CompressionCode.None,
  };
}

/** `records` as append inputs of at most SNAPSHOT_CHUNK_RECORDS records each. */
export function* snapshotInputs(records: Iterable<KeyedRecord>): Generator<AppendInput> {
  let chunk: KeyedValue[] = [];
  for (const { group, record } of records) {
    chunk.push({ group, value: encodeValue(record) });
    if (chunk.length === SNAPSHOT_CHUNK_RECORDS) {
      yield toAppendInput(chunk);
      chunk = [];
    }
  }
  if (chunk.length > 0) yield toAppendInput(chunk);
}

/**
 * The records of whole stored frames (as Log.read returns them, CRCs checked), in order, with the
 * size of each value. What cannot be read is skipped and described in `skipped`.
 */
export function* recordsOfFrames(
  data: Buffer,
  skipped: string[],
): Generator<KeyedRecord & { valueBytes: number }> {
  for (let at = 0; at < data.length; ) {
    const header = parseFrameHeader(data, at, data.length);
    if (isFrameProblem(header)) throw new Error(`bad frame at byte ${at} of a read: ${header.problem}`);
    const records = data.subarray(at + header.recordsStart, at + header.frameBytes);
    at += header.frameBytes;
    const base = header.baseOffset;
    if (!usesRecordsField(header.compression)) {
      skipped.push(`batch ${base}: compressed (codec ${header.compression})`);
      continue;
    }
    let values: KeyedValue[];
    try {
      values = decodeRecordBatch(records);
    } catch (err) {
      skipped.push(`batch ${base}: not a RecordBatch (${String(err)})`);
      continue;
    }
    for (let i = 0; i < values.length; i++) {
      const { group, value } = values[i]!;
      const record = decodeValue(value);
      if (typeof record === "string") skipped.push(`offset ${base + BigInt(i)}: ${record}`);
      else yield { group, record, valueBytes: value.byteLength };
    }
  }
}

interface Entry {
  stored: StoredOffset;
  /** What the entry's commit record adds to a snapshot (recordBytes). */
  bytes: number;
}

/** Committed offsets by group, topic and partition: the result of applying records in order. */
export class OffsetState {
  private readonly byGroup = new Map<string, Map<string, Map<number, Entry>>>();
  private entryBytes = 0;
  private entryCount = 0;

  /** Applies one record; `valueBytes` is the size of its encoded value. */
  apply({ group, record }: KeyedRecord, valueBytes: number): void {
    const topics = this.byGroup.get(group);
    if (record.type === "commit") {
      const { topic, partition, offset, metadata, time } = record;
      const byTopic = topics ?? new Map<string, Map<number, Entry>>();
      const partitions = byTopic.get(topic) ?? new Map<number, Entry>();
      this.drop(partitions.get(partition));
      const bytes = recordBytes(Buffer.byteLength(group), valueBytes);
      partitions.set(partition, {
        stored: { topic, partition, offset, metadata, commitTimeMs: time },
        bytes,
      });
      this.entryBytes += bytes;
      this.entryCount++;
      byTopic.set(topic, partitions);
      this.byGroup.set(group, byTopic);
    } else if (topics !== undefined) {
      for (const [topic, partitions] of topics) {
        if (record.type === "forget-topic" && topic !== record.topic) continue;
        for (const entry of partitions.values()) this.drop(entry);
        topics.delete(topic);
      }
      if (topics.size === 0) this.byGroup.delete(group);
    }
  }

  private drop(entry: Entry | undefined): void {
    if (entry === undefined) return;
    this.entryBytes -= entry.bytes;
    this.entryCount--;
  }

  get(group: string, topic: string, partition: number): StoredOffset | undefined {
    const entry = this.byGroup.get(group)?.get(topic)?.get(partition);
    return entry === undefined ? undefined : { ...entry.stored };
  }

  /** The group's offsets, sorted by topic then partition. */
  offsets(group: string): StoredOffset[] {
    const topics = this.byGroup.get(group);
    if (topics === undefined) return [];
    const result: StoredOffset[] = [];
    for (const topic of [...topics.keys()].sort()) {
      const partitions = topics.get(topic)!;
      for (const p of [...partitions.keys()].sort((a, b) => a - b))
        result.push({ ...partitions.get(p)!.stored });
    }
    return result;
  }

  /** Groups with at least one offset, sorted. */
  groups(): string[] {
    return [...this.byGroup.keys()].sort();
  }

  hasGroup(group: string): boolean {
    return this.byGroup.has(group);
  }

  /** Groups with at least one offset of `topic`. */
  groupsWithTopic(topic: string): string[] {
    return [...this.byGroup].filter(([, topics]) => topics.has(topic)).map(([group]) => group);
  }

  get groupCount(): number {
    return this.byGroup.size;
  }

  get offsetCount(): number {
    return this.entryCount;
  }

  /** An upper bound of the log bytes of the state written out by snapshotInputs(this.records()). */
  snapshotBytes(): number {
    return this.entryBytes + Math.ceil(this.entryCount / SNAPSHOT_CHUNK_RECORDS) * MAX_FRAME_HEADER_BYTES;
  }

  /** The state as commit records (any order: no two share a key and partition). */
  *records(): Generator<KeyedRecord> {
    for (const [group, topics] of this.byGroup) {
      for (const partitions of topics.values()) {
        for (const { stored } of partitions.values()) {
          const { topic, partition, offset, metadata, commitTimeMs: time } = stored;
          yield { group, record: { type: "commit", topic, partition, offset, metadata, time } };
        }
      }
    }
  }
}
