/**
 * The options of `consumer.subscribe(...)` and their validation (the semantics are in
 * group-subscription.ts).
 */
import { InvalidArgumentError } from "../errors.js";
import type { TopicPartition } from "./group-partitions.js";

/** What `consumer.subscribe` joins and how (see group-subscription.ts). */
export interface SubscribeOptions {
  /** The group: 1-249 characters of [A-Za-z0-9._-], not "." or "..". */
  group: string;
  /** The topics to read; at least one, each must exist. */
  topics: readonly string[];
  /** Where partitions without a committed offset start (default "earliest"). */
  from?: "earliest" | "latest" | undefined;
  /** Shown by DescribeGroup (default `${hostname}-${pid}`). */
  memberName?: string | undefined;
  /** The member's session timeout (default: the broker's group.session.timeout.ms). */
  sessionTimeoutMs?: number | undefined;
  /** How often processed offsets are committed (default 5000; 0: only on revoke, close, commit()). */
  autoCommitIntervalMs?: number | undefined;
  /** Upper bound on one Fetch response's batch bytes (default: the consumer's, else the broker's). */
  maxBytes?: number | undefined;
  /** Aborting it closes the subscription (see `close()`). */
  signal?: AbortSignal | undefined;
  /** Called with partitions granted to this member, before they are fetched. */
  onAssigned?: ((partitions: TopicPartition[]) => void) | undefined;
  /** Called with partitions taken from this member, before they are released. */
  onRevoked?: ((partitions: TopicPartition[]) => void) | undefined;
}

/** The events of a subscription. */
export type SubscriptionEvent = "assigned" | "revoked";

/** Listener of "assigned" and "revoked". */
export type PartitionsListener = (partitions: TopicPartition[]) => void;

const INT32_MAX = 2 ** 31 - 1;
const GROUP_ID = /^[A-Za-z0-9._-]{1,249}$/;

/** Throws InvalidArgumentError for a bad option. */
export function validateSubscribeOptions(options: SubscribeOptions): void {
  const g = options?.group;
  if (typeof g !== "string" || !GROUP_ID.test(g) || g === "." || g === "..") {
    throw new InvalidArgumentError(
      `subscribe: invalid group id ${JSON.stringify(g)}: use 1-249 characters of [A-Za-z0-9._-], not "." or ".."`,
    );
  }
  if (!Array.isArray(options.topics) || options.topics.length === 0) {
    throw new InvalidArgumentError("subscribe: topics must be a non-empty array of topic names");
  }
  for (const t of options.topics) {
    if (typeof t !== "string" || t.length === 0) {
      throw new InvalidArgumentError(
        `subscribe: topic names must be non-empty strings, got ${JSON.stringify(t)}`,
      );
    }
  }
  if (options.from !== undefined && options.from !== "earliest" && options.from !== "latest") {
    throw new InvalidArgumentError(
      `subscribe: from must be "earliest" or "latest", got ${String(options.from)}`,
    );
  }
  const name = options.memberName;
  if (name !== undefined && (typeof name !== "string" || Buffer.byteLength(name) > 255)) {
    throw new InvalidArgumentError("subscribe: memberName must be a string of at most 255 bytes");
  }
  const st = options.sessionTimeoutMs;
  if (st !== undefined && !(Number.isInteger(st) && st >= 0 && st <= INT32_MAX)) {
    throw new InvalidArgumentError(`subscribe: sessionTimeoutMs must be a non-negative integer, got ${st}`);
  }
  const ac = options.autoCommitIntervalMs;
  if (ac !== undefined && !(Number.isInteger(ac) && ac >= 0 && ac <= INT32_MAX)) {
    throw new InvalidArgumentError(
      `subscribe: autoCommitIntervalMs must be a non-negative integer, got ${ac}`,
    );
  }
  const mb = options.maxBytes;
  if (mb !== undefined && !(Number.isInteger(mb) && mb >= 0 && mb <= 0xffffffff)) {
    throw new InvalidArgumentError(`subscribe: maxBytes must be a non-negative integer, got ${mb}`);
  }
}
