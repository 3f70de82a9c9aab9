/**
 * `kevents demo`: its options, their parser, and the command, which runs
 * the demo (loaded only for this command, with the fake API server it embeds).
 *
 * @module
 */

import { setupLogging, teardownLogging } from "../ops/mod.ts";
import { type HelpCommand, number, type OptionSpec, parseOptions } from "./_options.ts";

/** Options of `kevents demo`. */
export interface DemoCommand {
  name: "demo";
  /** Generated events per second (default 200). */
  eventsPerSecond: number;
  /** Seed of the event generator (default 1). */
  seed: number;
}

const OPTIONS: Readonly<Record<string, OptionSpec<DemoCommand>>> = {
  "events-per-second": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventsPerSecond = number(
        flag,
        v,
        (n) => n > 0 && n <= 100_000,
        "must be a number from 1 to 100000",
      ),
  },
  seed: {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.seed = number(flag, v, (n) => Number.isInteger(n), "must be an integer"),
  },
};

/** Parses the arguments after `demo`. */
export function parseDemo(args: readonly string[]): DemoCommand | HelpCommand {
  return parseOptions("demo", args, { name: "demo", eventsPerSecond: 200, seed: 1 }, OPTIONS);
}

/** Runs `kevents demo`; exit code 0 when the audit finds no gap, 1 otherwise. */
export async function runDemoCommand(cmd: DemoCommand): Promise<number> {
  // Warnings of the crashed replica would bury the timeline: only errors are logged.
  await setupLogging({ level: "error", json: false });
  try {
    // Loaded only for this command, as the fake API server it embeds.
    const { runDemo } = await import("../demo/mod.ts");
    const result = await runDemo({ eventsPerSecond: cmd.eventsPerSecond, seed: cmd.seed });
    return result.gaps === 0 ? 0 : 1;
  } finally {
    await teardownLogging();
  }
}
