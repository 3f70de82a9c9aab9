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
  type LogRecord,
  reset,
  type TextFormatter,
} from "@logtape/logtape";
import { ConfigError } from "../config/mod.ts";
import { redact } from "./redact.ts";

/** Credentials no log line may show (see {@linkcode addLogSecrets}). */
const secrets: string[] = [];

/**
 * Adds credentials (API keys, tokens, passwords) that every log line
 * written from now on shows as "[redacted]", whatever logged them.
 */
export function addLogSecrets(values: readonly string[]): void {
  for (const v of values) if (v.length >= 4 && !secrets.includes(v)) secrets.push(v);
}

/** Wraps a formatter so that its output never holds a registered secret. */
function redacting(format: TextFormatter): TextFormatter {
  return (record: LogRecord) => {
    const line = format(record);
    return secrets.length === 0 ? line : redact(line, secrets);
  };
}

/**
 * The record with each string value written into the text of its message,
 * for the JSON formatter, which renders a value as JSON: a string would
 * show its quotes (`http://"0.0.0.0":5555`). Other values are left to the
 * formatter; `properties` keep every value as given.
 */
function withBareStrings(record: LogRecord): LogRecord {
  const parts = record.message;
  if (!parts.some((part, i) => i % 2 === 1 && typeof part === "string")) return record;
  const message: unknown[] = [parts[0]];
  for (let i = 1; i < parts.length; i += 2) {
    const value = parts[i];
    const text = String(parts[i + 1] ?? "");
    if (typeof value === "string") message[message.length - 1] = `${message.at(-1)}${value}${text}`;
    else message.push(value, text);
  }
  return { ...record, message };
}

/** The JSON lines formatter, string values in the message without quotes. */
function jsonLines(): TextFormatter {
  const format = getJsonLinesFormatter();
  return (record) => format(withBareStrings(record));
}

/** Options for {@linkcode setupLogging}. */
export interface LogOptions {
  /** Lowest level logged (default "info"). */
  level?: LogLevel;
  /** Write JSON lines (default: when stderr is not a terminal). */
  json?: boolean;
  /** Where lines go (default stderr). */
  writable?: WritableStream<Uint8Array>;
}

const LOG_LEVEL_ALIASES: Readonly<Record<string, LogLevel>> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
  off: "fatal",
};

/**
 * Parses a DD_LOG_LEVEL value (Datadog's names: trace, debug, info, warn,
 * error, critical, off; and warning, fatal), in any case; undefined when
 * unset. Throws ConfigError naming the variable for anything else.
 */
export function logLevelFrom(text: string | undefined): LogLevel | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const level = LOG_LEVEL_ALIASES[text.trim().toLowerCase()];
  if (level === undefined) {
    throw new ConfigError({
      key: "log_level",
      source: "DD_LOG_LEVEL",
      value: text,
      rule: `must be one of ${Object.keys(LOG_LEVEL_ALIASES).join(", ")} (in any case)`,
    });
  }
  return level;
}

/** Configures logging for the process. */
export async function setupLogging(options: LogOptions = {}): Promise<void> {
  const json = options.json ?? !Deno.stderr.isTerminal();
  await configure({
    reset: true,
    sinks: {
      stderr: getStreamSink(options.writable ?? Deno.stderr.writable, {
        // Text: logtape's "bare" values, strings without quotes (control characters escaped).
        formatter: redacting(json ? jsonLines() : getTextFormatter({ value: "bare" })),
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
