/**
 * How many of something each key has (a partition's batches in flight, waiting to be resent, or
 * sealed and not taken); a key with none is absent, so `has` and `size` speak of keys with some.
 */
export class KeyCounts {
  private readonly counts = new Map<string, number>();

  /** Keys with at least one. */
  get size(): number {
    return this.counts.size;
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Takes one away; true if that was the key's last (a key it does not have is left alone). */
  remove(key: string): boolean {
    const n = this.counts.get(key);
    if (n === undefined) return false;
    if (n > 1) {
      this.counts.set(key, n - 1);
      return false;
    }
    this.counts.delete(key);
    return true;
  }

  clear(): void {
    this.counts.clear();
  }
}
