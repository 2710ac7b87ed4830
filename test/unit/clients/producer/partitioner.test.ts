import { describe, expect, it } from "vitest";
import {
  DefaultPartitioner,
  murmur2,
  partitionForKey,
  StickyPartitioner,
  toPositive,
} from "../../../../clients/ts/src/producer/partitioner.js";

/**
 * Known murmur2 values of Kafka's Java client (`org.apache.kafka.common.utils.Utils.murmur2`):
 * - apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2;
 * - tulios/kafkajs src/producer/partitioners/defaultJava/murmur2.spec.js (generated with Java);
 * - akka/akka Murmur2Spec.scala ("expected correct hash values from the kafka murmur2 impl").
 */
const KAFKA_VECTORS: [string, number][] = [
  // Kafka UtilsTest.testMurmur2
  ["21", -973932308],
  ["foobar", -790332482],
  ["a-little-bit-long-string", -985981536],
  ["a-little-bit-longer-string", -1486304829],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ["abc", 479470107],
  // KafkaJS defaultJava murmur2.spec.js
  ["0", 971027396],
  ["1", -1993445489],
  ["128", -326012175],
  ["2187", -1508407203],
  ["16384", -325739742],
  ["78125", -1654490814],
  ["279936", 1462227128],
  ["823543", -2014198330],
  ["2097152", 607668903],
  ["4782969", -1182699775],
  ["10000000", -1830336757],
  ["19487171", -1603849305],
  ["35831808", -857013643],
  ["62748517", -1167431028],
  ["105413504", -381294639],
  ["170859375", -1658323481],
  ["100:48069", 1009543857],
  // akka Murmur2Spec
  ["12", 126087238],
  ["123", -267702483],
  ["1234", -1614185708],
  ["12345", -1188365604],
];

describe("client > producer > partitioner > murmur2", () => {
  it.each(KAFKA_VECTORS)("hashes %j like Kafka", (input, expected) => {
    // Ensures murmur2 returns the same signed 32-bit value as Kafka's Java Utils.murmur2.
    expect(murmur2(Buffer.from(input, "utf8"))).toBe(expected);
  });

  it("hashes the empty key and bytes above 0x7f", () => {
    // Ensures the zero-length case and high bytes (signed in Java, unsigned here) hash consistently.
    expect(Number.isInteger(murmur2(new Uint8Array(0)))).toBe(true);
    const high = Uint8Array.from([0xff, 0x80, 0xfe, 0x81, 0x90]);
    expect(murmur2(high)).toBe(murmur2(Buffer.from(high)));
    expect(murmur2(high)).toBeGreaterThanOrEqual(-(2 ** 31));
    expect(murmur2(high)).toBeLessThan(2 ** 31);
  });

  it("clears only the sign bit in toPositive", () => {
    // Ensures toPositive is Kafka's `x & 0x7fffffff`, not Math.abs (which differs for negatives).
    expect(toPositive(-1)).toBe(0x7fffffff);
    expect(toPositive(-(2 ** 31))).toBe(0);
    expect(toPositive(5)).toBe(5);
    expect(toPositive(-790332482)).toBe(1357151166);
  });
});

describe("client > producer > partitioner > keyed", () => {
  // Partitions computed as toPositive(hash) % n from the Kafka vectors above.
  const cases: [string, number, number][] = [
    ["foobar", 4, 2],
    ["foobar", 12, 6],
    ["foobar", 100, 66],
    ["21", 7, 3],
    ["a-little-bit-long-string", 3, 2],
    ["a-little-bit-longer-string", 12, 11],
    ["abc", 7, 4],
    ["0", 100, 96],
    ["1", 4, 3],
    ["100:48069", 12, 9],
  ];

  it.each(cases)("puts key %j, of %i partitions, on %i", (key, n, expected) => {
    // Ensures a keyed record lands on the partition Kafka's default partitioner would pick.
    expect(partitionForKey(Buffer.from(key), n)).toBe(expected);
  });

  it("puts every key on partition 0 of a one-partition topic and rejects zero partitions", () => {
    // Ensures the modulo is well defined at the edges.
    expect(partitionForKey(Buffer.from("anything"), 1)).toBe(0);
    expect(() => partitionForKey(Buffer.from("x"), 0)).toThrow(RangeError);
  });

  it("uses murmur2 for keyed records in the default partitioner, whatever the sticky state", () => {
    // Ensures keyed placement does not depend on the sticky partition of keyless records.
    const p = new DefaultPartitioner(() => 0.99);
    expect(p.partition({ topic: "t", key: Buffer.from("foobar"), numPartitions: 4 })).toBe(2);
    p.onBatchSealed("t", 2, 4);
    expect(p.partition({ topic: "t", key: Buffer.from("foobar"), numPartitions: 4 })).toBe(2);
  });
});

describe("client > producer > partitioner > sticky", () => {
  it("sticks to one partition until its batch is sealed, then moves to another", () => {
    // Ensures keyless records share a partition until the batch for it is sealed (Kafka 2.4+).
    const randoms = [0.6, 0.0, 0.5];
    const s = new StickyPartitioner(() => randoms.shift() ?? 0);
    const first = s.partition("t", 4);
    expect(first).toBe(2); // floor(0.6 * 4)
    for (let i = 0; i < 100; i++) expect(s.partition("t", 4)).toBe(first);
    s.onBatchSealed("t", 3, 4); // another partition's batch: no change
    expect(s.partition("t", 4)).toBe(first);
    s.onBatchSealed("t", first, 4);
    const second = s.partition("t", 4);
    expect(second).not.toBe(first);
    expect(second).toBe(3); // (2 + 1 + floor(0.0 * 3)) % 4
  });

  it("never picks the previous partition again right away, and spreads over the others", () => {
    // Ensures the new sticky partition is uniform over the other partitions.
    const s = new StickyPartitioner();
    const seen = new Map<number, number>();
    let current = s.partition("t", 5);
    for (let i = 0; i < 5000; i++) {
      s.onBatchSealed("t", current, 5);
      const next = s.partition("t", 5);
      expect(next).not.toBe(current);
      expect(next).toBeGreaterThanOrEqual(0);
      expect(next).toBeLessThan(5);
      seen.set(next, (seen.get(next) ?? 0) + 1);
      current = next;
    }
    expect(seen.size).toBe(5);
    for (const count of seen.values()) expect(count).toBeGreaterThan(700);
  });

  it("keeps a separate sticky partition per topic and stays on 0 for one partition", () => {
    // Ensures topics do not share sticky state and single-partition topics always get 0.
    const s = new StickyPartitioner(() => 0.9);
    expect(s.partition("a", 10)).toBe(9);
    expect(s.partition("b", 1)).toBe(0);
    s.onBatchSealed("b", 0, 1);
    expect(s.partition("b", 1)).toBe(0);
    expect(s.partition("a", 10)).toBe(9);
  });

  it("chooses again when the partition count shrinks below the sticky partition", () => {
    // Ensures a stale sticky partition is never returned out of range.
    const s = new StickyPartitioner(() => 0.99);
    expect(s.partition("t", 8)).toBe(7);
    expect(s.partition("t", 4)).toBe(3);
  });
});
