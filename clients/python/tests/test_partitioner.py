"""murmur2 and the partition choice agree with Kafka's Java client and Rill's TS client."""

import random
import unittest

from rill_client.partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive

# The vectors of test/unit/clients/producer/partitioner.test.ts (Kafka UtilsTest.testMurmur2,
# KafkaJS defaultJava murmur2.spec.js, akka Murmur2Spec).
KAFKA_VECTORS = [
    ("21", -973932308),
    ("foobar", -790332482),
    ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ("abc", 479470107),
    ("0", 971027396),
    ("1", -1993445489),
    ("128", -326012175),
    ("2187", -1508407203),
    ("16384", -325739742),
    ("78125", -1654490814),
    ("279936", 1462227128),
    ("823543", -2014198330),
    ("2097152", 607668903),
    ("4782969", -1182699775),
    ("10000000", -1830336757),
    ("19487171", -1603849305),
    ("35831808", -857013643),
    ("62748517", -1167431028),
    ("105413504", -381294639),
    ("170859375", -1658323481),
    ("100:48069", 1009543857),
    ("12", 126087238),
    ("123", -267702483),
    ("1234", -1614185708),
    ("12345", -1188365604),
]


class Murmur2Test(unittest.TestCase):
    def test_kafka_vectors(self) -> None:
        # Ensures murmur2 returns the same signed 32-bit value as Kafka's Java Utils.murmur2.
        for text, expected in KAFKA_VECTORS:
            with self.subTest(key=text):
                self.assertEqual(murmur2(text.encode()), expected)

    def test_range_and_high_bytes(self) -> None:
        # Ensures results stay in the signed 32-bit range for any bytes, including empty and >0x7f.
        rng = random.Random(7)
        for n in range(64):
            data = bytes(rng.randrange(256) for _ in range(n))
            self.assertTrue(-(2**31) <= murmur2(data) < 2**31)

    def test_to_positive_clears_only_the_sign_bit(self) -> None:
        self.assertEqual(to_positive(-1), 0x7FFFFFFF)
        self.assertEqual(to_positive(-(2**31)), 0)
        self.assertEqual(to_positive(-790332482), 1357151166)

    def test_partition_for_key(self) -> None:
        # The partitions of test/unit/clients/producer/partitioner.test.ts.
        self.assertEqual(partition_for_key(b"foobar", 4), 2)
        self.assertEqual(partition_for_key(b"foobar", 12), 6)
        self.assertEqual(partition_for_key(b"foobar", 100), 66)
        self.assertEqual(partition_for_key(b"21", 7), 3)
        self.assertEqual(partition_for_key(b"a-little-bit-long-string", 3), 2)
        with self.assertRaises(ValueError):
            partition_for_key(b"x", 0)


class StickyTest(unittest.TestCase):
    def test_sticks_until_sealed_then_moves(self) -> None:
        values = iter([0.5, 0.0, 0.99])
        s = StickyPartitioner(lambda: next(values))
        self.assertEqual(s.partition("t", 4), 2)
        self.assertEqual(s.partition("t", 4), 2)
        s.on_batch_sealed("t", 1, 4)  # not the sticky one: no change
        self.assertEqual(s.partition("t", 4), 2)
        s.on_batch_sealed("t", 2, 4)  # moves to another partition
        self.assertEqual(s.partition("t", 4), 3)
        s.on_batch_sealed("t", 3, 4)
        self.assertEqual(s.partition("t", 4), 2)

    def test_single_partition(self) -> None:
        s = StickyPartitioner()
        self.assertEqual(s.partition("t", 1), 0)
        s.on_batch_sealed("t", 0, 1)
        self.assertEqual(s.partition("t", 1), 0)


if __name__ == "__main__":
    unittest.main()
