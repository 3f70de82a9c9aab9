/**
 * Logging setup: JSON lines on stderr when stderr is not a terminal (what
 * log collectors want), readable text on a terminal. stdout is left to the
 * stdout sink.
 *
 * @module
 */

import {
  configure,
  getJsonLinesFormatter,
  getStreamSink,
  getTextFormatter,
  type LogLevel,
  parseLogLevel,
  reset,
} from "@logtape/logtape";

/** Options for {@linkcode setupLogging}. */
export interface LogOptions {
  /** Lowest level logged (default "info"). */
  level?: LogLevel;
  /** Write JSON lines (default: when stderr is not a terminal). */
  json?: boolean;
}

/** Parses a DD_LOG_LEVEL value (Datadog's names included: warn, trace, critical, off). */
export function logLevelFrom(text: string | undefined): LogLevel | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const t = text.trim().toLowerCase();
  const alias: Record<string, LogLevel> = { warn: "warning", critical: "fatal", off: "fatal" };
  return alias[t] ?? parseLogLevel(t);
}

/** Configures logging for the process. */
export async function setupLogging(options: LogOptions = {}): Promise<void> {
  const json = options.json ?? !Deno.stderr.isTerminal();
  await configure({
    reset: true,
    sinks: {
      stderr: getStreamSink(Deno.stderr.writable, {
        formatter: json ? getJsonLinesFormatter() : getTextFormatter(),
      }),
    },
    loggers: [
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
      { category: ["kevents"], lowestLevel: options.level ?? "info", sinks: ["stderr"] },
    ],
  });
}

/** Flushes and removes the logging setup. */
export async function teardownLogging(): Promise<void> {
  await reset();
}
