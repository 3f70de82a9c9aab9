/**
 * `kevents status`: its options, their parser, and the command: settings
 * resolved as for run, then read-only requests; it never logs credentials.
 *
 * @module
 */

import { type Config, ConfigError } from "../config/mod.ts";
import { KubeClient, KubeConfigError } from "../kube/mod.ts";
import { formatStatus, readStatus, StatusReadError } from "../ops/mod.ts";
import { loadSettings } from "./_settings.ts";
import { type HelpCommand, type OptionSpec, parseOptions, path } from "./_options.ts";
import { UsageError, VERSION } from "./usage.ts";

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

/** Runs `kevents status`; returns the exit code (2 bad configuration, 1 the cluster could not be read). */
export async function runStatus(
  cmd: StatusCommand,
  env: Record<string, string>,
): Promise<number> {
  let config: Config;
  let client: KubeClient;
  try {
    const loaded = loadSettings(cmd, env);
    config = loaded.config;
    const kube = loaded.kube;
    for (const w of [...config.warnings, ...kube.warnings]) console.error(`kevents: warning: ${w}`);
    client = new KubeClient(kube.config, {
      requestTimeoutMs: config.timings.requestTimeoutMs,
      userAgent: `kevents/${VERSION}`,
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof KubeConfigError) {
      console.error(`kevents: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    console.log(formatStatus(await readStatus(client, config), cmd.output));
    return 0;
  } catch (e) {
    if (e instanceof StatusReadError) {
      console.error(`kevents: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    await client.close();
  }
}
