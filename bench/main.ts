/**
 * Benchmarks: `deno task bench [name ...] [--smoke] [--charts DIR]`.
 *
 * Each benchmark prints its figures, compares them with the issue's
 * targets in the same run (compare ratios, not absolute times: machines are
 * noisy), and ends with one `RESULT <name> <json>` line. Results and the
 * exact commands are recorded in docs/BENCHMARKS.md.
 *
 * @module
 */

import { run as runApiLoad } from "./api_load.ts";
import { run as runCatchup } from "./catchup.ts";
import { run as runFailover } from "./failover.ts";
import { run as runMemory } from "./memory.ts";
import { run as runSoak } from "./soak.ts";
import { run as runThroughput } from "./throughput.ts";

/** Options every benchmark takes; the failover and API-load benchmarks read only `smoke`. */
interface RunOptions {
  smoke: boolean;
  chartsDir?: string;
  keventsV8Flags?: string;
  keventsSinks?: string;
  keventsEnv?: Record<string, string>;
}

/** The benchmarks by name, in the order they run. */
const BENCHMARKS: Record<string, (options: RunOptions) => Promise<void>> = {
  throughput: runThroughput,
  catchup: runCatchup,
  failover: (o) => runFailover({ smoke: o.smoke }),
  apiload: (o) => runApiLoad({ smoke: o.smoke }),
  memory: runMemory,
  soak: runSoak,
};

/** What runs when no name is given: all but the 10-minute soak. */
const DEFAULT = ["throughput", "catchup", "failover", "apiload", "memory"];

const DOCS = new URL("../docs", import.meta.url).pathname;

const USAGE = `Usage: deno task bench [name ...] [--smoke] [--charts DIR | --no-charts]
                        [--kevents-v8-flags FLAGS] [--kevents-sinks LIST]

Benchmarks (default: all but soak):
  throughput   200,000 events through kevents' pump vs a raw reader, client-node's Watch
               and kubectl (a few minutes)
  catchup      a 410 with 200,000 events to relist in pages of 500, then the watch
  failover     takeover after SIGTERM and SIGKILL, polling vs watching followers
  apiload      API requests per minute per replica, 3 and 10 replicas, idle and under load
  memory       RSS of an idle follower and a leader at 5 events/s (two kevents run replicas)
               after 60 s, against the targets and an empty Deno script (3 rounds, 4 minutes)
  soak         10 minutes at 2,000 events/s into the stdout sink, RSS every 10 s
               (not run by default: name it)

Options:
  --smoke        a tiny run of each (a few seconds; the memory 8 s, the soak 20 s), as CI does
  --charts DIR   write the SVG charts into DIR (default: docs/ on a full run, none with --smoke)
  --no-charts    write no charts
  --kevents-v8-flags FLAGS
                 run kevents' own processes (the pump in throughput and catchup, kevents run in
                 memory and soak) with these V8 flags instead of the shipped ones, e.g.
                 --max-semi-space-size=4, or none for V8's defaults (default: the shipped flags,
                 those of deno.json's compile task; --no-code-cache stays either way)
  --kevents-sinks LIST
                 the memory benchmark's replicas use these sinks (default stdout); with otlp or
                 webhook, each round starts a receiver for them that takes every request
  --kevents-env K=V[,K=V...]
                 the memory benchmark's replicas get these environment variables too (e.g.
                 KEVENTS_OTLP_COMPRESSION=none), to measure what a setting costs
  --help         this text
`;

/** A parsed command line. */
export interface BenchArgs {
  names: string[];
  smoke: boolean;
  chartsDir: string | undefined;
  keventsV8Flags: string | undefined;
  keventsSinks: string | undefined;
  keventsEnv: Record<string, string> | undefined;
  help: boolean;
}

/** Parses the command line; throws with a message for a bad one. */
export function parseBenchArgs(args: readonly string[]): BenchArgs {
  const names: string[] = [];
  let smoke = false;
  let charts: string | null | undefined;
  let help = false;
  let keventsV8Flags: string | undefined;
  let keventsSinks: string | undefined;
  let keventsEnv: Record<string, string> | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--smoke") smoke = true;
    else if (arg === "--help" || arg === "-h") help = true;
    else if (arg === "--no-charts") charts = null;
    else if (arg === "--charts" || arg.startsWith("--charts=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[++i];
      if (value === undefined || value === "") {
        throw new Error("Cannot parse --charts: a folder is required");
      }
      charts = value;
    } else if (arg === "--kevents-v8-flags" || arg.startsWith("--kevents-v8-flags=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[++i];
      if (value === undefined || value === "") {
        throw new Error("Cannot parse --kevents-v8-flags: flags are required");
      }
      keventsV8Flags = value;
    } else if (arg === "--kevents-sinks" || arg.startsWith("--kevents-sinks=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[++i];
      if (value === undefined || value === "") {
        throw new Error("Cannot parse --kevents-sinks: a comma list of sinks is required");
      }
      keventsSinks = value;
    } else if (arg === "--kevents-env" || arg.startsWith("--kevents-env=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[++i];
      const pairs = (value ?? "").split(",").map((p) => p.split("="));
      if (value === undefined || pairs.some((p) => p.length < 2 || p[0] === "")) {
        throw new Error("Cannot parse --kevents-env: K=V pairs separated by commas are required");
      }
      keventsEnv = Object.fromEntries(pairs.map(([k, ...v]) => [k!, v.join("=")]));
    } else if (arg.startsWith("-")) throw new Error(`Unknown option "${arg}"`);
    else if (!(arg in BENCHMARKS)) {
      throw new Error(
        `Unknown benchmark "${arg}": one of ${Object.keys(BENCHMARKS).join(", ")}`,
      );
    } else if (!names.includes(arg)) names.push(arg);
  }
  const chartsDir = charts === null ? undefined : charts ?? (smoke ? undefined : DOCS);
  return {
    names: names.length === 0 ? DEFAULT : names,
    smoke,
    chartsDir,
    keventsV8Flags,
    keventsSinks,
    keventsEnv,
    help,
  };
}

async function main(args: string[]): Promise<number> {
  let parsed: BenchArgs;
  try {
    parsed = parseBenchArgs(args);
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  let failed = 0;
  for (const name of parsed.names) {
    const t0 = performance.now();
    try {
      await BENCHMARKS[name]!({
        smoke: parsed.smoke,
        chartsDir: parsed.chartsDir,
        keventsV8Flags: parsed.keventsV8Flags,
        keventsSinks: parsed.keventsSinks,
        ...(parsed.keventsEnv === undefined ? {} : { keventsEnv: parsed.keventsEnv }),
      });
      console.error(`bench: ${name} finished in ${Math.round((performance.now() - t0) / 1000)} s`);
    } catch (e) {
      failed++;
      console.error(`bench: ${name} failed: ${e instanceof Error ? e.stack : e}`);
    }
    console.log();
  }
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
