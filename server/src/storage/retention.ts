/**
 * Retention: which whole segments to delete, and deleting them (DESIGN §1: "segments are deleted
 * whole by age or total size").
 *
 * Rules, applied oldest first:
 * - by time (retention.ms >= 0): a closed segment goes when its newest append time is older than
 *   now - retention.ms. That time is exact (Segment.lastAppendTimeMs: tracked in memory, recovered
 *   on open from the time index's final entry or a recovery scan), though the time index is sparse.
 *   Append times are monotonic, so expired segments are a prefix of the log.
 *   If the active segment itself is non-empty and wholly expired, the log rolls first (an empty
 *   segment at the log end) so that the old one becomes closed and can go;
 * - by size (retention.bytes >= 0): then the oldest closed segments go while the .log files total
 *   more than retention.bytes;
 * - the last segment is never deleted, so the log always has an active segment and the log end
 *   offset survives; the log start offset becomes the base offset of the first remaining segment.
 *
 * Deleting is two-phase per file: rename to `<name>.deleted`, then unlink. A crash in between
 * leaves `.deleted` files, which open() recognises and removes (recovery.ts). The caller removes
 * the segments from its list first (synchronously), so new reads see the new log start at once;
 * reads already in flight keep the descriptors until they finish (Segment.retire).
 */
import type { Logger } from "../logger.js";
import type { LogConfig } from "./log-api.js";
import type { Segment } from "./segment.js";

/** The facts retention looks at. */
export interface RetentionCandidate {
  size: number;
  /** Newest append time in the segment; -1 if empty (an empty closed segment is always expired). */
  lastAppendTimeMs: number;
}

type RetentionConfig = Pick<LogConfig, "retentionMs" | "retentionBytes">;

/** Whether the active segment must roll so that retention by time can delete it. */
export function activeSegmentExpired(
  active: RetentionCandidate,
  nowMs: number,
  config: RetentionConfig,
): boolean {
  return config.retentionMs >= 0 && active.size > 0 && active.lastAppendTimeMs < nowMs - config.retentionMs;
}

/** How many of the oldest segments to delete (never the last one). */
export function segmentsToDelete(
  segments: readonly RetentionCandidate[],
  nowMs: number,
  config: RetentionConfig,
): number {
  const closed = segments.length - 1;
  let count = 0;
  if (config.retentionMs >= 0) {
    const cutoff = nowMs - config.retentionMs;
    while (count < closed && segments[count]!.lastAppendTimeMs < cutoff) count++;
  }
  if (config.retentionBytes >= 0) {
    let size = 0;
    for (let i = count; i < segments.length; i++) size += segments[i]!.size;
    while (count < closed && size > config.retentionBytes) {
      size -= segments[count]!.size;
      count++;
    }
  }
  return count;
}

/**
 * Deletes the files of segments already removed from the log's list. Every file is attempted; the
 * first error is rethrown after the rest were tried (their files will be found again on open and
 * retention will retry).
 */
export async function deleteSegments(
  segments: readonly Segment[],
  logger: Logger,
  stopped: () => boolean = () => false,
): Promise<void> {
  let firstError: unknown = null;
  for (const segment of segments) {
    // The log was closed (shutdown or topic deletion): leave the rest. Its directory may be moved
    // and a new log created at the same path, so no file of this pass may be touched any more.
    // Segments left behind are still past retention and go in the next pass after reopening.
    if (stopped()) {
      for (const s of segments) void s.retire();
      break;
    }
    void segment.retire();
    try {
      await segment.deleteFiles();
      logger.debug({ file: segment.logPath }, "deleted segment");
    } catch (err) {
      logger.warn({ err, file: segment.logPath }, "could not delete a segment");
      firstError ??= err;
    }
  }
  if (firstError !== null) throw firstError;
}
