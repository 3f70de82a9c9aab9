/**
 * kevents' configuration: defaults, then `datadog.yaml`, then the
 * environment (a later source wins), resolved once at start by a pure
 * function. main.ts reads the environment, the file and the
 * service-account namespace and hands them to {@linkcode parseConfig};
 * nothing here touches `Deno.env` or the file system.
 *
 * Every setting is a row of {@linkcode CONFIG_KEYS}: its `datadog.yaml`
 * key, its environment variable, its parser, its default and the rule a
 * value must follow. A new setting is a new row plus a field in
 * {@linkcode Settings}.
 *
 * The settings the Datadog Agent also has (`collect_kubernetes_events`,
 * `leader_election`, `leader_lease_duration`, `kube_resources_namespace`,
 * `leader_lease_name`) keep the Agent's names, defaults and rules. Settings
 * of kevents' own start with `kevents_` / `KEVENTS_`, except
 * `kubernetes_event_token_configmap` / `DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP`,
 * which names the token ConfigMap the Agent hard-codes as `datadogtoken`.
 *
 * @module
 */

import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** A sink kevents can deliver events to. */
export type SinkName = "stdout" | "null";

/** The sink names `kevents_sinks` accepts. */
export const SINK_NAMES: readonly SinkName[] = ["stdout", "null"];

/** Leader-election timings, all in milliseconds, derived from the lease duration. */
export interface Timings {
  /** How long a lease holds without renewal: the expert override, else `leader_lease_duration` * 1000. */
  leaseDurationMs: number;
  /** How long the leader keeps retrying a renewal before it gives up leading: lease / 2 (the Agent's ratio). */
  renewDeadlineMs: number;
  /** Pause between attempts to acquire or renew: lease / 4 (the Agent's ratio). */
  retryPeriodMs: number;
  /**
   * Bound of each API request: min(10000, renewDeadline / 3). The leader
   * retries a failed renewal every retryPeriod (half the renew deadline)
   * until the deadline; if one request could take the whole deadline, a
   * single hung connection would cost the lease. A third leaves room for
   * another attempt. The 10 s cap keeps a dead connection from being waited
   * on longer than needed when the lease is long.
   */
  requestTimeoutMs: number;
}

/** When the event checkpoint (the token ConfigMap) is written. */
export interface CheckpointConfig {
  /** Write at most this often, in milliseconds (default 1000). */
  intervalMs: number;
  /** Write as soon as this many events were delivered since the last write (default 500). */
  maxEvents: number;
  /** Write a position reached without delivering events at most this often (default 60000). */
  idleIntervalMs: number;
}

/** The resolved configuration kevents runs with. */
export interface Config {
  /** Collect Kubernetes events (`collect_kubernetes_events`, or `KUBERNETES` set). */
  collectEvents: boolean;
  /** Take part in leader election; always true when events are collected. */
  leaderElection: boolean;
  /** Run the control-plane (componentstatuses) check; turned on by `KUBERNETES`. */
  controlPlaneCheck: boolean;
  /** `leader_lease_duration` in seconds (default 60, greater than 30). */
  leaseDurationSeconds: number;
  /** Name of the lease object (default `datadog-leader-election`). */
  leaseName: string;
  /** Namespace of the lease and the token ConfigMap. */
  resourcesNamespace: string;
  /** Name of the ConfigMap holding the event token (default `datadogtoken`). */
  tokenConfigMapName: string;
  /** Leader-election timings derived from the lease duration. */
  timings: Timings;
  /** Checkpoint batching. */
  checkpoint: CheckpointConfig;
  /** Deliver what the first list returned when there is no token yet (default false). */
  backfill: boolean;
  /** Where events go, in order (default `["stdout"]`). */
  sinks: SinkName[];
  /** Events buffered between the watch and the sinks (default 1000). */
  queueCapacity: number;
  /** Things main.ts should log at start (settings turned on, expert settings in use). */
  warnings: string[];
}

/** The value of every row of {@linkcode CONFIG_KEYS}, before anything is derived. */
export interface Settings {
  collectEvents: boolean;
  leaderElection: boolean;
  leaseDurationSeconds: number;
  resourcesNamespace: string;
  leaseName: string;
  tokenConfigMapName: string;
  /** `kevents_lease_duration_ms`; undefined when not set. */
  expertLeaseDurationMs: number | undefined;
  checkpointIntervalMs: number;
  checkpointMaxEvents: number;
  checkpointIdleIntervalMs: number;
  backfill: boolean;
  sinks: SinkName[];
  queueCapacity: number;
}

/** A value as a source gave it: text (environment, file scalar) or, from the file, a list of texts. */
export type RawValue = string | readonly string[];

/** What a default may depend on. */
export interface DefaultContext {
  /** Contents of the service-account namespace file, if any. */
  serviceAccountNamespace?: string;
}

/** One setting: where it is read from, how it is parsed, its default and its rule. */
export interface KeySpec<K extends keyof Settings> {
  /** The field of {@linkcode Settings} it fills. */
  field: K;
  /** Key in `datadog.yaml` (matched case-insensitively, as the Agent does). */
  fileKey: string;
  /** Environment variable. */
  envVar: string;
  /** Parses a raw value; undefined when it breaks the rule. */
  parse: (raw: RawValue) => Settings[K] | undefined;
  /** Value when no source sets it. */
  default: Settings[K];
  /** A default taken from the surroundings, validated by `parse` (for example the pod's namespace). */
  contextDefault?: (ctx: DefaultContext) => { raw: string; source: string } | undefined;
  /** What a value must be, completing "Cannot parse KEY VALUE (SOURCE): ". */
  rule: string;
  /** One line for documentation. */
  description: string;
}

/** A row of {@linkcode CONFIG_KEYS}, whatever its field. */
export type AnyKeySpec = { [K in keyof Settings]: KeySpec<K> }[keyof Settings];

/** Options of {@linkcode ConfigError}. */
export interface ConfigErrorOptions {
  /** The setting (file key), or "" for an error about the whole file. */
  key: string;
  /** Where the value came from: `env DD_X`, `PATH line N`, `service-account namespace`. */
  source: string;
  /** The offending value as given. */
  value: string;
  /** The rule it breaks. */
  rule: string;
  /** The message, when the default "Cannot parse KEY VALUE (SOURCE): RULE" does not fit. */
  message?: string;
  cause?: unknown;
}

/** Raised for a bad setting; main.ts prints it and exits with code 2. */
export class ConfigError extends Error {
  /** The setting (file key), or "" for an error about the whole file. */
  readonly key: string;
  /** Where the value came from. */
  readonly source: string;
  /** The offending value as given. */
  readonly value: string;
  /** The rule it breaks. */
  readonly rule: string;

  constructor(options: ConfigErrorOptions) {
    const { key, source, value, rule } = options;
    super(
      options.message ?? `Cannot parse ${key} ${JSON.stringify(value)} (${source}): ${rule}`,
      { cause: options.cause },
    );
    this.name = "ConfigError";
    this.key = key;
    this.source = source;
    this.value = value;
    this.rule = rule;
  }
}

/** What parseConfig reads; main.ts fills it. */
export interface ConfigInput {
  /** Text of datadog.yaml, if one was found, and its path (for messages). */
  file?: { path: string; text: string };
  /** The process environment (only the keys it has). */
  env: Readonly<Record<string, string>>;
  /** Contents of the service-account namespace file, if it exists. */
  serviceAccountNamespace?: string;
}

// ---- Parsers ---------------------------------------------------------------

// The Agent reads booleans through spf13/cast (Go's strconv.ParseBool:
// 1, t, true, 0, f, false in lower, title or upper case), and its newer
// config tree also takes the YAML words y/yes/on and n/no/off. kevents
// accepts the union, in any case, with surrounding whitespace trimmed.
const TRUE_WORDS = new Set(["true", "t", "1", "yes", "y", "on"]);
const FALSE_WORDS = new Set(["false", "f", "0", "no", "n", "off"]);

function parseBool(raw: RawValue): boolean | undefined {
  if (typeof raw !== "string") return undefined;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}

const BOOL_RULE = "must be a boolean (true/false, yes/no, on/off, 1/0, t/f or y/n, in any case)";

/** Decimal digits only: "12.5", "1e9", "0x3C" and "" are refused, whatever a number parser would make of them. */
function integerIn(min: number, max: number): (raw: RawValue) => number | undefined {
  return (raw) => {
    if (typeof raw !== "string") return undefined;
    const text = raw.trim();
    if (!/^[+-]?\d+$/.test(text)) return undefined;
    const n = Number(text);
    return n >= min && n <= max ? n : undefined;
  };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsLabel(raw: RawValue): string | undefined {
  return typeof raw === "string" && raw.length <= 63 && DNS1123_LABEL.test(raw) ? raw : undefined;
}

function dnsSubdomain(raw: RawValue): string | undefined {
  if (typeof raw !== "string" || raw.length > 253) return undefined;
  return raw.split(".").every((part) => DNS1123_LABEL.test(part)) ? raw : undefined;
}

const LABEL_RULE = "must be a DNS-1123 label (at most 63 characters: lowercase letters, " +
  "digits and '-', starting and ending with a letter or digit)";
const SUBDOMAIN_RULE = "must be a DNS-1123 subdomain (at most 253 characters: lowercase " +
  "letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit)";

function parseSinks(raw: RawValue): SinkName[] | undefined {
  const items = typeof raw === "string" ? raw.split(",") : raw;
  const sinks: SinkName[] = [];
  for (const item of items) {
    const name = SINK_NAMES.find((s) => s === item.trim());
    if (name === undefined || sinks.includes(name)) return undefined;
    sinks.push(name);
  }
  return sinks.length > 0 ? sinks : undefined;
}

// ---- The key table ---------------------------------------------------------

/** The lease duration the Agent requires: strictly more than this many seconds. */
export const MIN_LEASE_SECONDS_EXCLUSIVE = 30;
/** Upper bound of `leader_lease_duration`, in seconds. */
export const MAX_LEASE_SECONDS = 3600;

/** Every setting kevents reads, in the order they are validated. */
export const CONFIG_KEYS: readonly AnyKeySpec[] = [
  {
    field: "collectEvents",
    fileKey: "collect_kubernetes_events",
    envVar: "DD_COLLECT_KUBERNETES_EVENTS",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Collect Kubernetes events (also turned on by KUBERNETES)",
  },
  {
    field: "leaderElection",
    fileKey: "leader_election",
    envVar: "DD_LEADER_ELECTION",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Take part in leader election (forced on while collecting events)",
  },
  {
    field: "leaseDurationSeconds",
    fileKey: "leader_lease_duration",
    envVar: "DD_LEADER_LEASE_DURATION",
    parse: integerIn(MIN_LEASE_SECONDS_EXCLUSIVE + 1, MAX_LEASE_SECONDS),
    default: 60,
    rule: `must be an integer number of seconds greater than ${MIN_LEASE_SECONDS_EXCLUSIVE} ` +
      `(at most ${MAX_LEASE_SECONDS})`,
    description: "Seconds a leader stays elected without renewing",
  },
  {
    field: "resourcesNamespace",
    fileKey: "kube_resources_namespace",
    envVar: "DD_KUBE_RESOURCES_NAMESPACE",
    parse: dnsLabel,
    default: "default",
    contextDefault: ({ serviceAccountNamespace }) => {
      const raw = serviceAccountNamespace?.trim();
      return raw === undefined || raw === ""
        ? undefined
        : { raw, source: "service-account namespace file" };
    },
    rule: LABEL_RULE,
    description: "Namespace of the lease and the token ConfigMap " +
      "(default: the pod's service-account namespace, else default)",
  },
  {
    field: "leaseName",
    fileKey: "leader_lease_name",
    envVar: "DD_LEADER_LEASE_NAME",
    parse: dnsSubdomain,
    default: "datadog-leader-election",
    rule: SUBDOMAIN_RULE,
    description: "Name of the leader-election lease",
  },
  {
    field: "tokenConfigMapName",
    fileKey: "kubernetes_event_token_configmap",
    envVar: "DD_KUBERNETES_EVENT_TOKEN_CONFIGMAP",
    parse: dnsSubdomain,
    default: "datadogtoken",
    rule: SUBDOMAIN_RULE,
    description: "Name of the ConfigMap holding the event token (the Agent's datadogtoken)",
  },
  {
    field: "expertLeaseDurationMs",
    fileKey: "kevents_lease_duration_ms",
    envVar: "KEVENTS_LEASE_DURATION_MS",
    parse: integerIn(1000, 3_600_000),
    default: undefined,
    rule: "must be an integer number of milliseconds from 1000 to 3600000",
    description: "Expert: lease duration in ms for timing, overriding leader_lease_duration " +
      "(sub-30 s failovers for tests and demos)",
  },
  {
    field: "checkpointIntervalMs",
    fileKey: "kevents_checkpoint_interval_ms",
    envVar: "KEVENTS_CHECKPOINT_INTERVAL_MS",
    parse: integerIn(10, 600_000),
    default: 1000,
    rule: "must be an integer number of milliseconds from 10 to 600000",
    description: "Write the event checkpoint at most this often",
  },
  {
    field: "checkpointMaxEvents",
    fileKey: "kevents_checkpoint_max_events",
    envVar: "KEVENTS_CHECKPOINT_MAX_EVENTS",
    parse: integerIn(1, 1_000_000),
    default: 500,
    rule: "must be an integer from 1 to 1000000",
    description: "Write the event checkpoint after this many delivered events",
  },
  {
    field: "checkpointIdleIntervalMs",
    fileKey: "kevents_checkpoint_idle_interval_ms",
    envVar: "KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS",
    parse: integerIn(10, 3_600_000),
    default: 60_000,
    rule: "must be an integer number of milliseconds from 10 to 3600000",
    description:
      "Write a checkpoint that moved without delivering events (bookmarks, deletions) at most this often",
  },
  {
    field: "backfill",
    fileKey: "kevents_backfill",
    envVar: "KEVENTS_BACKFILL",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Deliver what the first list returned when there is no token",
  },
  {
    field: "sinks",
    fileKey: "kevents_sinks",
    envVar: "KEVENTS_SINKS",
    parse: parseSinks,
    default: ["stdout"],
    rule: "must be a non-empty list of distinct sink names (comma-separated, or a YAML list " +
      `in the file), each one of ${SINK_NAMES.map((s) => `"${s}"`).join(", ")}`,
    description: "Where events go",
  },
  {
    field: "queueCapacity",
    fileKey: "kevents_queue_capacity",
    envVar: "KEVENTS_QUEUE_CAPACITY",
    parse: integerIn(1, 1_000_000),
    default: 1000,
    rule: "must be an integer from 1 to 1000000",
    description: "Events buffered between the watch and the sinks",
  },
];

// ---- datadog.yaml ----------------------------------------------------------

/** A setting found in the file. */
interface FileEntry {
  /** Undefined when the node cannot be a setting's value (a mapping, a nested list). */
  raw: RawValue | undefined;
  /** The value as shown in messages. */
  shown: string;
  /** `PATH line N`. */
  source: string;
}

const KNOWN_FILE_KEYS = new Set(CONFIG_KEYS.map((k) => k.fileKey));

function scalarText(node: Node): string | undefined {
  // `source` is the scalar as written (after unquoting), before YAML typed
  // it: `0x3C` stays "0x3C" instead of becoming 60, so the file follows the
  // same rules as the environment.
  return isScalar(node) ? node.source ?? String(node.value) : undefined;
}

/** The known settings a datadog.yaml sets, and the YAML warnings it raised. */
interface FileSettings {
  entries: Map<string, FileEntry>;
  warnings: string[];
}

/** The yaml package's message without its position and source excerpt (given separately). */
function yamlMessage(message: string): string {
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

function readFile(file: { path: string; text: string }): FileSettings {
  const lineCounter = new LineCounter();
  const doc = parseDocument(file.text, { lineCounter, prettyErrors: true });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    const pos = syntax.linePos?.[0] ?? lineCounter.linePos(syntax.pos[0]);
    const detail = yamlMessage(syntax.message);
    throw new ConfigError({
      key: "",
      source: `${file.path} line ${pos.line}, column ${pos.col}`,
      value: "",
      rule: detail,
      message: `Cannot parse ${file.path}: YAML syntax error at line ${pos.line}, ` +
        `column ${pos.col}: ${detail}`,
    });
  }
  const entries = new Map<string, FileEntry>();
  const warnings = doc.warnings.map((warning) => {
    const pos = warning.linePos?.[0];
    const where = pos === undefined ? "" : ` at line ${pos.line}, column ${pos.col}`;
    return `${file.path}${where}: ${yamlMessage(warning.message)}`;
  });
  const top = doc.contents;
  // An empty file, or one holding only comments or `~`, sets nothing.
  if (top === null || (isScalar(top) && top.value === null)) return { entries, warnings };
  if (!isMap(top)) {
    const found = isSeq(top) ? "a list" : `the value ${JSON.stringify(scalarText(top) ?? "")}`;
    const line = top.range ? lineCounter.linePos(top.range[0]).line : 1;
    throw new ConfigError({
      key: "",
      source: `${file.path} line ${line}`,
      value: scalarText(top) ?? "",
      rule: "the top level must be a mapping of settings",
      message: `Cannot parse ${file.path}: the top level must be a mapping of settings ` +
        `(key: value lines), found ${found} at line ${line}`,
    });
  }
  for (const pair of top.items) {
    const keyNode = pair.key as Node | null;
    if (keyNode === null || !isScalar(keyNode)) continue;
    // viper matches keys case-insensitively; so does kevents. Unknown keys
    // are the hundreds of other Agent settings a datadog.yaml may hold.
    const key = String(keyNode.value).toLowerCase();
    if (!KNOWN_FILE_KEYS.has(key)) continue;
    const line = lineCounter.linePos(keyNode.range?.[0] ?? 0).line;
    const source = `${file.path} line ${line}`;
    const previous = entries.get(key);
    if (previous !== undefined) {
      throw new ConfigError({
        key,
        source,
        value: String(keyNode.value),
        rule: `the key is already set at ${previous.source}`,
        message: `Cannot parse ${file.path}: ${key} is set twice, at ${previous.source} ` +
          `and line ${line}`,
      });
    }
    let value = pair.value as Node | null;
    if (value !== null && isAlias(value)) value = value.resolve(doc) ?? null;
    entries.set(key, { ...describeNode(value), source });
  }
  return { entries, warnings };
}

function describeNode(node: Node | null): { raw: RawValue | undefined; shown: string } {
  // `key:` with nothing after it is an empty scalar: refused like an empty
  // environment variable rather than silently meaning "not set".
  if (node === null) return { raw: "", shown: "" };
  const text = scalarText(node);
  if (text !== undefined) return { raw: text, shown: text };
  const shown = JSON.stringify(node.toJSON());
  if (isSeq(node)) {
    const items = node.items.map((item) => scalarText(item as Node));
    if (items.every((item) => item !== undefined)) return { raw: items as string[], shown };
  }
  return { raw: undefined, shown };
}

// ---- Resolution ------------------------------------------------------------

/** Where a setting's value came from. */
interface Origin {
  /** Set by the user (file or environment), not a default. */
  explicit: boolean;
  source: string;
}

function parseOrThrow<K extends keyof Settings>(
  spec: KeySpec<K>,
  raw: RawValue | undefined,
  shown: string,
  source: string,
): Settings[K] {
  const value = raw === undefined ? undefined : spec.parse(raw);
  if (value === undefined) {
    // A list or mapping is shown as JSON, a scalar quoted.
    const display = typeof raw === "string" ? JSON.stringify(shown) : shown;
    throw new ConfigError({
      key: spec.fileKey,
      source,
      value: shown,
      rule: spec.rule,
      message: `Cannot parse ${spec.fileKey} ${display} (${source}): ${spec.rule}`,
    });
  }
  return value;
}

/**
 * Every value given is validated, including a file value the environment
 * overrides: a mistake in datadog.yaml is reported where it is rather than
 * waiting for the day the override goes away.
 */
function resolveKey<K extends keyof Settings>(
  spec: KeySpec<K>,
  file: Map<string, FileEntry>,
  input: ConfigInput,
  out: Partial<Settings>,
  origins: Map<keyof Settings, Origin>,
): void {
  // A copy, so that a caller changing its Config (pushing to `sinks`) cannot change the table.
  let value: Settings[K] = structuredClone(spec.default);
  let origin: Origin = { explicit: false, source: "default" };
  const entry = file.get(spec.fileKey);
  const env = input.env[spec.envVar];
  // The surroundings only matter when the user says nothing: a pod's odd
  // namespace must not stop a configuration that names its own.
  const context = entry === undefined && env === undefined
    ? spec.contextDefault?.(input)
    : undefined;
  if (context !== undefined) {
    value = parseOrThrow(spec, context.raw, context.raw, context.source);
    origin = { explicit: false, source: context.source };
  }
  if (entry !== undefined) {
    value = parseOrThrow(spec, entry.raw, entry.shown, entry.source);
    origin = { explicit: true, source: entry.source };
  }
  if (env !== undefined) {
    const source = `env ${spec.envVar}`;
    value = parseOrThrow(spec, env, env, source);
    origin = { explicit: true, source };
  }
  out[spec.field] = value;
  origins.set(spec.field, origin);
}

function completed(out: Partial<Settings>): Settings {
  for (const spec of CONFIG_KEYS) {
    if (!(spec.field in out)) throw new Error(`Internal error: ${spec.field} was not resolved`);
  }
  return out as Settings;
}

/** Derives the leader-election timings from a lease duration in milliseconds (each rounded down to a whole ms). */
export function deriveTimings(leaseDurationMs: number): Timings {
  const renewDeadlineMs = Math.floor(leaseDurationMs / 2);
  return {
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: Math.floor(leaseDurationMs / 4),
    requestTimeoutMs: Math.min(10_000, Math.floor(renewDeadlineMs / 3)),
  };
}

/** Resolves defaults < datadog.yaml < environment, validates every value, derives timings. Throws ConfigError on the first bad value. */
export function parseConfig(input: ConfigInput): Config {
  const { entries: file, warnings: warningList } = input.file === undefined
    ? { entries: new Map<string, FileEntry>(), warnings: [] }
    : readFile(input.file);
  const out: Partial<Settings> = {};
  const origins = new Map<keyof Settings, Origin>();
  for (const spec of CONFIG_KEYS) {
    // The union row type is narrowed to one field per call.
    resolveKey(spec as KeySpec<keyof Settings>, file, input, out, origins);
  }
  const settings = completed(out);

  // The Agent's DaemonSet manifest sets KUBERNETES, and its entrypoint only
  // tests that the variable is non-empty: "false" turns things on too.
  const kubernetes = input.env["KUBERNETES"];
  const kubernetesSet = kubernetes !== undefined && kubernetes !== "";
  let collectEvents = settings.collectEvents;
  if (kubernetesSet) {
    if (parseBool(kubernetes) === false) {
      warningList.push(
        `KUBERNETES is ${JSON.stringify(kubernetes)}: any non-empty value turns on event ` +
          `collection and the control-plane check, as in the Agent; unset it to turn them off`,
      );
    }
    const origin = origins.get("collectEvents");
    if (!collectEvents && origin?.explicit) {
      warningList.push(
        `Turned collect_kubernetes_events on: it is false (${origin.source}) but KUBERNETES ` +
          `is set, which turns on event collection as the Agent's DaemonSet manifest does`,
      );
    }
    collectEvents = true;
  }

  // Collecting events without an election would let every replica deliver
  // every event; the Agent turns the election on for the same reason.
  let leaderElection = settings.leaderElection;
  if (collectEvents && !leaderElection) {
    const origin = origins.get("leaderElection");
    if (origin?.explicit) {
      warningList.push(
        `Turned leader_election on: it is false (${origin.source}) but collecting events ` +
          `requires it, so that one replica collects at a time`,
      );
    }
    leaderElection = true;
  }

  let leaseDurationMs = settings.leaseDurationSeconds * 1000;
  if (settings.expertLeaseDurationMs !== undefined) {
    leaseDurationMs = settings.expertLeaseDurationMs;
    const source = origins.get("expertLeaseDurationMs")?.source ?? "";
    const minimumMs = MIN_LEASE_SECONDS_EXCLUSIVE * 1000;
    const below = leaseDurationMs <= minimumMs
      ? `: ${leaseDurationMs} ms is ${leaseDurationMs < minimumMs ? "below" : "not above"} ` +
        `the ${MIN_LEASE_SECONDS_EXCLUSIVE} s the Agent requires; use it only for tests and demos`
      : "";
    warningList.push(
      `Expert setting kevents_lease_duration_ms=${leaseDurationMs} (${source}) overrides ` +
        `leader_lease_duration (${settings.leaseDurationSeconds} s) for leader-election ` +
        `timing${below}`,
    );
  }

  return {
    collectEvents,
    leaderElection,
    controlPlaneCheck: kubernetesSet,
    leaseDurationSeconds: settings.leaseDurationSeconds,
    leaseName: settings.leaseName,
    resourcesNamespace: settings.resourcesNamespace,
    tokenConfigMapName: settings.tokenConfigMapName,
    timings: deriveTimings(leaseDurationMs),
    checkpoint: {
      intervalMs: settings.checkpointIntervalMs,
      maxEvents: settings.checkpointMaxEvents,
      idleIntervalMs: settings.checkpointIdleIntervalMs,
    },
    backfill: settings.backfill,
    sinks: settings.sinks,
    queueCapacity: settings.queueCapacity,
    warnings: warningList,
  };
}

// ---- Finding the file ------------------------------------------------------

/** The file name looked for in a configuration directory and in the working directory. */
export const CONFIG_FILE_NAME = "datadog.yaml";

/**
 * Where main.ts should look for datadog.yaml: --config, else DD_CONF_PATH (a file, or a directory holding datadog.yaml), else ./datadog.yaml if present. Returns candidate paths in order and whether the file is required (an explicit --config/DD_CONF_PATH that does not exist is an error).
 *
 * main.ts reads the first candidate that is a regular file. A path ending in
 * `.yaml` or `.yml` is a file, as in the Agent; any other path is tried as a
 * directory holding datadog.yaml first, then as a file. An empty flag or
 * variable counts as not given.
 */
export function configFileCandidates(
  flag: string | undefined,
  env: Readonly<Record<string, string>>,
): { paths: string[]; required: boolean } {
  const explicit = flag !== undefined && flag !== "" ? flag : env["DD_CONF_PATH"];
  if (explicit === undefined || explicit === "") {
    return { paths: [CONFIG_FILE_NAME], required: false };
  }
  if (/\.ya?ml$/i.test(explicit)) return { paths: [explicit], required: true };
  const dir = explicit.endsWith("/") ? explicit : `${explicit}/`;
  return { paths: [`${dir}${CONFIG_FILE_NAME}`, explicit], required: true };
}
