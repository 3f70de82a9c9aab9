/**
 * The command line: a pure parser from `Deno.args` to a plain command
 * object. main.ts runs the command; this file reads nothing from the
 * environment.
 *
 * @module
 */

/** kevents' version, printed by `kevents version`. */
export const VERSION = "0.1.0";

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
  /** Seed of the event generator (default 1). */
  seed: number;
  /** Event TTL in seconds (default 3600). */
  eventTtlSeconds: number;
  /** Reproduce the events watch quirk of the real server (stale RV: 200 and close). */
  eventsWatchQuirk: boolean;
}

/** A parsed command line. */
export type Command =
  | FakeApiServerCommand
  | { name: "version" }
  | { name: "help"; topic?: string };

/** Raised for a command line that cannot be parsed; main.ts exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Usage text for `kevents --help`. */
export const USAGE = `kevents ${VERSION}: Kubernetes event collector

Usage:
  kevents fake-apiserver [options]   Run a fake Kubernetes API server (for trying kevents without a cluster)
  kevents version                    Print the version
  kevents --help                     Print this help

fake-apiserver options:
  --kubeconfig-out PATH      Write a kubeconfig for the server here (default ./kevents-fake.kubeconfig)
  --port N                   Listen on this port (default: any free port)
  --plain-http               Serve plain HTTP instead of HTTPS with a generated CA
  --events-per-second N      Generate this many realistic events per second (default 5; 0 = none)
  --seed N                   Seed of the event generator (default 1)
  --event-ttl SECONDS        Delete events this long after their last update (default 3600)
  --events-watch-quirk       Answer a stale events watch with 200 and an immediate close, as
                             kube-apiserver does for resources without a watch cache

Exit codes: 0 success, 1 runtime failure, 2 bad command line or configuration.
`;

function number(
  flag: string,
  value: string | undefined,
  rule: (n: number) => boolean,
  text: string,
): number {
  if (value === undefined) throw new UsageError(`Cannot parse ${flag}: a value is required`);
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !rule(n)) {
    throw new UsageError(`Cannot parse ${flag} "${value}": ${text}`);
  }
  return n;
}

/** Parses the arguments after the program name. */
export function parseCommandLine(args: readonly string[]): Command {
  const [first, ...rest] = args;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    return { name: "help" };
  }
  if (first === "version" || first === "--version") return { name: "version" };
  if (first !== "fake-apiserver") {
    throw new UsageError(`Unknown command "${first}": run "kevents --help" for the list`);
  }
  const cmd: FakeApiServerCommand = {
    name: "fake-apiserver",
    kubeconfigOut: "./kevents-fake.kubeconfig",
    port: 0,
    plainHttp: false,
    eventsPerSecond: 5,
    seed: 1,
    eventTtlSeconds: 3600,
    eventsWatchQuirk: false,
  };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = () => inline ?? rest[++i];
    switch (flag) {
      case "--help":
      case "-h":
        return { name: "help", topic: "fake-apiserver" };
      case "--kubeconfig-out": {
        const v = value();
        if (v === undefined || v === "") {
          throw new UsageError("Cannot parse --kubeconfig-out: a path is required");
        }
        cmd.kubeconfigOut = v;
        break;
      }
      case "--port":
        cmd.port = number(
          flag,
          value(),
          (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
          "must be an integer from 0 to 65535",
        );
        break;
      case "--plain-http":
        cmd.plainHttp = true;
        break;
      case "--events-per-second":
        cmd.eventsPerSecond = number(
          flag,
          value(),
          (n) => n >= 0 && n <= 1_000_000,
          "must be a number from 0 to 1000000",
        );
        break;
      case "--seed":
        cmd.seed = number(flag, value(), (n) => Number.isInteger(n), "must be an integer");
        break;
      case "--event-ttl":
        cmd.eventTtlSeconds = number(
          flag,
          value(),
          (n) => n > 0,
          "must be a number of seconds greater than 0",
        );
        break;
      case "--events-watch-quirk":
        cmd.eventsWatchQuirk = true;
        break;
      default:
        throw new UsageError(`Unknown option "${arg}" for fake-apiserver: run "kevents --help"`);
    }
  }
  return cmd;
}
