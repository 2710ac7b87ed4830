/**
 * Partition choice, compatible with Kafka's Java producer so that a key lands on the same partition
 * number here as it does with Kafka for the same partition count:
 *
 * - a record with a key goes to `toPositive(murmur2(keyBytes)) % numPartitions`, with Kafka's
 *   32-bit murmur2 variant (seed 0x9747b28c, little-endian 4-byte blocks, signed Java int result)
 *   and `toPositive(x) = x & 0x7fffffff` (not Math.abs);
 * - a record without a key follows the sticky partitioner of Kafka 2.4+ (KIP-480): all keyless
 *   records of a topic go to one partition until the batch being filled for it is sealed (full or
 *   lingered), then a new partition is picked at random, different from the previous one.
 *
 * No npm package was used: the listed murmur2 packages implement MurmurHash2 with other seeds or
 * unsigned results, and the Kafka-compatible one is an unmaintained script. The function is 25 lines.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/**
 * Kafka's `Utils.murmur2(byte[])`: 32-bit MurmurHash2 of `data`, returned as a signed 32-bit integer
 * (what Java's `int` holds).
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const blocks = length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const j = i << 2;
    let k = data[j]! | (data[j + 1]! << 8) | (data[j + 2]! << 16) | (data[j + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = blocks << 2;
  // The 1-3 trailing bytes (Kafka's switch with fall-through, written as ifs).
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (so -2^31 maps to 0, unlike Math.abs). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** The partition Kafka's default partitioner picks for a keyed record. */
export function partitionForKey(key: Uint8Array, numPartitions: number): number {
  if (!(numPartitions >= 1)) throw new RangeError(`numPartitions must be >= 1, got ${numPartitions}`);
  return toPositive(murmur2(key)) % numPartitions;
}

/** What a partitioner is asked. */
export interface PartitionerInput {
  topic: string;
  /** The record's key, or null for a keyless record. */
  key: Uint8Array | null;
  /** The topic's partition count (>= 1). */
  numPartitions: number;
}

/** Chooses partitions for records that did not name one. */
export interface Partitioner {
  partition(input: PartitionerInput): number;
  /**
   * Told by the producer when the batch it was filling for `partition` of `topic` is sealed (full,
   * or its linger time ran out). The sticky partitioner moves on to another partition then.
   */
  onBatchSealed?(topic: string, partition: number, numPartitions: number): void;
}

/** Keyless records: stick to one partition per topic until its batch is sealed (Kafka 2.4+). */
export class StickyPartitioner {
  private readonly current = new Map<string, number>();
  private readonly random: () => number;

  /** @param random source of randomness in [0, 1); tests pin it. */
  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  /** The sticky partition of `topic`, choosing one if there is none yet (or it is out of range). */
  partition(topic: string, numPartitions: number): number {
    const p = this.current.get(topic);
    if (p !== undefined && p < numPartitions) return p;
    return this.next(topic, numPartitions, -1);
  }

  /** The batch for `partition` was sealed: if it was the sticky one, pick a new one. */
  onBatchSealed(topic: string, partition: number, numPartitions: number): void {
    if (this.current.get(topic) === partition) this.next(topic, numPartitions, partition);
  }

  private next(topic: string, numPartitions: number, previous: number): number {
    let p: number;
    if (numPartitions <= 1) {
      p = 0;
    } else if (previous < 0 || previous >= numPartitions) {
      p = Math.floor(this.random() * numPartitions);
    } else {
      // Uniform over the other numPartitions - 1 partitions.
      p = (previous + 1 + Math.floor(this.random() * (numPartitions - 1))) % numPartitions;
    }
    this.current.set(topic, p);
    return p;
  }
}

/** Kafka's default: murmur2 for keyed records, sticky for keyless ones. */
export class DefaultPartitioner implements Partitioner {
  private readonly sticky: StickyPartitioner;

  constructor(random: () => number = Math.random) {
    this.sticky = new StickyPartitioner(random);
  }

  partition(input: PartitionerInput): number {
    if (input.key !== null) return partitionForKey(input.key, input.numPartitions);
    return this.sticky.partition(input.topic, input.numPartitions);
  }

  onBatchSealed(topic: string, partition: number, numPartitions: number): void {
    this.sticky.onBatchSealed(topic, partition, numPartitions);
  }
}
