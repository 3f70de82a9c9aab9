/**
 * `kevents fake-apiserver`: its options and their parser. main.ts runs the
 * server.
 *
 * @module
 */

import { type HelpCommand, number, type OptionSpec, parseOptions, path } from "./_options.ts";

/** Options of `kevents fake-apiserver`. */
export interface FakeApiServerCommand {
  name: "fake-apiserver";
  /** Where to write the kubeconfig (default "./kevents-fake.kubeconfig"). */
  kubeconfigOut: string;
  /** Port (default 0: any free port). */
  port: number;
  /** Plain HTTP instead of HTTPS with a generated CA. */
  plainHttp: boolean;
  /** Generated events per second; 0 disables the generator (default 5). */
  eventsPerSecond: number;
  /** Stop generating after this many changes (default: never). */
  eventsTotal?: number;
  /** Seed of the event generator (default 1). */
  seed: number;
  /** Event TTL in seconds (default 3600). */
  eventTtlSeconds: number;
  /** Reproduce the events watch quirk of the real server (stale RV: 200 and close). */
  eventsWatchQuirk: boolean;
}

const OPTIONS: Readonly<Record<string, OptionSpec<FakeApiServerCommand>>> = {
  "kubeconfig-out": { type: "string", apply: (cmd, v, flag) => cmd.kubeconfigOut = path(flag, v) },
  port: {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.port = number(
        flag,
        v,
        (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
        "must be an integer from 0 to 65535",
      ),
  },
  "plain-http": { type: "boolean", apply: (cmd) => cmd.plainHttp = true },
  "events-per-second": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventsPerSecond = number(
        flag,
        v,
        (n) => n >= 0 && n <= 1_000_000,
        "must be a number from 0 to 1000000",
      ),
  },
  seed: {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.seed = number(flag, v, (n) => Number.isInteger(n), "must be an integer"),
  },
  "events-total": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventsTotal = number(
        flag,
        v,
        (n) => Number.isInteger(n) && n > 0,
        "must be a whole number greater than 0",
      ),
  },
  "event-ttl": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventTtlSeconds = number(
        flag,
        v,
        (n) => n > 0,
        "must be a number of seconds greater than 0",
      ),
  },
  "events-watch-quirk": { type: "boolean", apply: (cmd) => cmd.eventsWatchQuirk = true },
};

/** Parses the arguments after `fake-apiserver`. */
export function parseFakeApiServer(args: readonly string[]): FakeApiServerCommand | HelpCommand {
  return parseOptions("fake-apiserver", args, {
    name: "fake-apiserver",
    kubeconfigOut: "./kevents-fake.kubeconfig",
    port: 0,
    plainHttp: false,
    eventsPerSecond: 5,
    seed: 1,
    eventTtlSeconds: 3600,
    eventsWatchQuirk: false,
  }, OPTIONS);
}
