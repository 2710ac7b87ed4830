/**
 * Errors the broker layer throws. Like storage errors they carry no gRPC status: `rpc/status.ts`
 * maps each class to its code (DESIGN §2) and keeps the message, which tells the user what to do.
 */
export class BrokerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request itself is malformed (bad name, empty batch, unknown enum value...). */
export class InvalidRequestError extends BrokerError {}

export class TopicNotFoundError extends BrokerError {
  constructor(readonly topic: string) {
    super(`topic "${topic}" does not exist; create it with CreateTopic (rill topic create ${topic})`);
  }
}

export class PartitionNotFoundError extends BrokerError {
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly partitionCount: number,
  ) {
    super(`topic "${topic}" has partitions 0..${partitionCount - 1}; partition ${partition} does not exist`);
  }
}

export class TopicExistsError extends BrokerError {
  constructor(readonly topic: string) {
    super(`topic "${topic}" already exists`);
  }
}

/** A configured limit was exceeded (batch size, records per batch...). */
export class LimitExceededError extends BrokerError {}

/** The broker is listening but still opening its logs (recovery after an unclean stop can be long). */
export class StartingError extends BrokerError {
  constructor() {
    super("the broker is starting (recovering logs); retry");
  }
}

/** The broker is draining or stopped. */
export class ShuttingDownError extends BrokerError {
  constructor() {
    super("the broker is shutting down; retry against another broker or after it restarts");
  }
}

/**
 * A partition whose fsync failed refuses writes until a probe rewrites and fsyncs its unflushed
 * data (every `retryMs`), or, when that data no longer reads back intact (`retryMs` null), until the
 * broker restarts and recovers it.
 */
export class PartitionOfflineError extends BrokerError {
  constructor(
    readonly topic: string,
    readonly partition: number,
    cause: unknown,
    options: { retryMs: number | null } = { retryMs: null },
  ) {
    const code =
      (cause as NodeJS.ErrnoException | undefined)?.code ?? (cause as Error)?.message ?? String(cause);
    const what =
      options.retryMs === null
        ? "fix the disk and restart the broker (recovery checks the log)"
        : `nothing was appended; retry later: the broker tries the disk again every ${options.retryMs} ms and takes writes as soon as an fsync succeeds (acknowledged records stay readable)`;
    super(
      `partition ${partition} of topic "${topic}" is offline for writes after an fsync failure (${code}); ${what}`,
      {
        cause,
      },
    );
  }
}

/**
 * The request is valid but the state does not allow it: a stale group generation, a partition the
 * member does not own, a member that is no longer in its group, a group that still has members.
 */
export class FailedPreconditionError extends BrokerError {}

export class GroupNotFoundError extends BrokerError {
  constructor(readonly group: string) {
    super(
      `group "${group}" has no members and no committed offsets; list groups with ListGroups (rill group list)`,
    );
  }
}

/** A value past what the log holds (e.g. committing an offset beyond the high watermark). */
export class BeyondHighWatermarkError extends BrokerError {}
