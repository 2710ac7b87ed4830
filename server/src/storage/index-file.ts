/**
 * What the offset index and the time index share: growable typed-array columns and the binary
 * searches over them. Index files themselves are read and written by segment.ts; the index classes
 * only hold entries in memory and encode/decode them (entry layouts are in offset-index.ts and
 * time-index.ts).
 *
 * Both indexes are append-only, with keys strictly increasing, so "floor" searches are plain
 * binary searches. Both are disposable (STYLE habit 4): whatever they say is re-derivable from the
 * .log file, and open() rebuilds one that fails its sanity check.
 */

/** A growable column of u32 values. */
export class U32Column {
  private values: Uint32Array;
  length = 0;

  constructor(capacity = 8) {
    this.values = new Uint32Array(Math.max(1, capacity));
  }

  at(i: number): number {
    return this.values[i]!;
  }

  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Uint32Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }

  /** Index of the last value <= key, or -1. Values must be increasing. */
  floor(key: number): number {
    return floorSearch(this.values, this.length, key);
  }
}

/** A growable column of f64 values (timestamps: safe integers, exact in a double). */
export class F64Column {
  private values: Float64Array;
  length = 0;

  constructor(capacity = 8) {
    this.values = new Float64Array(Math.max(1, capacity));
  }

  at(i: number): number {
    return this.values[i]!;
  }

  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }

  /** Index of the last value <= key, or -1. Values must be increasing. */
  floor(key: number): number {
    return floorSearch(this.values, this.length, key);
  }
}

function floorSearch(values: ArrayLike<number>, length: number, key: number): number {
  let lo = 0;
  let hi = length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! <= key) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
