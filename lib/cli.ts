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
  /** Stop generating after this many changes (default: never). */
  eventsTotal?: number;
  /** Seed of the event generator (default 1). */
  seed: number;
  /** Event TTL in seconds (default 3600). */
  eventTtlSeconds: number;
  /** Reproduce the events watch quirk of the real server (stale RV: 200 and close). */
  eventsWatchQuirk: boolean;
}

/** Options of `kevents run`. */
export interface RunCommand {
  name: "run";
  /** `--kubeconfig`: wins over KUBECONFIG, ~/.kube/config and in-cluster config. */
  kubeconfig?: string;
  /** `--config`: path of datadog.yaml (or a directory holding it). */
  config?: string;
}

/** Output formats of `kevents status`. */
export type StatusOutput = "text" | "json";

/** Options of `kevents status`. */
export interface StatusCommand {
  name: "status";
  /** `--kubeconfig`, as for run. */
  kubeconfig?: string;
  /** `--config`, as for run. */
  config?: string;
  /** `--output` / `-o`: an aligned table (default "text") or one JSON object. */
  output: StatusOutput;
}

/** Options of `kevents demo`. */
export interface DemoCommand {
  name: "demo";
  /** Generated events per second (default 200). */
  eventsPerSecond: number;
  /** Seed of the event generator (default 1). */
  seed: number;
}

/** A parsed command line. */
export type Command =
  | RunCommand
  | StatusCommand
  | DemoCommand
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
  kevents [run] [--kubeconfig PATH] [--config PATH]
                                     Collect events (the default command); settings come from
                                     datadog.yaml and DD_* environment variables
  kevents status [--kubeconfig PATH] [--config PATH] [--output text|json]
                                     Show who leads (lock holder, since when, transitions), the
                                     checkpoint token (resourceVersion, age) and whether it lags;
                                     settings resolved as for run
  kevents demo [--events-per-second N] [--seed N]
                                     Run three replicas against an embedded fake API server, hand
                                     leadership over, and report delivered events, duplicates, gaps
  kevents fake-apiserver [options]   Run a fake Kubernetes API server (for trying kevents without a cluster)
  kevents version                    Print the version
  kevents --help                     Print this help

fake-apiserver options:
  --kubeconfig-out PATH      Write a kubeconfig for the server here (default ./kevents-fake.kubeconfig)
  --port N                   Listen on this port (default: any free port)
  --plain-http               Serve plain HTTP instead of HTTPS with a generated CA
  --events-per-second N      Generate this many realistic events per second (default 5; 0 = none)
  --seed N                   Seed of the event generator (default 1)
  --events-total N           Stop generating after N changes (default: never)
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

/** Splits "--flag=value" and "--flag value"; returns [flag, value getter]. */
function flagOf(
  rest: readonly string[],
  i: number,
): [string, () => string | undefined, () => number] {
  const arg = rest[i]!;
  const eq = arg.indexOf("=");
  const flag = eq > 0 ? arg.slice(0, eq) : arg;
  const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
  let consumed = 0;
  return [flag, () => {
    if (inline !== undefined) return inline;
    consumed = 1;
    return rest[i + 1];
  }, () => consumed];
}

function path(flag: string, v: string | undefined): string {
  if (v === undefined || v === "") throw new UsageError(`Cannot parse ${flag}: a path is required`);
  return v;
}

function parseRun(rest: readonly string[]): Command {
  const cmd: RunCommand = { name: "run" };
  for (let i = 0; i < rest.length; i++) {
    const [flag, value, consumed] = flagOf(rest, i);
    switch (flag) {
      case "--help":
      case "-h":
        return { name: "help", topic: "run" };
      case "--kubeconfig":
        cmd.kubeconfig = path(flag, value());
        break;
      case "--config":
        cmd.config = path(flag, value());
        break;
      default:
        throw new UsageError(`Unknown option "${rest[i]}" for run: run "kevents --help"`);
    }
    i += consumed();
  }
  return cmd;
}

function parseStatus(rest: readonly string[]): Command {
  const cmd: StatusCommand = { name: "status", output: "text" };
  for (let i = 0; i < rest.length; i++) {
    const [flag, value, consumed] = flagOf(rest, i);
    switch (flag) {
      case "--help":
      case "-h":
        return { name: "help", topic: "status" };
      case "--kubeconfig":
        cmd.kubeconfig = path(flag, value());
        break;
      case "--config":
        cmd.config = path(flag, value());
        break;
      case "--output":
      case "-o": {
        const v = value();
        if (v === undefined) throw new UsageError(`Cannot parse ${flag}: a value is required`);
        if (v !== "text" && v !== "json") {
          throw new UsageError(`Cannot parse ${flag} "${v}": must be text or json`);
        }
        cmd.output = v;
        break;
      }
      default:
        throw new UsageError(`Unknown option "${rest[i]}" for status: run "kevents --help"`);
    }
    i += consumed();
  }
  return cmd;
}

function parseDemo(rest: readonly string[]): Command {
  const cmd: DemoCommand = { name: "demo", eventsPerSecond: 200, seed: 1 };
  for (let i = 0; i < rest.length; i++) {
    const [flag, value, consumed] = flagOf(rest, i);
    switch (flag) {
      case "--help":
      case "-h":
        return { name: "help", topic: "demo" };
      case "--events-per-second":
        cmd.eventsPerSecond = number(
          flag,
          value(),
          (n) => n > 0 && n <= 100_000,
          "must be a number from 1 to 100000",
        );
        break;
      case "--seed":
        cmd.seed = number(flag, value(), (n) => Number.isInteger(n), "must be an integer");
        break;
      default:
        throw new UsageError(`Unknown option "${rest[i]}" for demo: run "kevents --help"`);
    }
    i += consumed();
  }
  return cmd;
}

/** Parses the arguments after the program name. */
export function parseCommandLine(args: readonly string[]): Command {
  const [first, ...rest] = args;
  if (first === "--help" || first === "-h" || first === "help") return { name: "help" };
  if (first === "version" || first === "--version") return { name: "version" };
  if (first === undefined) return { name: "run" };
  if (first === "run") return parseRun(rest);
  if (first.startsWith("--")) return parseRun(args);
  if (first === "status") return parseStatus(rest);
  if (first === "demo") return parseDemo(rest);
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
      case "--events-total":
        cmd.eventsTotal = number(
          flag,
          value(),
          (n) => Number.isInteger(n) && n > 0,
          "must be a whole number greater than 0",
        );
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
