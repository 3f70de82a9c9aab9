/**
 * What the subcommands' parsers share: {@linkcode parseOptions}, which has
 * `node:util`'s parseArgs split the arguments and applies them in order, and
 * the checks of a number and a path.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./usage.ts";

/** `kevents --help`, or `--help` / `-h` after a subcommand (its `topic`). */
export interface HelpCommand {
  name: "help";
  topic?: string;
}

/** One option of a subcommand. */
export interface OptionSpec<C> {
  /** `string` takes a value (`--flag value` or `--flag=value`); `boolean` takes none. */
  type: "string" | "boolean";
  /** A one-letter alias (`o` for `-o`). */
  short?: string;
  /**
   * Sets the option on `cmd`, or throws a UsageError naming `flag` as given
   * (`--output` or `-o`). `value` is undefined when nothing follows the flag.
   */
  apply: (cmd: C, value: string | undefined, flag: string) => void;
}

/**
 * Applies `args` to `cmd` (which holds the defaults) option by option;
 * `--help` or `-h` anywhere before an error returns a HelpCommand for
 * `topic`.
 *
 * parseArgs runs in its lenient mode: kevents reports the first bad argument
 * in its own words, so an unknown option, a missing value and a value that
 * breaks its rule are found in the order they come. Only `--flag`,
 * `--flag=value`, `-f` and `-f=value` count as options: a bundle (`-hx`), a
 * value glued to a short flag (`-ojson`), `--` and a positional argument are
 * all unknown options.
 */
export function parseOptions<C>(
  topic: string,
  args: readonly string[],
  cmd: C,
  options: Readonly<Record<string, OptionSpec<C>>>,
): C | HelpCommand {
  const config: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, { type, short }] of Object.entries(options)) {
    config[name] = short === undefined ? { type } : { type, short };
  }
  const { tokens } = parseArgs({
    args: [...args],
    options: config,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    const arg = args[token.index]!;
    // `-o=json` is `-o` with the value `json`; parseArgs would make it `=json`.
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = token.kind === "option" && Object.hasOwn(options, token.name)
      ? options[token.name]
      : undefined;
    const help = token.kind === "option" && token.name === "help";
    if (token.kind !== "option" || token.rawName !== flag || (spec === undefined && !help)) {
      throw new UsageError(`Unknown option "${arg}" for ${topic}: run "kevents --help"`);
    }
    if (spec === undefined) return { name: "help", topic };
    spec.apply(cmd, eq > 0 ? arg.slice(eq + 1) : token.value, flag);
  }
  return cmd;
}

/** A number `rule` accepts; UsageError naming `flag`, the value and `text` (the rule in words) otherwise. */
export function number(
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

/** A non-empty path; UsageError naming `flag` otherwise. */
export function path(flag: string, v: string | undefined): string {
  if (v === undefined || v === "") throw new UsageError(`Cannot parse ${flag}: a path is required`);
  return v;
}
