/**
 * Bit rot at rest: a real broker writes several closed segments, stops cleanly (so no recovery
 * scan runs on the next start), and seeded byte flips damage (a) a batch's record bytes in one
 * closed segment, (b) a batch header (length, base offset or record count) in another, and (c)
 * entries of a third one's .index and .timeindex. After a restart, over real gRPC:
 * - a Fetch that needs a damaged batch ends with DATA_LOSS naming the file, the byte position, the
 *   lost offsets and the offset to resume from; the broker log names the file and position;
 * - a Fetch from that resume offset goes on, and every other batch is served byte for byte;
 * - the damaged indexes never make a read start at a wrong batch, and ListOffsets by time answers
 *   what the undamaged log answered;
 * - other partitions and produces to the damaged partition keep working.
 * The seed is FC_SEED (default test/setup.ts's) and is printed in every failure message.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FetchResponse } from "../../clients/ts/src/gen/rill/v1/log.js";
import { ManualClock } from "../../server/src/clock.js";
import { type Broker, startBroker } from "../../server/src/main.js";
import { isFrameProblem, parseFrameHeader } from "../../server/src/storage/batch-frame.js";
import { api, fetchAll, produce, produceRequest, record, type Stubs, stubs, values } from "./helpers/grpc.js";

const SEED = process.env.FC_SEED === "random" ? Date.now() : Number(process.env.FC_SEED ?? "20261126");
const TOPIC = "rotting";
const BATCHES = 240;
const RECORDS_PER_BATCH = 3;
const seedNote = `seed ${SEED} (rerun with FC_SEED=${SEED})`;

interface StoredBatch {
  base: bigint;
  count: number;
  appendTimeMs: bigint;
  values: string[];
}
interface Frame {
  position: number;
  frameBytes: number;
  batchStart: number;
  recordsStart: number;
}

let dataDir: string;
let broker: Broker;
let s: Stubs;
const clock = new ManualClock(Date.now());
const logLines: string[] = [];
let original: StoredBatch[] = [];
let originalP1: string[] = [];
/** The damaged batches: (a) record bytes, (b) header. */
let damagedA: { file: string; position: number; batch: StoredBatch };
let damagedB: Array<{ file: string; position: number; batch: StoredBatch; field: string }>;
/** Header damage after the last index entry, which opening walks: in a closed and the active segment. */
let damagedTail: Array<{ file: string; position: number; batch: StoredBatch; field: string }>;
/** Every damaged batch, by offset. */
let damagedAll: Array<{ file: string; position: number; batch: StoredBatch }>;
/** The segment whose indexes were damaged, by base offset. */
let indexedSegment: { base: bigint; next: bigint; index: string; timeIndex: string };
let subtleSegment: { base: bigint; next: bigint };
let subtleFlips: string[];

/**
 * Flips one low byte of a middle entry of an index file (`entryBytes` per entry, big-endian fields
 * ending at the `lowBytes` positions) so that the field stays strictly between its neighbours'
 * ("between") or between the previous one and its old value less one ("older"). The `pick`-th such flip is
 * made; returns what was done.
 */
function subtleFlip(
  path: string,
  entryBytes: number,
  lowBytes: number[],
  pick: number,
  how: "between" | "older",
): string {
  const bytes = readFileSync(path);
  const n = bytes.length / entryBytes;
  const options: Array<{ at: number; mask: number }> = [];
  for (let e = 1; e < n - 1; e++) {
    for (const low of lowBytes) {
      const field = (i: number) => bytes.readUInt32BE(i * entryBytes + low - 3);
      for (let mask = 1; mask < 256; mask++) {
        const flipped = field(e) ^ mask;
        // "older" goes back at least 2 ms, so a batch lies between the flipped and the true time.
        const upper = how === "between" ? field(e + 1) : field(e) - 1;
        if (flipped > field(e - 1) && flipped < upper && flipped !== field(e))
          options.push({ at: e * entryBytes + low, mask });
      }
    }
  }
  expect(options.length, `${seedNote}: a subtle flip of ${path}`).toBeGreaterThan(0);
  const { at, mask } = options[pick % options.length]!;
  flip(path, at, mask);
  return `${path} byte ${at} ^ ${mask}`;
}

function partitionDir(p: number): string {
  return join(dataDir, "topics", TOPIC, String(p));
}

function frames(path: string): Frame[] {
  const bytes = readFileSync(path);
  const out: Frame[] = [];
  for (let at = 0; at < bytes.length; ) {
    const h = parseFrameHeader(bytes, at, bytes.length);
    if (isFrameProblem(h)) throw new Error(`${path} at ${at}: ${h.problem}`);
    out.push({
      position: at,
      frameBytes: h.frameBytes,
      batchStart: h.batchStart,
      recordsStart: h.recordsStart,
    });
    at += h.frameBytes;
  }
  return out;
}

/** Index entries (relative offset, position) of a .index file. */
function indexEntries(path: string): Array<[number, number]> {
  const bytes = readFileSync(path);
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 8 <= bytes.length; at += 8)
    out.push([bytes.readUInt32BE(at), bytes.readUInt32BE(at + 4)]);
  return out;
}

function flip(path: string, at: number, mask: number): void {
  const bytes = readFileSync(path);
  bytes[at] = bytes[at]! ^ mask;
  writeFileSync(path, bytes);
}

function batchesOf(responses: FetchResponse[]): StoredBatch[] {
  return responses.flatMap((r) =>
    r.batches.map((b) => ({
      base: b.baseOffset,
      count: b.recordCount,
      appendTimeMs: b.appendTimeMs,
      values: (b.records?.records ?? []).map((rec) => Buffer.from(rec.value).toString()),
    })),
  );
}

/** The one stored batch holding `offset`. */
function batchAt(offset: bigint): StoredBatch {
  const b = original.find((x) => x.base <= offset && offset < x.base + BigInt(x.count));
  if (!b) throw new Error(`no batch holds ${offset}`);
  return b;
}

function valuesFrom(from: bigint, to?: bigint): string[] {
  return original.flatMap((b) =>
    b.values.filter((_, i) => b.base + BigInt(i) >= from && (to === undefined || b.base + BigInt(i) < to)),
  );
}

async function logFiles(p: number): Promise<string[]> {
  return (await readdir(partitionDir(p))).filter((f) => f.endsWith(".log")).sort();
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "rill-bitrot-"));
  const topicDefaults = { segmentBytes: 4096, indexIntervalBytes: 512 };
  broker = await startBroker({ listen: "127.0.0.1:0", dataDir, topicDefaults }, { clock });
  s = stubs(broker.address);
  await api(s).createTopic({ topic: TOPIC, partitions: 2, config: undefined });
  // BATCHES, then more until the active segment holds enough frames after its last index entry.
  const activeFrames = async () => {
    const logs = await logFiles(0);
    const last = join(partitionDir(0), logs.at(-1)!);
    const lastIndexed = indexEntries(last.replace(/\.log$/, ".index")).at(-1)?.[1] ?? 0;
    return logs.length >= 7 ? frames(last).filter((f) => f.position > lastIndexed).length : 0;
  };
  for (let i = 0; i < BATCHES || (i < 2 * BATCHES && (await activeFrames()) < 3); i++) {
    clock.advance(1); // every batch gets its own append time
    const records = Array.from({ length: RECORDS_PER_BATCH }, (_, j) =>
      record(`value-${i}-${j}-${"x".repeat(i % 7)}`),
    );
    const out = await produce(s.log, [produceRequest(TOPIC, 0, records)]);
    expect(out.error).toBeUndefined();
  }
  for (let i = 0; i < 10; i++) {
    const out = await produce(s.log, [produceRequest(TOPIC, 1, [record(`p1-${i}`)])]);
    expect(out.error).toBeUndefined();
  }
  const all = await fetchAll(s.log, { topic: TOPIC, partition: 0 });
  expect(all.error).toBeUndefined();
  original = batchesOf(all.responses);
  originalP1 = values((await fetchAll(s.log, { topic: TOPIC, partition: 1 })).responses);
  s.close();
  await broker.shutdown(); // clean: the next start trusts the logs (no recovery scan)

  const logs = await logFiles(0);
  expect(logs.length, "enough closed segments").toBeGreaterThanOrEqual(4);
  const bases = logs.map((f) => BigInt(f.slice(0, 20)));
  const path = (i: number, ext: string) => join(partitionDir(0), `${logs[i]!.slice(0, 20)}.${ext}`);
  const [choice] = fc.sample(
    fc.record({
      a: fc.nat(),
      aByte: fc.nat(),
      b: fc.nat(),
      bByte: fc.nat(),
      entry: fc.nat(),
      entryByte: fc.nat({ max: 7 }),
      timeEntry: fc.nat(),
      timeEntryByte: fc.nat({ max: 11 }),
      mask: fc.integer({ min: 1, max: 255 }),
      subtle: fc.nat(),
    }),
    { seed: SEED, numRuns: 1 },
  );
  const c = choice!;

  // (a) a record byte of a batch in the first closed segment.
  const fa = frames(path(0, "log"));
  const a = fa[1 + (c.a % (fa.length - 2))]!;
  const aAt = a.position + a.recordsStart + (c.aByte % (a.frameBytes - a.recordsStart));
  flip(path(0, "log"), aAt, c.mask);
  const aBatch = original.filter((x) => x.base >= bases[0]! && x.base < bases[1]!)[fa.indexOf(a)]!;
  damagedA = { file: path(0, "log"), position: a.position, batch: aBatch };

  // (b) a header field of a batch of the second closed segment, before its last index entry (so
  // opening does not walk it: only a read finds it).
  const fb = frames(path(1, "log"));
  const lastIndexed = indexEntries(path(1, "index")).at(-1)![1];
  const candidates = fb.filter((f) => f.position > 0 && f.position < lastIndexed);
  expect(candidates.length, seedNote).toBeGreaterThan(0);
  // One batch per field, no two adjacent (each loss is reported on its own).
  const picked: Frame[] = [];
  for (let i = 0; i < candidates.length && picked.length < 3; i++) {
    const f = candidates[(c.b + i * 7) % candidates.length]!;
    if (picked.every((p) => Math.abs(fb.indexOf(p) - fb.indexOf(f)) >= 2)) picked.push(f);
  }
  expect(picked.length, seedNote).toBe(3);
  const inSegment1 = original.filter((x) => x.base >= bases[1]! && x.base < bases[2]!);
  damagedB = (["length", "baseOffset", "recordCount"] as const).map((field, i) => {
    const b = picked[i]!;
    const at = {
      length: b.position + 1,
      baseOffset: b.position + b.batchStart + 6 + (c.bByte % 8),
      recordCount: b.position + b.batchStart + 15,
    }[field];
    flip(path(1, "log"), at, c.mask);
    return { file: path(1, "log"), position: b.position, batch: inSegment1[fb.indexOf(b)]!, field };
  });
  damagedB.sort((x, y) => (x.batch.base < y.batch.base ? -1 : 1));

  // (c) one middle entry of each index of the third closed segment.
  const entries = indexEntries(path(2, "index"));
  expect(entries.length, seedNote).toBeGreaterThanOrEqual(3);
  flip(path(2, "index"), (1 + (c.entry % (entries.length - 2))) * 8 + c.entryByte, c.mask);
  const timeEntries = readFileSync(path(2, "timeindex")).length / 12;
  expect(timeEntries, seedNote).toBeGreaterThanOrEqual(3);
  flip(path(2, "timeindex"), (1 + (c.timeEntry % (timeEntries - 2))) * 12 + c.timeEntryByte, c.mask);
  indexedSegment = {
    base: bases[2]!,
    next: bases[3]!,
    index: path(2, "index"),
    timeIndex: path(2, "timeindex"),
  };

  // (d) the flips a sanity check cannot see, in the fourth and fifth closed segments: the low byte
  // of one .index entry's position or relative offset, and of one .timeindex entry's time made
  // older, each kept strictly between its neighbours.
  expect(logs.length, "five closed segments").toBeGreaterThanOrEqual(6);
  subtleFlips = [
    subtleFlip(path(3, "index"), 8, [3, 7], c.subtle, "between"),
    subtleFlip(path(4, "timeindex"), 12, [7], c.subtle, "older"),
  ];
  subtleSegment = { base: bases[3]!, next: bases[5]! };

  // (e) a frame length in the tail of the last closed segment and of the active one, after their
  // last index entry: the walk a clean open makes finds these. Not the active segment's last frame
  // (nothing after it would tell its end offset).
  damagedTail = [logs.length - 2, logs.length - 1].map((i) => {
    const f = frames(path(i, "log"));
    const lastIndexed = indexEntries(path(i, "index")).at(-1)![1];
    const tail = f.filter((x) => x.position > lastIndexed && (i < logs.length - 1 || x !== f.at(-1)));
    expect(tail.length, `${seedNote}: frames after the last index entry of ${logs[i]}`).toBeGreaterThan(0);
    const t = tail[c.b % tail.length]!;
    flip(path(i, "log"), t.position + 1, c.mask);
    const next = i + 1 < bases.length ? bases[i + 1]! : 2n ** 63n;
    const batch = original.filter((x) => x.base >= bases[i]! && x.base < next)[f.indexOf(t)]!;
    return { file: path(i, "log"), position: t.position, batch, field: "length" };
  });
  damagedAll = [damagedA, ...damagedB, ...damagedTail].sort((x, y) => (x.batch.base < y.batch.base ? -1 : 1));

  const logger = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
  broker = await startBroker({ listen: "127.0.0.1:0", dataDir, topicDefaults }, { clock, logger });
  s = stubs(broker.address);
}, 60_000);

afterAll(async () => {
  s?.close();
  await broker?.shutdown();
  await rm(dataDir, { recursive: true, force: true });
});

/**
 * Reads partition 0 from the first and the last offset of every original batch in `segment`: each
 * read begins with that batch (later damage may end it with DATA_LOSS). Returns those batches.
 */
async function expectReadsStartAtTheirBatch(
  segment: { base: bigint; next: bigint },
  note: string,
): Promise<StoredBatch[]> {
  const inSegment = original.filter((b) => b.base >= segment.base && b.base < segment.next);
  for (const b of inSegment) {
    for (const o of [b.base, b.base + BigInt(b.count) - 1n]) {
      const got = await fetchAll(s.log, {
        topic: TOPIC,
        partition: 0,
        start: { $case: "offset", value: o },
        maxBytes: 1,
      });
      // The read goes on to the end, where later damage may stop it; the first batch is what counts.
      expect([undefined, status.DATA_LOSS], `${note} offset ${o}: ${got.error?.details}`).toContain(
        got.error?.code,
      );
      expect(batchesOf(got.responses)[0], `${note} offset ${o}`).toEqual(b);
    }
  }
  return inSegment;
}

function expectDataLoss(
  error: { code: number; details: string } | undefined,
  damaged: { file: string; position: number; batch: StoredBatch },
): bigint {
  const { batch } = damaged;
  const resume = batch.base + BigInt(batch.count);
  expect(error?.code, `${seedNote}: ${error?.details}`).toBe(status.DATA_LOSS);
  expect(error?.details, seedNote).toContain(`${damaged.file} at byte ${damaged.position}`);
  expect(error?.details, seedNote).toContain(`offsets ${batch.base} to ${resume - 1n}`);
  expect(error?.details, seedNote).toContain(`read from offset ${resume} to skip them`);
  expect(
    logLines.some((l) => l.includes(`${damaged.file} at byte ${damaged.position}`)),
    `${seedNote}: the broker log names the file and position`,
  ).toBe(true);
  return resume;
}

describe("bit rot > damaged batches", () => {
  it("serves everything before a damaged batch, then DATA_LOSS with the lost range and where to resume", async () => {
    // Ensures a damaged record byte is caught by the CRC at read time, never served, and the
    // consumer is told exactly which offsets are lost and where to go on.
    const first = await fetchAll(s.log, { topic: TOPIC, partition: 0 });
    expect(values(first.responses), seedNote).toEqual(valuesFrom(0n, damagedA.batch.base));
    const resumeA = expectDataLoss(first.error, damagedA);
    // A read starting inside the damaged batch gets the same answer.
    const inside = await fetchAll(s.log, {
      topic: TOPIC,
      partition: 0,
      start: { $case: "offset", value: resumeA - 1n },
    });
    expectDataLoss(inside.error, damagedA);
    // Resuming where it says reads on, up to each damaged batch in turn.
    let from = resumeA;
    for (const d of damagedAll.slice(1)) {
      const next = await fetchAll(s.log, {
        topic: TOPIC,
        partition: 0,
        start: { $case: "offset", value: from },
      });
      expect(values(next.responses, from), `${seedNote} before ${d.file} ${d.position}`).toEqual(
        valuesFrom(from, d.batch.base),
      );
      from = expectDataLoss(next.error, d);
    }
    const rest = await fetchAll(s.log, {
      topic: TOPIC,
      partition: 0,
      start: { $case: "offset", value: from },
    });
    expect(rest.error?.details, seedNote).toBeUndefined();
    expect(values(rest.responses, from), seedNote).toEqual(valuesFrom(from));
  });

  it.each(["length", "baseOffset", "recordCount"])(
    "refuses every offset of the batch whose %s was damaged, and serves the offset right after it",
    async (field) => {
      // Ensures a damaged length, base offset or record count neither hides the batches after it
      // nor passes as another batch.
      const d = damagedB.find((x) => x.field === field)!;
      const { batch } = d;
      for (let o = batch.base; o < batch.base + BigInt(batch.count); o++) {
        const got = await fetchAll(s.log, {
          topic: TOPIC,
          partition: 0,
          start: { $case: "offset", value: o },
          maxBytes: 1,
        });
        expect(
          got.responses.flatMap((r) => r.batches),
          `${seedNote} ${field}`,
        ).toEqual([]);
        expectDataLoss(got.error, d);
      }
      const after = batch.base + BigInt(batch.count);
      const got = await fetchAll(s.log, {
        topic: TOPIC,
        partition: 0,
        start: { $case: "offset", value: after },
        maxBytes: 1,
      });
      // It reads on to the next damaged batch, if any.
      const last = d === damagedAll.at(-1);
      expect(got.error?.code, `${seedNote} ${field}`).toBe(last ? undefined : status.DATA_LOSS);
      expect(batchesOf(got.responses)[0], `${seedNote} ${field}`).toEqual(batchAt(after));
    },
  );
});

describe("bit rot > damage a clean open walks into", () => {
  it("keeps the batches after it, refuses the damaged one, and never reuses an offset", async () => {
    // Ensures damage found while opening (a closed segment's and the active segment's tail) costs
    // only the damaged batch: nothing after it is cut, reads of it get DATA_LOSS with the range,
    // and appends continue after the true end (the damaged active segment is rolled).
    for (const d of damagedTail) {
      const { batch } = d;
      const got = await fetchAll(s.log, {
        topic: TOPIC,
        partition: 0,
        start: { $case: "offset", value: batch.base },
        maxBytes: 1,
      });
      expectDataLoss(got.error, d);
      expect(
        logLines.some((l) => l.includes("damaged batch in fsynced data") && l.includes(d.file)),
        `${seedNote}: opening reported ${d.file}`,
      ).toBe(true);
      const after = batch.base + BigInt(batch.count);
      const rest = await fetchAll(s.log, {
        topic: TOPIC,
        partition: 0,
        start: { $case: "offset", value: after },
      });
      const until = d === damagedAll.at(-1) ? undefined : damagedAll[damagedAll.indexOf(d) + 1]!.batch.base;
      expect(values(rest.responses, after), seedNote).toEqual(valuesFrom(after, until));
    }
    expect(
      logLines.some((l) => l.includes("rolled past a damaged segment")),
      seedNote,
    ).toBe(true);
  });
});

describe("bit rot > damaged indexes", () => {
  it("starts every read at the right batch despite a damaged .index, and says so in the log", async () => {
    // Ensures a damaged index entry is either caught when the log opens (and rebuilt) or caught by
    // the check of the frame it points at: never a read that starts at the wrong batch.
    await expectReadsStartAtTheirBatch(indexedSegment, seedNote);
    const name = indexedSegment.index;
    expect(
      logLines.some(
        (l) =>
          l.includes(name) &&
          (l.includes("index entry does not match the log") || l.includes("rebuilding indexes from the log")),
      ),
      `${seedNote}: the broker log names ${name}`,
    ).toBe(true);
  });

  it("answers ListOffsets by time as the undamaged log would, despite a damaged .timeindex", async () => {
    // Ensures a damaged time index costs a longer walk, never a wrong offset. A time that falls
    // right after the batch with the damaged header may answer that batch (conservative: a reader
    // starting there is told what is lost), never a later one.
    const latest = original.at(-1)!.base + BigInt(original.at(-1)!.count);
    for (const b of original) {
      for (const t of [b.appendTimeMs, b.appendTimeMs + 1n]) {
        const expected = original.find((x) => x.appendTimeMs >= t)?.base ?? latest;
        const res = await api(s).listOffsets({ topic: TOPIC, partitions: [0], timestampMs: t });
        const got = res.partitions[0]!.timestampOffset;
        const allowed = [expected];
        for (const d of damagedAll)
          if (expected === d.batch.base + BigInt(d.batch.count)) allowed.push(d.batch.base);
        expect(allowed, `${seedNote} time ${t}`).toContain(got);
      }
    }
  });
});

describe("bit rot > indexes damaged within their sanity checks", () => {
  it("starts every read at the right batch and answers every time lookup right", async () => {
    // Ensures an index entry that still looks sane but points at the wrong place is caught by
    // checking the frame it names (base offset; for a time lookup, an older append time) before
    // trusting it: the read falls back to a walk of the segment.
    const note = `${seedNote}; ${subtleFlips.join("; ")}`;
    const inSegment = await expectReadsStartAtTheirBatch(subtleSegment, note);
    const from = inSegment[0]!.appendTimeMs - 1n;
    const to = inSegment.at(-1)!.appendTimeMs + 1n;
    for (let t = from; t <= to; t++) {
      const expected = original.find((x) => x.appendTimeMs >= t)!.base;
      const res = await api(s).listOffsets({ topic: TOPIC, partitions: [0], timestampMs: t });
      expect(res.partitions[0]!.timestampOffset, `${note} time ${t}`).toBe(expected);
    }
    expect(
      logLines.some((l) => l.includes("index entry does not match the log")),
      `${note}: the broker log reports the damaged entry`,
    ).toBe(true);
  });
});

describe("bit rot > the rest keeps working", () => {
  it("serves the other partition and takes produces to the damaged one", async () => {
    // Ensures damage in one place costs only the damaged batches.
    const p1 = await fetchAll(s.log, { topic: TOPIC, partition: 1 });
    expect(p1.error).toBeUndefined();
    expect(values(p1.responses)).toEqual(originalP1);
    const latest = original.at(-1)!.base + BigInt(original.at(-1)!.count);
    const out = await produce(s.log, [produceRequest(TOPIC, 0, [record("fresh")])]);
    expect(out.error).toBeUndefined();
    expect(out.response!.results[0]!.baseOffset).toBe(latest);
    const tail = await fetchAll(s.log, {
      topic: TOPIC,
      partition: 0,
      start: { $case: "offset", value: latest },
    });
    expect(values(tail.responses)).toEqual(["fresh"]);
  });
});
