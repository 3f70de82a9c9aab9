/**
 * What a command gets from main.ts, the only reader of the process's
 * environment and signals.
 *
 * @module
 */

/** The process's environment and its stop request. */
export interface CommandContext {
  /** The process environment (`Deno.env.toObject()`). */
  env: Record<string, string>;
  /** Aborted, with a {@linkcode StopRequested} as its reason, when the process is asked to stop. */
  stop: AbortSignal;
}

/** The reason of {@linkcode CommandContext.stop}: a signal (SIGINT, SIGTERM) asked the process to stop. */
export class StopRequested extends Error {
  /** The signal's name. */
  readonly signalName: string;

  constructor(signalName: string) {
    super(`Stopped by ${signalName}`);
    this.name = "StopRequested";
    this.signalName = signalName;
  }
}

/** The name of what stopped `signal`, for log lines. */
export function stopName(signal: AbortSignal): string {
  return signal.reason instanceof StopRequested ? signal.reason.signalName : String(signal.reason);
}
