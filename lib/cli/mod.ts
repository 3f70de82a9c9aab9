/**
 * The command line: a pure parser from `Deno.args` to a plain command
 * object. main.ts runs the command; nothing here reads the environment.
 *
 * One file a subcommand (`run.ts`, `status.ts`, `demo.ts`,
 * `fake_apiserver.ts`) holds its options and their parser; `usage.ts` the
 * version, the help text and {@linkcode UsageError}; `_options.ts` what the
 * parsers share. Other modules import from this file only.
 *
 * @module
 */

import type { HelpCommand } from "./_options.ts";
import { type DemoCommand, parseDemo } from "./demo.ts";
import { type FakeApiServerCommand, parseFakeApiServer } from "./fake_apiserver.ts";
import { parseRun, type RunCommand } from "./run.ts";
import { parseStatus, type StatusCommand } from "./status.ts";
import { UsageError } from "./usage.ts";

export type { DemoCommand } from "./demo.ts";
export type { FakeApiServerCommand } from "./fake_apiserver.ts";
export type { RunCommand } from "./run.ts";
export type { StatusCommand, StatusOutput } from "./status.ts";
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
