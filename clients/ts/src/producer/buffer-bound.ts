/**
 * The producer's buffer bound (admission control): bytes of records reserved by sends and not yet
 * acknowledged or failed, kept at most `limit`. A reservation that does not fit waits, in FIFO order;
 * one larger than the limit is admitted once the buffer is empty, so no send waits forever.
 *
 * Invariants: `bytes` is the sum of granted reservations minus releases, and every reservation is
 * released exactly once by its owner (the send if it fails before entering the accumulator, else
 * its batches as they settle). A reservation is never granted ahead of an earlier waiter.
 * `writable` is false while the buffer is full or anyone waits; drain waiters are woken as soon as
 * it turns true, or on close (which also rejects every waiting reservation).
 */
import { ClientClosedError } from "../errors.js";

interface BufferWaiter {
  bytes: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Bytes buffered by a producer and the sends waiting for room; see the file header. */
export class BufferBound {
  private buffered = 0;
  private readonly waiters: BufferWaiter[] = [];
  private drainWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly limit: number) {}

  /** Bytes reserved and not yet released. */
  get bytes(): number {
    return this.buffered;
  }

  /** False while the buffer is full or reservations wait for room. */
  get writable(): boolean {
    return this.waiters.length === 0 && this.buffered < this.limit;
  }

  /** Resolves when {@link writable} is true, or once closed. */
  waitWritable(): Promise<void> {
    if (this.writable || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Reserves `bytes`: at once (returns undefined, so a caller can stay synchronous) when they fit
   * and nobody waits, else once they fit (FIFO; the promise resolves with them reserved).
   */
  reserve(bytes: number): Promise<void> | undefined {
    if (this.waiters.length > 0 || !this.hasRoom(bytes)) {
      return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
    }
    this.buffered += bytes;
    return undefined;
  }

  /** Gives back `bytes`, admitting the waiters that now fit and waking drain waiters. */
  release(bytes: number): void {
    this.buffered -= bytes;
    while (this.waiters.length > 0 && this.hasRoom(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      this.buffered += w.bytes;
      w.resolve();
    }
    if (this.drainWaiters.length > 0 && this.writable) {
      const ds = this.drainWaiters;
      this.drainWaiters = [];
      for (const d of ds) d();
    }
  }

  /** Rejects every waiting reservation and wakes every drain waiter; later waits resolve at once. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new ClientClosedError("the producer is closed"));
    for (const d of this.drainWaiters.splice(0)) d();
  }

  private hasRoom(bytes: number): boolean {
    return this.buffered === 0 || this.buffered + bytes <= this.limit;
  }
}
