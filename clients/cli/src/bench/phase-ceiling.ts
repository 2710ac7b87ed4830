/**
 * Phase 7: the ceiling. The same bytes through a bare grpc-js stream with an identity codec and no
 * storage, to a server in its own process (ceiling-server.ts), in both directions: client streaming
 * (what Produce does) and server streaming (what Fetch does). Two message sizes: "small", one
 * encoded 50-record ProduceRequest (what phases 2 and 4's data set are made of), and "large", the
 * sizes the client and broker really use at full speed (256 KiB Producer batches up, 1 MiB Fetch
 * responses down). Each moves records × 200 payload bytes' worth of such messages; rates are in
 * bytes/s and in records/s equivalent (bytes ÷ the encoded bytes of one record in a batch of 50).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ChannelCredentials,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { DEFAULT_CHANNEL_OPTIONS } from "../../../ts/src/index.js";
import { CEILING_SERVICE } from "./ceiling-server.js";
import { startChild } from "./child.js";
import { DATASET_BATCH, encodedBatch } from "./dataset.js";
import { deadline, Meter, RECORD_BYTES, round } from "./meter.js";
import type { BenchEnv, PhaseResult } from "./types.js";

interface CeilingClient {
  upload(
    options: { deadline: Date },
    cb: (err: ServiceError | null, res?: Buffer) => void,
  ): NodeJS.WritableStream & {
    write(b: Buffer): boolean;
  };
  download(request: Buffer, options: { deadline: Date }): NodeJS.ReadableStream & { cancel(): void };
  close(): void;
}

/** Encoded bytes per record in a batch of 50 (the unit records/s equivalents are counted in). */
export function wireBytesPerRecord(): number {
  return encodedBatch("bench", 0, DATASET_BATCH).length / DATASET_BATCH;
}

export async function runCeilingPhase(env: BenchEnv): Promise<PhaseResult[]> {
  const script = join(fileURLToPath(new URL(".", import.meta.url)), "ceiling-server.js");
  const server = await startChild([script], (line) => /^ceiling listening (\d+)$/.exec(line));
  const Ctor = makeGenericClientConstructor(CEILING_SERVICE, "Ceiling") as unknown as new (
    address: string,
    creds: ChannelCredentials,
    options: object,
  ) => CeilingClient;
  const client = new Ctor(`127.0.0.1:${server.ready[1]}`, credentials.createInsecure(), {
    ...DEFAULT_CHANNEL_OPTIONS,
  });
  const perRecord = wireBytesPerRecord();
  const small = Math.round(perRecord * DATASET_BATCH);
  const totalBytes = env.records * perRecord;
  const results: PhaseResult[] = [];
  try {
    for (const [size, label] of [
      [small, "small"],
      [256 * 1024, "large"],
    ] as const) {
      results.push(
        await upload(env, client, server.pid, size, Math.ceil(totalBytes / size), label, perRecord),
      );
    }
    for (const [size, label] of [
      [small, "small"],
      [1024 * 1024, "large"],
    ] as const) {
      results.push(
        await download(env, client, server.pid, size, Math.ceil(totalBytes / size), label, perRecord),
      );
    }
  } finally {
    client.close();
    await server.stop(5_000);
  }
  return results;
}

/** A transfer runs again until the phase has lasted this long, so that short runs are not all noise. */
const MIN_SECONDS = 1;

type Transfer = (limit: ReturnType<typeof deadline>, onMessage: () => void) => Promise<number>;

/**
 * Runs `transfer` (count messages of size bytes) in rounds, at least MIN_SECONDS, within the cap.
 * The server's CPU time goes in the broker column.
 */
async function measure(
  env: BenchEnv,
  serverPid: number,
  direction: "up" | "down",
  label: string,
  size: number,
  count: number,
  perRecord: number,
  transfer: Transfer,
): Promise<PhaseResult> {
  const what = direction === "up" ? "client streaming" : "server streaming";
  const task = env.progress.start(`7. ceiling ${direction}, ${label} (${size} B)`, count, "messages");
  const limit = deadline(env.phaseSeconds);
  const meter = new Meter(env, serverPid);
  let moved = 0;
  let rounds = 0;
  let messages = 0;
  let error: string | undefined;
  try {
    while ((rounds === 0 || meter.elapsed < MIN_SECONDS) && !limit.passed()) {
      const bytes = await transfer(limit, () => {
        if (++messages % 64 === 0) task.update(messages % count);
      });
      moved += bytes;
      rounds++;
      if (bytes < count * size) break; // cut by the cap
    }
  } catch (e) {
    error = (e as Error).message;
  }
  const target = Math.floor((Math.max(1, rounds) * count * size) / perRecord);
  const m = meter.finish(Math.min(Math.floor(moved / perRecord), target), target);
  const r: PhaseResult = {
    id: `7-${direction}-${label}`,
    phase: 7,
    name: `ceiling, ${what}, ${label} messages`,
    ...m,
    capped: moved < Math.max(1, rounds) * count * size,
    mbPerSec: m.recordsPerSec === undefined ? undefined : round((m.recordsPerSec * RECORD_BYTES) / 1e6, 2),
    bytesPerSec: m.seconds > 0 ? Math.round(moved / m.seconds) : undefined,
    note:
      `bare grpc-js, identity codec, ${rounds} × ${count} messages of ${size} bytes (repeated for >= ${MIN_SECONDS} s); ` +
      `records/s = bytes/s ÷ ${round(perRecord, 2)}` +
      (env.security.tls === undefined
        ? ""
        : "; plaintext on 127.0.0.1 while the broker was measured over TLS: ratios against it include TLS's cost"),
    error,
  };
  task.done(`${r.bytesPerSec?.toLocaleString("en-US")} bytes/s`);
  return r;
}

function upload(
  env: BenchEnv,
  client: CeilingClient,
  serverPid: number,
  size: number,
  count: number,
  label: string,
  perRecord: number,
): Promise<PhaseResult> {
  const message = encodedBatch("bench", 0, DATASET_BATCH);
  const body = size === message.length ? message : Buffer.alloc(size, 0x5a);
  return measure(env, serverPid, "up", label, size, count, perRecord, (limit, onMessage) => {
    return new Promise<number>((resolve, reject) => {
      const call = client.upload({ deadline: limit.date(10_000) }, (err, res) => {
        if (err) reject(err);
        else resolve(res!.readDoubleBE(8));
      });
      let sent = 0;
      const pump = (): void => {
        while (sent < count && !limit.passed()) {
          sent++;
          onMessage();
          if (!call.write(body)) {
            call.once("drain", pump);
            return;
          }
        }
        call.end();
      };
      pump();
    });
  });
}

function download(
  env: BenchEnv,
  client: CeilingClient,
  serverPid: number,
  size: number,
  count: number,
  label: string,
  perRecord: number,
): Promise<PhaseResult> {
  const request = Buffer.alloc(8);
  request.writeUInt32BE(count, 0);
  request.writeUInt32BE(size, 4);
  return measure(env, serverPid, "down", label, size, count, perRecord, (limit, onMessage) => {
    return new Promise<number>((resolve, reject) => {
      let moved = 0;
      const call = client.download(request, { deadline: limit.date(10_000) });
      const timer = setTimeout(() => call.cancel(), Math.max(0, limit.at - Date.now()));
      call.on("data", (b: Buffer) => {
        moved += b.length;
        onMessage();
      });
      call.on("end", () => {
        clearTimeout(timer);
        resolve(moved);
      });
      call.on("error", (e: Error) => {
        clearTimeout(timer);
        if (limit.passed()) resolve(moved);
        else reject(e);
      });
    });
  });
}
