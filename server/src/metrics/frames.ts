/**
 * Counting the records of stored frames without decoding them: each frame's Batch holds its
 * record_count as a fixed32 at a fixed place (storage/batch-frame.ts), so this is constant work
 * per batch, like the rest of the Fetch path.
 */
import { FRAME_TAG } from "../storage/batch-frame.js";

/** Byte of the Batch where record_count (fixed32 LE) starts: after its tag at Batch byte 14. */
const RECORD_COUNT_AT = 15;

/**
 * The records in `frames`, a run of whole frames as storage reads them. Stops at anything that is
 * not a frame (storage only hands out CRC-checked whole frames, so that would be a bug elsewhere).
 */
export function countFrameRecords(frames: Buffer): number {
  let records = 0;
  let pos = 0;
  while (pos < frames.length && frames[pos] === FRAME_TAG) {
    let length = 0;
    let scale = 1;
    let at = pos + 1;
    for (let i = 0; i < 5 && at < frames.length; i++) {
      const b = frames[at++]!;
      length += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
    if (length < RECORD_COUNT_AT + 4 || at + length > frames.length) break;
    records += frames.readUInt32LE(at + RECORD_COUNT_AT);
    pos = at + length;
  }
  return records;
}
