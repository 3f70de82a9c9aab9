/**
 * `kevents run`, the default command: its options and their parser.
 *
 * @module
 */

import { type HelpCommand, type OptionSpec, parseOptions, path } from "./_options.ts";

/** Options of `kevents run`. */
export interface RunCommand {
  name: "run";
  /** `--kubeconfig`: wins over KUBECONFIG, ~/.kube/config and in-cluster config. */
  kubeconfig?: string;
  /** `--config`: path of datadog.yaml (or a directory holding it). */
  config?: string;
}

const OPTIONS: Readonly<Record<string, OptionSpec<RunCommand>>> = {
  kubeconfig: { type: "string", apply: (cmd, v, flag) => cmd.kubeconfig = path(flag, v) },
  config: { type: "string", apply: (cmd, v, flag) => cmd.config = path(flag, v) },
};

/** Parses the arguments after `run` (or all of them, when the command is left out). */
export function parseRun(args: readonly string[]): RunCommand | HelpCommand {
  return parseOptions("run", args, { name: "run" }, OPTIONS);
}
