/**
 * Building rill.v1.FetchResponse messages from raw segment bytes (DESIGN §3.2). A run of whole
 * frames read from a segment is already the encoding of field 1 (`batches`); the broker appends
 * high_watermark (field 2) and log_start_offset (field 3) and sends the bytes as they are. The
 * Fetch method is registered with an identity serializer for these buffers.
 */
import { varintFieldSize, writeVarintField } from "./wire-writer.js";

/** Encodes fields 2 and 3 of FetchResponse (wire-writer.ts; proto3: zeros omitted). */
export function encodeFetchTrailer(highWatermark: bigint, logStartOffset: bigint): Buffer {
  const out = Buffer.allocUnsafe(varintFieldSize(highWatermark) + varintFieldSize(logStartOffset));
  writeVarintField(out, writeVarintField(out, 0, 0x10, highWatermark), 0x18, logStartOffset);
  return out;
}

/**
 * One FetchResponse: the frames as read from disk, then the trailer. When the `spare` bytes after
 * `frames` in its memory are free for us (storage's ReadResult.spare) and the trailer fits, it is
 * written there and the response is a view of the read: the frames are not copied (grpc-js still
 * copies each message once to frame it).
 */
export function buildFetchResponse(
  frames: Buffer,
  highWatermark: bigint,
  logStartOffset: bigint,
  spare = 0,
): Buffer {
  const trailer = encodeFetchTrailer(highWatermark, logStartOffset);
  if (frames.length === 0) return trailer;
  if (trailer.byteLength <= spare) {
    const out = Buffer.from(frames.buffer, frames.byteOffset, frames.length + trailer.byteLength);
    out.set(trailer, frames.length);
    return out;
  }
  return Buffer.concat([frames, trailer]);
}
