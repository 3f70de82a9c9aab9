/**
 * The command line: a pure parser from `Deno.args` to a plain command
 * object, and the commands. main.ts parses, hands the command the
 * environment and a stop signal ({@linkcode CommandContext}), and exits with
 * the code it returns; nothing here reads the process's environment,
 * arguments or signals.
 *
 * One file a subcommand (`run.ts`, `status.ts`, `demo.ts`,
 * `fake_apiserver.ts`) holds its options, their parser and the command;
 * `usage.ts` the version, the help text and {@linkcode UsageError};
 * `_options.ts` what the parsers share, `_context.ts` what main.ts gives a
 * command. Other modules import from this file only.
 *
 * @module
 */

import type { HelpCommand } from "./_options.ts";
import { type DemoCommand, parseDemo } from "./demo.ts";
import { type FakeApiServerCommand, parseFakeApiServer } from "./fake_apiserver.ts";
import { parseRun, type RunCommand } from "./run.ts";
import { parseStatus, type StatusCommand } from "./status.ts";
import { UsageError } from "./usage.ts";

export { type CommandContext, StopRequested } from "./_context.ts";
export { type DemoCommand, runDemoCommand } from "./demo.ts";
export { type FakeApiServerCommand, runFakeApiServer } from "./fake_apiserver.ts";
export { type RunCommand, runRun } from "./run.ts";
export { runStatus, type StatusCommand, type StatusOutput } from "./status.ts";
export { USAGE, UsageError, VERSION } from "./usage.ts";

/** A parsed command line. */
export type Command =
  | RunCommand
  | StatusCommand
  | DemoCommand
  | FakeApiServerCommand
  | { name: "version" }
  | HelpCommand;

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
  if (first === "fake-apiserver") return parseFakeApiServer(rest);
  throw new UsageError(`Unknown command "${first}": run "kevents --help" for the list`);
}
