/**
 * Finding and reading the files the configuration comes from, then
 * resolving it: the file system side of `parseConfig`, which itself reads
 * nothing. Only regular files are opened (a FIFO would block the start);
 * a file that exists but cannot be read is a ConfigError naming it.
 *
 * @module
 */

import { agent5FileCandidates } from "./agent5.ts";
import { ConfigError } from "./errors.ts";
import { configFileCandidates } from "./files.ts";
import { parseConfig } from "./parse.ts";
import type { Config } from "./types.ts";

/** A file kevents reads: its text, or in words why it cannot be read. */
type FileRead = { text: string } | { problem: string };

/** Why reading a file failed, in words. */
function readProblem(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (its mode or owner, or a folder on its path, keeps kevents out)";
  }
  if (e instanceof Deno.errors.NotCapable) {
    return "kevents is not allowed to read it (Deno's --allow-read)";
  }
  if (e instanceof Deno.errors.FilesystemLoop) {
    return "its path is a loop of symbolic links";
  }
  return e instanceof Error ? e.message : String(e);
}

/** What a file system object that is neither a file nor a folder is, for messages. */
function describeKind(info: Deno.FileInfo): string {
  if (info.isFifo) return "a named pipe (FIFO)";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  return "not a regular file";
}

/**
 * Reads `path`; undefined when nothing is there or it is a folder (a
 * candidate that does not apply). Only a regular file is opened: reading a
 * FIFO would block the start until something writes to it.
 */
function readIfExists(path: string): FileRead | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    // NotADirectory: a component of the path is a file, so nothing is at the path.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    return { problem: readProblem(e) };
  }
  if (info.isDirectory) return undefined;
  if (!info.isFile) return { problem: `it is ${describeKind(info)}, not a regular file` };
  try {
    return { text: Deno.readTextFileSync(path) };
  } catch (e) {
    return { problem: readProblem(e) };
  }
}

const CONFIG_FILE_RULE = "must be a readable regular file (a datadog.yaml, or a directory " +
  "holding one)";

/**
 * The first of `paths` that exists, read; ConfigError naming `key`, `source`
 * and the path when one exists but cannot be read.
 */
function readFirst(
  paths: readonly string[],
  what: { key: string; source: string; rule: string },
): { path: string; text: string } | undefined {
  for (const path of paths) {
    const read = readIfExists(path);
    if (read === undefined) continue;
    if ("text" in read) return { path, text: read.text };
    throw new ConfigError({
      key: what.key,
      source: what.source,
      value: path,
      rule: what.rule,
      message: `Cannot read ${what.key} ${JSON.stringify(path)} (${what.source}): ` +
        `${read.problem}; it ${what.rule}`,
    });
  }
  return undefined;
}

/** What {@linkcode loadConfig} reads. */
export interface LoadConfigOptions {
  /** `--config`: a datadog.yaml, or a directory holding one. */
  config?: string;
  /** The process environment. */
  env: Record<string, string>;
  /** The service account's namespace file, the default of kube_resources_namespace. */
  serviceAccountNamespaceFile: string;
}

/**
 * Reads `datadog.yaml` (where `--config`, DD_CONF_PATH or the working
 * directory says), the Agent 5's kubernetes check file beside it and the
 * service account's namespace, and resolves the configuration with the
 * environment: {@linkcode parseConfig} on what was read.
 *
 * @throws {ConfigError} a file that exists but cannot be read, a required one missing, or a bad value.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const { config, env } = options;
  const { paths, required } = configFileCandidates(config, env);
  const source = config !== undefined && config !== ""
    ? "--config"
    : required
    ? "DD_CONF_PATH"
    : "default, in the working directory";
  const file = readFirst(paths, { key: "config file", source, rule: CONFIG_FILE_RULE });
  if (file === undefined && required) {
    throw new ConfigError({
      key: "config file",
      source,
      value: paths.join(" or "),
      rule: "must name an existing datadog.yaml (or a directory holding one)",
    });
  }
  // The Agent 5 kubernetes check configuration, for its deprecated leader-election settings.
  const agent5File = readFirst(agent5FileCandidates(file?.path), {
    key: "Agent 5 kubernetes check configuration",
    source: "read for leader_candidate and leader_lease_duration",
    rule: "must be a readable regular file when it exists",
  });
  return parseConfig({
    file,
    agent5File,
    env,
    serviceAccountNamespace: readFirst([options.serviceAccountNamespaceFile], {
      key: "service-account namespace file",
      source: "the default of kube_resources_namespace",
      rule: "must be a readable regular file when it exists",
    })?.text,
  });
}
