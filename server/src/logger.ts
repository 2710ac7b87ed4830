import { pino } from "pino";

/** The broker's structured logger (pino). Components take a child: `logger.child({ component: "log" })`. */
export type Logger = pino.Logger;

export interface LoggerOptions {
  level?: string;
  /** Pretty, human-readable lines instead of JSON (default: when stdout is a TTY). */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ level, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino({ level });
}

/** A logger that drops everything; the default for library code and tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
