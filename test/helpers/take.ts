/**
 * Collects up to `max` items from an async iterable, then leaves the loop (which cancels a
 * consumer's streams). Bounded: it also stops at the first item after `timeoutMs`, and every
 * test is bounded by vitest's testTimeout.
 */
export async function take<T>(it: AsyncIterable<T>, max: number, timeoutMs = 20_000): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for await (const item of it) {
    out.push(item);
    if (out.length >= max || Date.now() > deadline) break;
  }
  return out;
}
