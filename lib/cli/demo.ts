/**
 * `kevents demo`: its options and their parser.
 *
 * @module
 */

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
