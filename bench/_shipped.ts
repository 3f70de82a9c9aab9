/**
 * The Deno run flags kevents ships with, read from deno.json so that they
 * live in one place: the `compile` task builds the binary (and so the
 * image), and its `--v8-flags=...` and `--no-code-cache` are what users
 * run. The `start` task must run kevents the same way; reading the flags
 * throws when its V8 flags (or its code cache) differ from the binary's.
 *
 * The benchmarks run kevents' own processes (the pump contestant, `kevents
 * run`) with these flags unless `--kevents-v8-flags` overrides the V8
 * flags for an experiment; `--no-code-cache` stays either way, as the
 * binary never writes a code cache.
 *
 * @module
 */

/** How one task runs Deno, as far as the benchmarks care. */
export interface TaskFlags {
  /** The V8 flags of its `--v8-flags=...` options, in order (none: empty). */
  v8Flags: string[];
  /** Whether it has `--no-code-cache`. */
  noCodeCache: boolean;
}

/** The flags kevents ships with, and how to pass them to `deno run`. */
export interface ShippedFlags extends TaskFlags {
  /** `deno run` options that reproduce them: `--no-code-cache`, `--v8-flags=a,b` (if any). */
  runFlags: string[];
}

/** The flags kevents' own processes run with in one benchmark run. */
export interface KeventsFlags {
  /** `deno run` options, placed before the script. */
  runFlags: string[];
  /** The V8 flags, comma-separated ("" for V8's defaults). */
  v8Flags: string;
  /** "shipped" (deno.json's compile task) or "override" (`--kevents-v8-flags`). */
  source: "shipped" | "override";
  /** The override as given (undefined when shipped); charts put it in their file names. */
  override?: string;
}

const DENO_JSON = new URL("../deno.json", import.meta.url);

/** `--kevents-v8-flags` value that runs kevents with V8's defaults. */
export const NO_V8_FLAGS = "none";

function splitV8Flags(value: string): string[] {
  return value.replace(/^["']|["']$/g, "").split(",").map((f) => f.trim()).filter((f) => f !== "");
}

/**
 * Reads the V8 flags and `--no-code-cache` of a task's command line. Only
 * Deno's own options count: those before the entry point (the first
 * argument ending in .ts or .js); what follows it is kevents' command line.
 */
export function parseTaskFlags(command: string): TaskFlags {
  const v8Flags: string[] = [];
  let noCodeCache = false;
  for (const arg of command.trim().split(/\s+/)) {
    if (/\.(ts|js|mts|mjs)$/.test(arg)) break;
    if (arg === "--no-code-cache") noCodeCache = true;
    else if (arg.startsWith("--v8-flags=")) {
      // Deno appends the V8 flags of repeated options, in order.
      v8Flags.push(...splitV8Flags(arg.slice("--v8-flags=".length)));
    }
  }
  return { v8Flags, noCodeCache };
}

/** `deno run` options for V8 flags and the code cache. */
function runFlagsOf(flags: TaskFlags): string[] {
  return [
    ...(flags.noCodeCache ? ["--no-code-cache"] : []),
    ...(flags.v8Flags.length === 0 ? [] : [`--v8-flags=${flags.v8Flags.join(",")}`]),
  ];
}

function taskCommand(tasks: Record<string, unknown>, name: string): string {
  const task = tasks[name];
  // A task is a command line, or an object holding one (Deno 2).
  const command = typeof task === "object" && task !== null
    ? (task as { command?: unknown }).command
    : task;
  if (typeof command !== "string" || command.trim() === "") {
    throw new Error(`Cannot read the shipped flags: deno.json has no "${name}" task`);
  }
  return command;
}

/**
 * The shipped flags from deno.json's tasks: the `compile` task's, after
 * checking that the `start` task has the same V8 flags (in the same order)
 * and `--no-code-cache` as well. Throws naming what differs.
 */
export function shippedFlagsOf(tasks: Record<string, unknown>): ShippedFlags {
  const compile = parseTaskFlags(taskCommand(tasks, "compile"));
  const start = parseTaskFlags(taskCommand(tasks, "start"));
  const shown = (f: TaskFlags) => f.v8Flags.length === 0 ? "none" : f.v8Flags.join(",");
  if (shown(compile) !== shown(start)) {
    throw new Error(
      `Cannot use the shipped flags: the start task's V8 flags (${
        shown(start)
      }) differ from the compile task's (${shown(compile)}) in deno.json`,
    );
  }
  if (compile.noCodeCache !== start.noCodeCache) {
    throw new Error(
      `Cannot use the shipped flags: the ${
        compile.noCodeCache ? "compile" : "start"
      } task has --no-code-cache and the ${
        compile.noCodeCache ? "start" : "compile"
      } task does not in deno.json`,
    );
  }
  return { ...compile, runFlags: runFlagsOf(compile) };
}

/** Reads the shipped flags from this repository's deno.json (see {@linkcode shippedFlagsOf}). */
export function readShippedFlags(path: string | URL = DENO_JSON): ShippedFlags {
  const config = JSON.parse(Deno.readTextFileSync(path)) as { tasks?: Record<string, unknown> };
  return shippedFlagsOf(config.tasks ?? {});
}

/**
 * The flags for kevents' own processes: the shipped ones, or, given
 * `--kevents-v8-flags`, those V8 flags (`none`: V8's defaults) with the
 * shipped `--no-code-cache`. The shipped flags are read and checked either way.
 */
export function keventsFlags(override?: string, shipped = readShippedFlags()): KeventsFlags {
  if (override === undefined) {
    return { runFlags: shipped.runFlags, v8Flags: shipped.v8Flags.join(","), source: "shipped" };
  }
  const v8Flags = override === NO_V8_FLAGS ? [] : splitV8Flags(override);
  return {
    runFlags: runFlagsOf({ v8Flags, noCodeCache: shipped.noCodeCache }),
    v8Flags: v8Flags.join(","),
    source: "override",
    override,
  };
}

/** One line for a report: which Deno flags kevents' processes ran with, and why. */
export function describeKeventsFlags(flags: KeventsFlags): string {
  const shown = flags.runFlags.length === 0 ? "none" : flags.runFlags.join(" ");
  return `kevents' Deno flags: ${shown} (${
    flags.source === "shipped"
      ? "shipped: deno.json's compile task"
      : "--kevents-v8-flags override, not the shipped ones"
  })`;
}
