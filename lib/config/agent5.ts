/**
 * Agent 5 compatibility. The Agent 5's `leader_candidate` and
 * `leader_lease_duration` (under `instances[0]` of its
 * conf.d/kubernetes.yaml) and the variables its image wrote into them,
 * `KUBERNETES_LEADER_CANDIDATE` and `KUBERNETES_LEADER_LEASE_DURATION`, are
 * still read, below every Agent 6 setting, each with a deprecation warning.
 *
 * @module
 */

import { isAlias, isMap, isScalar, isSeq, type Node } from "yaml";
import { type Origin, parseOrThrow } from "./_resolve.ts";
import { ConfigError } from "./errors.ts";
import {
  describeNode,
  type FileEntry,
  readYamlMapping,
  resolveAlias,
  scalarText,
} from "./files.ts";
import { type KeySpec, type Settings, specOf } from "./settings.ts";
import type { ConfigInput } from "./types.ts";

/**
 * The Agent 5 settings kevents still reads, each deprecated in favour of the
 * Agent 6 setting it stands for. They live under `instances[0]` of the
 * Agent 5 kubernetes check configuration (conf.d/kubernetes.yaml), and the
 * Agent 5 image's entrypoint wrote its variables into those keys, so a
 * variable wins over the file. Any Agent 6 setting or variable wins over
 * both.
 */
const AGENT5_KEYS = {
  candidate: {
    fileKey: "leader_candidate",
    envVar: "KUBERNETES_LEADER_CANDIDATE",
    // In the Agent 5 the elected leader collects events even when
    // collect_events is off: a candidate means both.
    fields: ["leaderElection", "collectEvents"],
    instead: "leader_election / DD_LEADER_ELECTION and collect_kubernetes_events / " +
      "DD_COLLECT_KUBERNETES_EVENTS",
  },
  leaseDuration: {
    fileKey: "leader_lease_duration",
    envVar: "KUBERNETES_LEADER_LEASE_DURATION",
    fields: ["leaseDurationSeconds"],
    instead: "leader_lease_duration / DD_LEADER_LEASE_DURATION",
  },
} as const;

/** An Agent 5 setting: its key in the file, its variable, the Agent 6 settings it stands for. */
interface Agent5Key {
  fileKey: string;
  envVar: string;
  fields: readonly (keyof Settings)[];
  /** The Agent 6 settings to use instead, for the deprecation warning. */
  instead: string;
}

/** The Agent 5 settings `instances[0]` of a kubernetes.yaml sets. */
function readAgent5File(file: { path: string; text: string }): Map<string, FileEntry> {
  const { doc, lineCounter, top } = readYamlMapping(file);
  const entries = new Map<string, FileEntry>();
  const lineOf = (node: Node) => lineCounter.linePos(node.range?.[0] ?? 0).line;
  const refuse = (node: Node) => {
    const rule = "instances must be a list of mappings (the check's instances)";
    const text = scalarText(node);
    const found = isMap(node)
      ? "a mapping"
      : isSeq(node)
      ? "a list"
      : `the value ${JSON.stringify(text ?? "")}`;
    throw new ConfigError({
      key: "instances",
      source: `${file.path} line ${lineOf(node)}`,
      value: text ?? "",
      rule,
      message: `Cannot parse ${file.path}: ${rule}, found ${found} at line ${lineOf(node)}`,
    });
  };
  let instances = top?.get("instances", true) as Node | null | undefined;
  if (instances !== undefined && instances !== null && isAlias(instances)) {
    instances = instances.resolve(doc) ?? null;
  }
  // No instances (or `instances:` alone): the check is not configured; nothing is set.
  if (instances === undefined || instances === null) return entries;
  if (isScalar(instances) && instances.value === null) return entries;
  if (!isSeq(instances)) return refuse(instances);
  let first = (instances.items[0] ?? null) as Node | null;
  if (first !== null && isAlias(first)) first = first.resolve(doc) ?? null;
  if (first === null || (isScalar(first) && first.value === null)) return entries;
  if (!isMap(first)) return refuse(first);
  const known = new Set<string>(Object.values(AGENT5_KEYS).map((k) => k.fileKey));
  for (const pair of first.items) {
    const keyNode = pair.key as Node | null;
    // Python dictionaries: keys match exactly.
    if (keyNode === null || !isScalar(keyNode) || !known.has(String(keyNode.value))) continue;
    const value = resolveAlias(pair.value as Node | null, { doc, lineCounter, path: file.path });
    entries.set(String(keyNode.value), {
      ...describeNode(value),
      source: `${file.path} line ${lineOf(keyNode)}`,
    });
  }
  return entries;
}

/** One Agent 5 value as given, validated with the rule of the setting it stands for. */
interface Agent5Value<T> {
  /** The key or variable, for messages. */
  label: string;
  source: string;
  value: T;
}

/** The values `key` is given, file first, each validated by `spec` (named after the Agent 5 key). */
function agent5Values<K extends keyof Settings>(
  key: Agent5Key,
  spec: KeySpec<K>,
  file: Map<string, FileEntry>,
  env: Readonly<Record<string, string>>,
): Agent5Value<Settings[K]>[] {
  const named = { ...spec, fileKey: key.fileKey };
  const values: Agent5Value<Settings[K]>[] = [];
  const entry = file.get(key.fileKey);
  if (entry !== undefined) {
    values.push({
      label: `${key.fileKey} (${entry.source})`,
      source: entry.source,
      value: parseOrThrow(named, entry.raw, entry.shown, entry.source),
    });
  }
  // The entrypoint tested the variable with `[ $VAR ]`: empty is unset.
  const raw = env[key.envVar];
  if (raw !== undefined && raw !== "") {
    const source = `env ${key.envVar}`;
    values.push({ label: key.envVar, source, value: parseOrThrow(named, raw, raw, source) });
  }
  return values;
}

/**
 * Warns about each Agent 5 value given: it is deprecated, and what wins
 * over it. Returns the fields of `key` the last value given (the effective
 * one) may set: those no Agent 6 setting or variable sets, or none when one
 * sets the first field, the one the Agent 5 setting stands for (a candidate
 * told `leader_election: false` is no candidate, so does not collect either).
 */
function warnAgent5<F extends keyof Settings>(
  key: { instead: string; fields: readonly F[] },
  values: readonly Agent5Value<unknown>[],
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): F[] {
  const effective = values.at(-1);
  const winners = key.fields.filter((f) => origins.get(f)?.explicit === true);
  const wins = winners.map((f) => `${specOf(f).fileKey} is set (${origins.get(f)!.source})`);
  for (const v of values) {
    const why = v !== effective
      ? `; ignored: ${effective!.label} is set`
      : wins.length > 0
      ? `; ${wins.join(" and ")} ${wins.length === 1 ? "wins" : "win"}`
      : "";
    warnings.push(`Deprecated Agent 5 setting ${v.label}: use ${key.instead} instead${why}`);
  }
  if (winners.includes(key.fields[0]!)) return [];
  return key.fields.filter((f) => !winners.includes(f));
}

/** Applies the Agent 5 settings under the Agent 6 ones (see {@linkcode AGENT5_KEYS}). */
export function applyAgent5Settings(
  input: ConfigInput,
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): void {
  const file = input.agent5File === undefined
    ? new Map<string, FileEntry>()
    : readAgent5File(input.agent5File);

  const { candidate, leaseDuration } = AGENT5_KEYS;
  const candidates = agent5Values(candidate, specOf("leaderElection"), file, input.env);
  const candidateFields = warnAgent5(candidate, candidates, origins, warnings);
  const isCandidate = candidates.at(-1);
  // Not being a candidate is what the defaults already say.
  if (isCandidate?.value === true) {
    for (const field of candidateFields) {
      settings[field] = true;
      origins.set(field, { explicit: true, source: isCandidate.source });
    }
  }

  const leases = agent5Values(leaseDuration, specOf("leaseDurationSeconds"), file, input.env);
  const leaseFields = warnAgent5(leaseDuration, leases, origins, warnings);
  const lease = leases.at(-1);
  if (lease !== undefined && leaseFields.length > 0) {
    settings.leaseDurationSeconds = lease.value;
    origins.set("leaseDurationSeconds", { explicit: true, source: lease.source });
  }
}

/** The Agent 5's kubernetes check configuration. */
export const AGENT5_FILE = "/etc/dd-agent/conf.d/kubernetes.yaml";

/**
 * Where main.ts should look for the Agent 5 kubernetes check configuration,
 * in order: conf.d/kubernetes.yaml beside the datadog.yaml found (if any),
 * then the Agent 5's /etc/dd-agent/conf.d/kubernetes.yaml. main.ts reads the
 * first that exists.
 */
export function agent5FileCandidates(datadogYamlPath: string | undefined): string[] {
  const candidates: string[] = [];
  if (datadogYamlPath !== undefined) {
    const slash = datadogYamlPath.lastIndexOf("/");
    candidates.push(`${datadogYamlPath.slice(0, slash + 1)}conf.d/kubernetes.yaml`);
  }
  if (!candidates.includes(AGENT5_FILE)) candidates.push(AGENT5_FILE);
  return candidates;
}
