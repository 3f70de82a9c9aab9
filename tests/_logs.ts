/**
 * Capturing kevents' log records in memory, for tests that assert what was
 * logged.
 *
 * @module
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Logs of the `kevents` categories, captured in memory until disposed. */
export async function captureLogs(): Promise<{ records: LogRecord[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record: LogRecord) => void records.push(record) },
    loggers: [
      { category: ["kevents"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}
