/**
 * The paper's range assignment (Kafka 2011, §3.2): for each topic, sort its partitions and the
 * members that read it, and give member j the j-th contiguous range. With P partitions and M
 * members each gets floor(P/M); the first P mod M members get one more (6 over 4 → 2, 2, 1, 1).
 * Members that read different topics are fine: each topic is split only among its own readers.
 * Deterministic: the result depends only on the member ids, their topics and the partition counts.
 */

export interface AssignorMember {
  readonly id: string;
  readonly topics: readonly string[];
}

/** memberId → topic → partitions (ascending). Every member appears, possibly with nothing. */
export type Assignment = Map<string, Map<string, number[]>>;

/** Code-unit order, not locale order, so every broker and every test sorts the same way. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Splits each topic's partitions among the members reading it. `partitionCount` gives a topic's
 * partition count, or undefined for a topic that no longer exists (its readers get none of it).
 */
export function rangeAssign(
  members: readonly AssignorMember[],
  partitionCount: (topic: string) => number | undefined,
): Assignment {
  const result: Assignment = new Map(members.map((m) => [m.id, new Map()]));
  const readers = new Map<string, string[]>();
  for (const m of members) {
    for (const t of new Set(m.topics)) {
      const list = readers.get(t);
      if (list) list.push(m.id);
      else readers.set(t, [m.id]);
    }
  }
  for (const [topic, ids] of readers) {
    const count = partitionCount(topic) ?? 0;
    ids.sort(compareIds);
    const each = Math.floor(count / ids.length);
    const extra = count % ids.length;
    let next = 0;
    ids.forEach((id, j) => {
      const n = each + (j < extra ? 1 : 0);
      const range: number[] = [];
      for (let i = 0; i < n; i++) range.push(next++);
      if (range.length > 0) result.get(id)!.set(topic, range);
    });
  }
  return result;
}
