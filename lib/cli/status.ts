/**
 * `kevents status`: its options and their parser.
 *
 * @module
 */

import { type HelpCommand, type OptionSpec, parseOptions, path } from "./_options.ts";
import { UsageError } from "./usage.ts";

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

const OPTIONS: Readonly<Record<string, OptionSpec<StatusCommand>>> = {
  kubeconfig: { type: "string", apply: (cmd, v, flag) => cmd.kubeconfig = path(flag, v) },
  config: { type: "string", apply: (cmd, v, flag) => cmd.config = path(flag, v) },
  output: {
    type: "string",
    short: "o",
    apply: (cmd, v, flag) => {
      if (v === undefined) throw new UsageError(`Cannot parse ${flag}: a value is required`);
      if (v !== "text" && v !== "json") {
        throw new UsageError(`Cannot parse ${flag} "${v}": must be text or json`);
      }
      cmd.output = v;
    },
  },
};

/** Parses the arguments after `status`. */
export function parseStatus(args: readonly string[]): StatusCommand | HelpCommand {
  return parseOptions("status", args, { name: "status", output: "text" }, OPTIONS);
}
