/**
 * Client logging. The library is silent unless the application passes a log sink (STYLE habit 10):
 * nothing is written to stdout/stderr by default. Each component logs through a child logger whose
 * namespace ("producer", "consumer", ...) is carried on every entry, so a sink can route or filter.
 * Per-batch detail goes to `debug`; retries and dropped connections are `warn`.
 */

/** Severity of a log entry, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log entry as handed to a sink. */
export interface LogEntry {
  level: LogLevel;
  /** Component that logged it, e.g. "producer" or "consumer". */
  namespace: string;
  message: string;
  /** Structured context (topic, partition, attempt, error, ...). */
  fields: Record<string, unknown>;
  /** Milliseconds since the Unix epoch. */
  time: number;
}

/** Receives every entry at or above the configured level. Must not throw. */
export type LogSink = (entry: LogEntry) => void;

/** The logger handed to client components. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger for a sub-component: namespaces are joined with a dot. */
  child(namespace: string): Logger;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Where entries go. Without a sink the logger drops everything. */
  sink?: LogSink | undefined;
  /** Lowest level passed to the sink (default "info"). */
  level?: LogLevel | undefined;
  /** Namespace of the root logger (default "rill"). */
  namespace?: string | undefined;
}

/** Creates a logger; silent when no sink is given. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const sink = options.sink;
  if (sink === undefined) return silentLogger();
  const min = LEVEL_RANK[options.level ?? "info"];
  const make = (namespace: string): Logger => {
    const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
      if (LEVEL_RANK[level] < min) return;
      try {
        sink({ level, namespace, message, fields: fields ?? {}, time: Date.now() });
      } catch {
        // A broken sink must never break the client.
      }
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      child: (ns) => make(`${namespace}.${ns}`),
    };
  };
  return make(options.namespace ?? "rill");
}

const SILENT: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => SILENT,
};

/** A logger that drops everything (the default). */
export function silentLogger(): Logger {
  return SILENT;
}

/**
 * A ready-made sink writing one line per entry to stderr:
 * `2024-01-01T00:00:00.000Z warn rill.producer retrying produce {"attempt":2}`.
 */
export function stderrLogSink(entry: LogEntry): void {
  const fields = Object.keys(entry.fields).length > 0 ? ` ${safeJson(entry.fields)}` : "";
  process.stderr.write(
    `${new Date(entry.time).toISOString()} ${entry.level} ${entry.namespace} ${entry.message}${fields}\n`,
  );
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Error) return { name: v.name, message: v.message };
      return v;
    });
  } catch {
    return "[unserializable]";
  }
}
