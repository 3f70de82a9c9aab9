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
 * A `datadog.yaml` is shared with the Agent, whose hundreds of other
 * settings kevents ignores without a word. An unknown top-level key is
 * reported, as a warning naming its line, only when it is likely meant for
 * kevents: when it is within a typo of a kevents setting (an edit distance
 * of 1 for keys of up to 8 characters, 2 for longer ones; a swap of two
 * neighbouring letters counts 1), which the warning suggests (`colect_kubernetes_events`:
 * did you mean `collect_kubernetes_events`?), or when it starts with
 * `kevents_`, a prefix no Agent setting has. The few Agent settings that
 * close to a kevents one (`app_key`, next to `api_key`) are left alone.
 *
 * The Agent 5's `leader_candidate` and `leader_lease_duration` (under
 * `instances[0]` of its conf.d/kubernetes.yaml) and the variables its image
 * wrote into them, `KUBERNETES_LEADER_CANDIDATE` and
 * `KUBERNETES_LEADER_LEASE_DURATION`, are still read, below every Agent 6
 * setting, each with a deprecation warning.
 *
 * @module
 */

import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type YAMLMap,
} from "yaml";
import {
  agentFilterTerm,
  checkFilteredEventTypes,
  type EventFilterSettings,
  FilteredEventTypeError,
  filtersAnything,
} from "./filters.ts";
import { isSecretHeader } from "./redact.ts";

/** A sink kevents can deliver events to. */
export type SinkName = "stdout" | "null" | "webhook" | "datadog";

/** The sink names `kevents_sinks` accepts. */
export const SINK_NAMES: readonly SinkName[] = ["stdout", "null", "webhook", "datadog"];

/** What a sink does with a batch it could not deliver within its attempts. */
export type SinkOnFailure = "retry" | "drop";

/** The webhook sink's settings (`kevents_webhook_*`). */
export interface WebhookConfig {
  /** Where batches are POSTed; required when the webhook sink is on. */
  url: string | undefined;
  /** Body format (default ndjson). */
  format: "ndjson" | "json";
  /** Extra request headers (default none). */
  headers: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  bearerToken: string | undefined;
  /** PEM file of the CA(s) to trust instead of the system's. */
  caFile: string | undefined;
  /** PEM files of a client certificate and its key (both or neither). */
  certFile: string | undefined;
  keyFile: string | undefined;
  /**
   * Where each TLS file setting that is set came from (`env KEVENTS_WEBHOOK_CA_FILE`,
   * `PATH line N`), for the messages of createSinks, which reads the files; absent when none is set.
   */
  fileSources?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Skip verifying the receiver's certificate (default false; logged as a warning). */
  insecureSkipVerify: boolean;
  /** retry (default: the pump retries, nothing is lost) or drop (counted, logged). */
  onFailure: SinkOnFailure;
  /** Attempts per send before it fails (default 5). */
  maxAttempts: number;
}

/** The Datadog sink's settings (the Agent's `api_key`, `site`, `dd_url`, `unbundle_events`). */
export interface DatadogConfig {
  /** Required when the datadog sink is on. */
  apiKey: string | undefined;
  /** Datadog site (default datadoghq.com): events go to https://api.<site>. */
  site: string;
  /** Base URL overriding https://api.<site>. */
  url: string | undefined;
  /** One Datadog event per Kubernetes event instead of one per object and type (default false). */
  unbundleEvents: boolean;
  /** retry (default) or drop. */
  onFailure: SinkOnFailure;
  /** Attempts per request before a send fails (default 5). */
  maxAttempts: number;
}

/** The object leader election locks: a Lease, or the leader annotation of a ConfigMap or an Endpoints object. */
export type LockResource = "lease" | "configmap" | "endpoints";

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

/** The health and metrics endpoint (`kevents_health_*`). */
export interface HealthConfig {
  /** Address to bind (default `0.0.0.0`; `127.0.0.1` keeps it local). */
  address: string;
  /** Port (default 5555); 0 picks a free one, which is logged. */
  port: number;
  /**
   * `/healthz` fails when the leader's watch has received nothing (no
   * event, no bookmark, no successful reconnect) for this long (default
   * 600000 ms, twice the watch's 300 s timeout).
   */
  watchStallLimitMs: number;
}

/** The resolved configuration kevents runs with. */
export interface Config {
  /** Collect Kubernetes events (`collect_kubernetes_events`, or `KUBERNETES` set). */
  collectEvents: boolean;
  /** Take part in leader election; always true when events are collected. */
  leaderElection: boolean;
  /** Run the control-plane (componentstatuses) check; turned on by `KUBERNETES`. */
  controlPlaneCheck: boolean;
  /** How often the control-plane check runs, in milliseconds (default 15000, the Agent's check interval). */
  controlPlaneCheckIntervalMs: number;
  /** `leader_lease_duration` in seconds (default 60, greater than 30). */
  leaseDurationSeconds: number;
  /** Name of the lease object (default `datadog-leader-election`). */
  leaseName: string;
  /** What the election locks (`leader_election_default_resource`, default `lease`); it is named `leaseName` whatever its kind. */
  leaderElectionResource: LockResource;
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
  /**
   * Which events are delivered (`filtered_event_types`, `kevents_include_*`,
   * `kevents_exclude_*`); absent when none of them is set: every event.
   */
  eventFilters?: EventFilterSettings;
  /** The webhook sink's settings. */
  webhook: WebhookConfig;
  /** The Datadog sink's settings. */
  datadog: DatadogConfig;
  /** The health and metrics endpoint. */
  health: HealthConfig;
  /**
   * Followers watch the lock object and try to take over as soon as it is
   * released or expires, polling only as a fallback (default true).
   */
  followerWatch: boolean;
  /** How long a stopping leader lets the sends in flight and the queue finish before a send is cut, in ms (default 20000). */
  shutdownBudgetMs: number;
  /** How long a leader's list/watch of events may fail with a non-retryable error before it gives up leading, in ms (default 180000). */
  watchFailureLimitMs: number;
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
  leaderElectionResource: LockResource;
  tokenConfigMapName: string;
  /** `kevents_lease_duration_ms`; undefined when not set. */
  expertLeaseDurationMs: number | undefined;
  checkpointIntervalMs: number;
  checkpointMaxEvents: number;
  checkpointIdleIntervalMs: number;
  backfill: boolean;
  sinks: SinkName[];
  queueCapacity: number;
  controlPlaneCheckIntervalMs: number;
  filteredEventTypes: string[];
  includeTypes: string[];
  excludeTypes: string[];
  includeNamespaces: string[];
  excludeNamespaces: string[];
  includeReasons: string[];
  excludeReasons: string[];
  includeKinds: string[];
  excludeKinds: string[];
  webhookUrl: string | undefined;
  webhookFormat: "ndjson" | "json";
  webhookHeaders: Record<string, string>;
  webhookBearerToken: string | undefined;
  webhookCaFile: string | undefined;
  webhookCertFile: string | undefined;
  webhookKeyFile: string | undefined;
  webhookInsecureSkipVerify: boolean;
  webhookOnFailure: SinkOnFailure;
  webhookMaxAttempts: number;
  ddApiKey: string | undefined;
  ddSite: string;
  ddUrl: string | undefined;
  ddUnbundleEvents: boolean;
  datadogOnFailure: SinkOnFailure;
  datadogMaxAttempts: number;
  healthAddress: string;
  healthPort: number;
  watchStallLimitSeconds: number;
  followerWatch: boolean;
  shutdownBudgetSeconds: number;
  watchFailureLimitSeconds: number;
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
  /** For secrets: how a value is shown in messages instead of as given. */
  mask?: (raw: RawValue | undefined) => string;
  /** Takes a mapping in `datadog.yaml`, read as `NAME=VALUE` items (default false: a mapping is refused). */
  fileMapping?: boolean;
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
  /**
   * Text of the Agent 5 kubernetes check configuration (`conf.d/kubernetes.yaml`),
   * if one was found, and its path: its `instances[0]` may hold the deprecated
   * `leader_candidate` and `leader_lease_duration`.
   */
  agent5File?: { path: string; text: string };
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

/** A host name or an IP address (v4, or v6 without brackets): what Deno.serve binds. */
function bindAddress(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  if (/^[0-9a-fA-F:.]+$/.test(text) && text.includes(":")) return text; // IPv6
  if (text.length === 0 || text.length > 253) return undefined;
  return /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/
      .test(text)
    ? text
    : undefined;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsLabel(raw: RawValue): string | undefined {
  return typeof raw === "string" && raw.length <= 63 && DNS1123_LABEL.test(raw) ? raw : undefined;
}

function dnsSubdomain(raw: RawValue): string | undefined {
  if (typeof raw !== "string" || raw.length > 253) return undefined;
  return raw.split(".").every((part) => DNS1123_LABEL.test(part)) ? raw : undefined;
}

const LOCK_RESOURCES: Readonly<Record<string, LockResource>> = {
  lease: "lease",
  leases: "lease",
  configmap: "configmap",
  configmaps: "configmap",
  endpoints: "endpoints",
};

/** The Agent's spellings (lease, leases, configmap, configmaps) and endpoints, in any case. */
function parseLockResource(raw: RawValue): LockResource | undefined {
  return typeof raw === "string" ? LOCK_RESOURCES[raw.trim().toLowerCase()] : undefined;
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

/**
 * `filtered_event_types`: a YAML list of entries, or a comma-separated text
 * (split on unescaped commas, so `reason!=a\,b` stays one entry); each
 * entry trimmed and non-empty. Whether the API server accepts each entry is
 * checked by parseConfig, which names the entry.
 */
function parseFilterEntries(raw: RawValue): string[] | undefined {
  const items = typeof raw === "string" ? splitUnescapedCommas(raw) : raw;
  const entries = items.map((item) => item.trim());
  if (entries.length === 1 && entries[0] === "" && typeof raw === "string") return [];
  return entries.every((e) => e !== "") ? entries : undefined;
}

function splitUnescapedCommas(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === ",") {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

/** A list of exact values (comma-separated, or a YAML list); "" is the empty list; each item trimmed, non-empty and accepted by `item`. */
function valueList(item: (value: string) => boolean): (raw: RawValue) => string[] | undefined {
  return (raw) => {
    const items = (typeof raw === "string" ? raw.split(",") : raw).map((i) => i.trim());
    if (items.length === 1 && items[0] === "" && typeof raw === "string") return [];
    return items.every((i) => i !== "" && item(i)) ? [...new Set(items)] : undefined;
  };
}

const FILTER_RULE = "must be a list (comma-separated, or a YAML list in the file) of non-empty";
const FILTER_ENTRIES_RULE = `${FILTER_RULE} field selectors on events ` +
  "(field=value or field!=value, e.g. type!=Normal) or bare event reasons (X means reason!=X)";

/** The Settings fields of the include and exclude lists. */
type FilterListField = `${"include" | "exclude"}${"Types" | "Namespaces" | "Reasons" | "Kinds"}`;

/** The include and exclude rows of one event property. */
function filterRows(
  what: "types" | "namespaces" | "reasons" | "kinds",
  meaning: string,
  fields: readonly [FilterListField, FilterListField],
): AnyKeySpec[] {
  const namespaces = what === "namespaces";
  const parse = valueList(namespaces ? (v) => dnsLabel(v) !== undefined : () => true);
  const rule = namespaces
    ? `${FILTER_RULE} namespace names, each a DNS-1123 label`
    : `${FILTER_RULE} values`;
  return (["include", "exclude"] as const).map((verb, i): AnyKeySpec => ({
    // Every list field holds a string[]: one of them stands for all.
    field: fields[i] as "includeTypes",
    fileKey: `kevents_${verb}_${what}`,
    envVar: `KEVENTS_${verb.toUpperCase()}_${what.toUpperCase()}`,
    parse,
    default: [],
    rule,
    description: verb === "include"
      ? `Deliver only events whose ${meaning} is one of these (default: any)`
      : `Leave out events whose ${meaning} is one of these (wins over the include list)`,
  }));
}

// ---- Sink settings -----------------------------------------------------------

/** Shows a secret as its length and last 4 characters (none when it is short). */
function maskSecret(raw: RawValue | undefined): string {
  if (typeof raw !== "string") return "(hidden)";
  const text = raw.trim();
  const tail = text.length >= 16 ? text.slice(-4) : "";
  return `"****${tail}" (${text.length} characters, hidden)`;
}

/** Shows a URL without the password of its user info and without its query. */
function maskUrl(raw: RawValue | undefined): string {
  if (typeof raw !== "string") return "(hidden)";
  return JSON.stringify(
    raw.replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:****@").replace(/\?.*$/, "?****"),
  );
}

/** Shows headers by name only: any value may be a credential. */
function maskHeaders(raw: RawValue | undefined): string {
  if (raw === undefined) return "(hidden)";
  const items = typeof raw === "string" ? raw.split(",") : raw;
  return JSON.stringify(
    items.map((item) => (item.includes("=") ? `${item.slice(0, item.indexOf("="))}=****` : "****"))
      .join(","),
  );
}

function httpUrl(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const url = new URL(raw.trim());
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
      ? url.href
      : undefined;
  } catch {
    return undefined;
  }
}

/** A token or key: printable ASCII without spaces (surrounding whitespace, such as a file's newline, trimmed). */
function credential(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  return /^[\x21-\x7e]+$/.test(text) ? text : undefined;
}

function filePath(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  return text === "" ? undefined : text;
}

function oneOf<T extends string>(...words: T[]): (raw: RawValue) => T | undefined {
  return (raw) => {
    if (typeof raw !== "string") return undefined;
    const word = raw.trim().toLowerCase();
    return words.find((w) => w === word);
  };
}

/** An HTTP token (RFC 9110), the characters a header name may have. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `K=V,K2=V2` (environment) or a mapping (file); names distinct regardless of case, values without control characters. */
function parseHeaders(raw: RawValue): Record<string, string> | undefined {
  const items = typeof raw === "string" ? (raw.trim() === "" ? [] : raw.split(",")) : raw;
  const headers: Record<string, string> = {};
  const seen = new Set<string>();
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq < 0) return undefined;
    const name = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    // deno-lint-ignore no-control-regex
    if (!HEADER_NAME.test(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return undefined;
    if (seen.has(name.toLowerCase())) return undefined;
    seen.add(name.toLowerCase());
    headers[name] = value;
  }
  return headers;
}

const SITE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/;

function site(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim().toLowerCase();
  return text.length <= 253 && SITE.test(text) ? text : undefined;
}

const URL_RULE = "must be an http:// or https:// URL";
const ON_FAILURE_RULE = 'must be "retry" (the batch is retried until delivered) or "drop" ' +
  "(the batch is dropped and counted after the attempts)";
const ATTEMPTS_RULE = "must be an integer from 1 to 100";

/**
 * The webhook and Datadog sinks' rows. The Datadog ones keep the Agent's
 * names: `api_key`, `site` and `dd_url` are datadog.yaml settings of the
 * Agent (DD_API_KEY, DD_SITE, DD_DD_URL). `unbundle_events` is the key the
 * Agent reads from its kubernetes_apiserver check's instance configuration
 * (conf.yaml), which has no environment variable; kevents reads it from
 * datadog.yaml and DD_UNBUNDLE_EVENTS.
 */
const SINK_ROWS: readonly AnyKeySpec[] = [
  {
    field: "webhookUrl",
    fileKey: "kevents_webhook_url",
    envVar: "KEVENTS_WEBHOOK_URL",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Where the webhook sink POSTs batches (required with the webhook sink)",
    mask: maskUrl,
  },
  {
    field: "webhookFormat",
    fileKey: "kevents_webhook_format",
    envVar: "KEVENTS_WEBHOOK_FORMAT",
    parse: oneOf("ndjson", "json"),
    default: "ndjson",
    rule: 'must be "ndjson" (one JSON object per line) or "json" (a JSON array)',
    description: "Body format of the webhook sink",
  },
  {
    field: "webhookHeaders",
    fileKey: "kevents_webhook_headers",
    envVar: "KEVENTS_WEBHOOK_HEADERS",
    parse: parseHeaders,
    default: {},
    rule: "must be headers as NAME=VALUE pairs (comma-separated, or a mapping in the file), " +
      "each name a valid header name given once, values without control characters",
    description: "Extra headers of the webhook requests",
    mask: maskHeaders,
    fileMapping: true,
  },
  {
    field: "webhookBearerToken",
    fileKey: "kevents_webhook_bearer_token",
    envVar: "KEVENTS_WEBHOOK_BEARER_TOKEN",
    parse: credential,
    default: undefined,
    rule: "must be a non-empty token of printable ASCII characters without spaces",
    description: "Sent as Authorization: Bearer <token> by the webhook sink",
    mask: maskSecret,
  },
  {
    field: "webhookCaFile",
    fileKey: "kevents_webhook_ca_file",
    envVar: "KEVENTS_WEBHOOK_CA_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the CA(s) the webhook sink trusts instead of the system's",
  },
  {
    field: "webhookCertFile",
    fileKey: "kevents_webhook_cert_file",
    envVar: "KEVENTS_WEBHOOK_CERT_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description:
      "PEM file of the webhook sink's client certificate (with kevents_webhook_key_file)",
  },
  {
    field: "webhookKeyFile",
    fileKey: "kevents_webhook_key_file",
    envVar: "KEVENTS_WEBHOOK_KEY_FILE",
    parse: filePath,
    default: undefined,
    rule: "must be a file path",
    description: "PEM file of the client certificate's private key",
  },
  {
    field: "webhookInsecureSkipVerify",
    fileKey: "kevents_webhook_insecure_skip_verify",
    envVar: "KEVENTS_WEBHOOK_INSECURE_SKIP_VERIFY",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "Accept any certificate from the webhook receiver (insecure)",
  },
  {
    field: "webhookOnFailure",
    fileKey: "kevents_webhook_on_failure",
    envVar: "KEVENTS_WEBHOOK_ON_FAILURE",
    parse: oneOf("retry", "drop"),
    default: "retry",
    rule: ON_FAILURE_RULE,
    description: "What the webhook sink does with a batch it cannot deliver",
  },
  {
    field: "webhookMaxAttempts",
    fileKey: "kevents_webhook_max_attempts",
    envVar: "KEVENTS_WEBHOOK_MAX_ATTEMPTS",
    parse: integerIn(1, 100),
    default: 5,
    rule: ATTEMPTS_RULE,
    description:
      "Attempts of one webhook send before it fails (or, with drop, the batch is dropped)",
  },
  {
    field: "ddApiKey",
    fileKey: "api_key",
    envVar: "DD_API_KEY",
    parse: credential,
    default: undefined,
    rule: "must be a non-empty key of printable ASCII characters without spaces",
    description: "Datadog API key (required with the datadog sink)",
    mask: maskSecret,
  },
  {
    field: "ddSite",
    fileKey: "site",
    envVar: "DD_SITE",
    parse: site,
    default: "datadoghq.com",
    rule: "must be a Datadog site such as datadoghq.com, us3.datadoghq.com or datadoghq.eu",
    description: "Datadog site: events go to https://api.<site>",
  },
  {
    field: "ddUrl",
    fileKey: "dd_url",
    envVar: "DD_DD_URL",
    parse: httpUrl,
    default: undefined,
    rule: URL_RULE,
    description: "Base URL of the Datadog API, overriding https://api.<site>",
    mask: maskUrl,
  },
  {
    field: "ddUnbundleEvents",
    fileKey: "unbundle_events",
    envVar: "DD_UNBUNDLE_EVENTS",
    parse: parseBool,
    default: false,
    rule: BOOL_RULE,
    description: "One Datadog event per Kubernetes event instead of one per object and type",
  },
  {
    field: "datadogOnFailure",
    fileKey: "kevents_datadog_on_failure",
    envVar: "KEVENTS_DATADOG_ON_FAILURE",
    parse: oneOf("retry", "drop"),
    default: "retry",
    rule: ON_FAILURE_RULE,
    description: "What the datadog sink does with a batch it cannot deliver",
  },
  {
    field: "datadogMaxAttempts",
    fileKey: "kevents_datadog_max_attempts",
    envVar: "KEVENTS_DATADOG_MAX_ATTEMPTS",
    parse: integerIn(1, 100),
    default: 5,
    rule: ATTEMPTS_RULE,
    description:
      "Attempts of one Datadog request before a send fails (or, with drop, the batch is dropped)",
  },
];

/** The webhook's TLS file settings: their name in {@linkcode WebhookConfig} and their field. */
const TLS_FILE_FIELDS = [
  ["caFile", "webhookCaFile"],
  ["certFile", "webhookCertFile"],
  ["keyFile", "webhookKeyFile"],
] as const;

/** The Agent's secrets-backend handle: the whole value is `ENC[...]` (its `isEnc`). */
const SECRET_HANDLE = /^ENC\[.*\]$/s;

/**
 * Refuses an `ENC[...]` handle of the Agent's secrets backend where kevents
 * would send it as a credential: it would go out literally. `api_key` only
 * counts with the datadog sink, as a datadog.yaml shared with an Agent that
 * resolves it may hold one; the webhook settings are kevents' own.
 */
function refuseSecretHandles(settings: Settings, origins: Map<keyof Settings, Origin>): void {
  const candidates: { key: string; field: keyof Settings; value: string | undefined }[] = [
    {
      key: "api_key",
      field: "ddApiKey",
      value: settings.sinks.includes("datadog") ? settings.ddApiKey : undefined,
    },
    {
      key: "kevents_webhook_bearer_token",
      field: "webhookBearerToken",
      value: settings.webhookBearerToken,
    },
    ...Object.entries(settings.webhookHeaders).map(([name, value]) => ({
      key: `kevents_webhook_headers ${name}`,
      field: "webhookHeaders" as const,
      value,
    })),
  ];
  for (const { key, field, value } of candidates) {
    if (value === undefined || !SECRET_HANDLE.test(value.trim())) continue;
    const spec = specOf(field);
    const source = origins.get(field)?.source ?? "";
    const rule = "secrets backends (secret_backend_command) are not supported, so an ENC[...] " +
      "handle would be sent as it is: give the value itself, for example in the environment " +
      `variable ${spec.envVar} filled from a Kubernetes Secret ` +
      "(env[].valueFrom.secretKeyRef in the pod spec)";
    throw new ConfigError({
      key: spec.fileKey,
      source,
      value: value.trim(),
      rule,
      message: `Cannot use ${key} ${JSON.stringify(value.trim())} (${source}): ${rule}`,
    });
  }
}

/**
 * The sinks' settings, checking what one row cannot: a sink that is on has
 * what it needs, a client certificate comes with its key. Warns about TLS
 * verification turned off and credentials sent over plain HTTP.
 */
function resolveSinkSettings(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): { webhook: WebhookConfig; datadog: DatadogConfig } {
  const webhookOn = settings.sinks.includes("webhook");
  refuseSecretHandles(settings, origins);
  if (webhookOn && settings.webhookUrl === undefined) {
    throw new ConfigError({
      key: "kevents_webhook_url",
      source: "default",
      value: "",
      rule: "is required with the webhook sink",
      message: "Cannot use the webhook sink: kevents_webhook_url (KEVENTS_WEBHOOK_URL) is not set",
    });
  }
  if ((settings.webhookCertFile === undefined) !== (settings.webhookKeyFile === undefined)) {
    const [given, missing] = settings.webhookCertFile === undefined
      ? ["kevents_webhook_key_file", "kevents_webhook_cert_file"]
      : ["kevents_webhook_cert_file", "kevents_webhook_key_file"];
    const field = settings.webhookCertFile === undefined ? "webhookKeyFile" : "webhookCertFile";
    const source = origins.get(field)?.source ?? "";
    throw new ConfigError({
      key: given,
      source,
      value: settings[field] ?? "",
      rule: `needs ${missing}`,
      message: `Cannot use ${given} (${source}) without ${missing}: a client certificate ` +
        "needs its private key",
    });
  }
  if (settings.sinks.includes("datadog") && settings.ddApiKey === undefined) {
    throw new ConfigError({
      key: "api_key",
      source: "default",
      value: "",
      rule: "is required with the datadog sink",
      message: "Cannot use the datadog sink: api_key (DD_API_KEY) is not set",
    });
  }
  if (webhookOn) {
    const url = new URL(settings.webhookUrl!);
    const shown = `${url.protocol}//${url.host}${url.pathname}`;
    if (settings.webhookInsecureSkipVerify && url.protocol === "https:") {
      const source = origins.get("webhookInsecureSkipVerify")?.source ?? "";
      warnings.push(
        `TLS verification of the webhook receiver ${shown} is off ` +
          `(kevents_webhook_insecure_skip_verify, ${source}): anyone on the path can read ` +
          "and forge what is sent",
      );
    }
    const credentials = settings.webhookBearerToken !== undefined || url.password !== "" ||
      Object.keys(settings.webhookHeaders).some(isSecretHeader);
    if (credentials && url.protocol === "http:") {
      warnings.push(`The webhook sink sends credentials to ${shown} over plain HTTP`);
    }
  }
  const fileSources: NonNullable<WebhookConfig["fileSources"]> = {};
  for (const [name, field] of TLS_FILE_FIELDS) {
    const origin = origins.get(field);
    if (settings[field] !== undefined && origin !== undefined) fileSources[name] = origin.source;
  }
  return {
    webhook: {
      url: settings.webhookUrl,
      format: settings.webhookFormat,
      headers: settings.webhookHeaders,
      bearerToken: settings.webhookBearerToken,
      caFile: settings.webhookCaFile,
      certFile: settings.webhookCertFile,
      keyFile: settings.webhookKeyFile,
      ...(Object.keys(fileSources).length === 0 ? {} : { fileSources }),
      insecureSkipVerify: settings.webhookInsecureSkipVerify,
      onFailure: settings.webhookOnFailure,
      maxAttempts: settings.webhookMaxAttempts,
    },
    datadog: {
      apiKey: settings.ddApiKey,
      site: settings.ddSite,
      url: settings.ddUrl,
      unbundleEvents: settings.ddUnbundleEvents,
      onFailure: settings.datadogOnFailure,
      maxAttempts: settings.datadogMaxAttempts,
    },
  };
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
    // One default for every kind, as in the Agent 6 and later (its Endpoints
    // and ConfigMap locks too); not the Agent 5's ConfigMap
    // `datadog-leader-elector`, whose different record (annotations
    // `creator`, `acquired_time`) kevents must not share an object with.
    description: "Name of the leader-election lock (a Lease, ConfigMap or Endpoints object)",
  },
  {
    field: "leaderElectionResource",
    fileKey: "leader_election_default_resource",
    envVar: "DD_LEADER_ELECTION_DEFAULT_RESOURCE",
    parse: parseLockResource,
    default: "lease",
    rule: 'must be "lease", "configmap" or "endpoints" (or "leases", "configmaps"), in any case',
    description: "What the election locks: a Lease, or the control-plane.alpha.kubernetes.io/" +
      "leader annotation of a ConfigMap or an Endpoints object (client-go's record)",
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
  ...SINK_ROWS,
  {
    // The Agent has no datadog.yaml key for this: its check runs at the
    // check scheduler's default interval (15 s) unless the check's own
    // conf.yaml sets min_collection_interval.
    field: "controlPlaneCheckIntervalMs",
    fileKey: "kevents_control_plane_check_interval_ms",
    envVar: "KEVENTS_CONTROL_PLANE_CHECK_INTERVAL_MS",
    parse: integerIn(1000, 3_600_000),
    default: 15_000,
    rule: "must be an integer number of milliseconds from 1000 to 3600000",
    description: "Run the control-plane check (kube_apiserver_controlplane.up) this often",
  },
  {
    // In the Agent this is an option of the kubernetes_apiserver check's own
    // conf.yaml; kevents reads it from datadog.yaml and the environment.
    field: "filteredEventTypes",
    fileKey: "filtered_event_types",
    envVar: "DD_FILTERED_EVENT_TYPES",
    parse: parseFilterEntries,
    default: [],
    rule: FILTER_ENTRIES_RULE,
    description: "The Agent's deny list of events, applied by the API server: field selectors " +
      "joined with commas, a bare X meaning reason!=X",
  },
  ...filterRows("types", "type (Normal, Warning)", ["includeTypes", "excludeTypes"]),
  ...filterRows("namespaces", "namespace", ["includeNamespaces", "excludeNamespaces"]),
  ...filterRows("reasons", "reason", ["includeReasons", "excludeReasons"]),
  ...filterRows("kinds", "involved object's kind", ["includeKinds", "excludeKinds"]),
  {
    field: "healthAddress",
    fileKey: "kevents_health_address",
    envVar: "KEVENTS_HEALTH_ADDRESS",
    parse: bindAddress,
    default: "0.0.0.0",
    rule: "must be an IP address or a host name (0.0.0.0 for every interface, 127.0.0.1 for " +
      "this host only)",
    description: "Address the health and metrics endpoint binds",
  },
  {
    field: "healthPort",
    fileKey: "kevents_health_port",
    envVar: "KEVENTS_HEALTH_PORT",
    parse: integerIn(0, 65535),
    default: 5555,
    rule: "must be an integer port from 0 to 65535 (0 picks a free port)",
    description: "Port of the health and metrics endpoint (/healthz, /readyz, /metrics)",
  },
  {
    field: "watchStallLimitSeconds",
    fileKey: "kevents_watch_stall_limit_seconds",
    envVar: "KEVENTS_WATCH_STALL_LIMIT_SECONDS",
    parse: integerIn(10, 86_400),
    default: 600,
    rule: "must be an integer number of seconds from 10 to 86400",
    description: "/healthz fails when the leader's watch received nothing for this long",
  },
  {
    field: "followerWatch",
    fileKey: "kevents_follower_watch",
    envVar: "KEVENTS_FOLLOWER_WATCH",
    parse: parseBool,
    default: true,
    rule: BOOL_RULE,
    description: "Followers watch the lock instead of polling it every retry period " +
      "(the poll stays as a fallback)",
  },
  {
    // The drain only: the final checkpoint write and the lease release come
    // after it, each bounded by the request timeout, which is why the
    // manifests' terminationGracePeriodSeconds is above budget + 2 x 10 s.
    field: "shutdownBudgetSeconds",
    fileKey: "kevents_shutdown_budget_seconds",
    envVar: "KEVENTS_SHUTDOWN_BUDGET_SECONDS",
    parse: integerIn(1, 3600),
    default: 20,
    rule: "must be an integer number of seconds from 1 to 3600",
    description: "On SIGTERM/SIGINT the leader stops reading and, still renewing its lease, " +
      "lets the sends in flight and the queue finish for at most this long; then it writes " +
      "the checkpoint and releases the lease (a send still running is cut, logged and counted)",
  },
  {
    field: "watchFailureLimitSeconds",
    fileKey: "kevents_watch_failure_limit_seconds",
    envVar: "KEVENTS_WATCH_FAILURE_LIMIT_SECONDS",
    parse: integerIn(1, 86_400),
    default: 180,
    rule: "must be an integer number of seconds from 1 to 86400",
    description: "A leader whose list/watch of events has failed without interruption for " +
      "longer than this with a non-retryable error (401, 403, 404, a request that cannot be " +
      "sent) releases its lease, fails /healthz and backs off from leading, so that a healthy " +
      "replica takes over",
  },
];

// ---- datadog.yaml ----------------------------------------------------------

/** A setting found in the file. */
interface FileEntry {
  /** Undefined when the node cannot be a setting's value (a nested list, a mapping of mappings). */
  raw: RawValue | undefined;
  /** The value was a mapping, which only a row with `fileMapping` takes. */
  mapping?: boolean;
  /** The value as shown in messages. */
  shown: string;
  /** `PATH line N`. */
  source: string;
}

const KNOWN_FILE_KEYS = new Set(CONFIG_KEYS.map((k) => k.fileKey));

/**
 * Settings of the Agent's datadog.yaml within a typo of a kevents setting
 * (`app_key` is one letter from `api_key`): they are the Agent's, not
 * misspellings, and get no warning.
 */
const AGENT_NEIGHBOURS: ReadonlySet<string> = new Set(["app_key"]);

/** The prefix of kevents' own settings, which no Agent setting has. */
const OWN_PREFIX = "kevents_";

/**
 * Edit distance between two texts (insertions, deletions, substitutions and
 * swaps of two neighbouring characters each count one), or `limit + 1` as
 * soon as it is known to exceed `limit`.
 */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  // Three rows of the optimal-string-alignment table: i - 2, i - 1 and i.
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, before[j - 2]! + 1);
      }
      current.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/** How far a key may be from a kevents setting to be taken for a misspelling of it. */
function typoLimit(known: string): number {
  return known.length <= 8 ? 1 : 2;
}

/**
 * The warning for a top-level key kevents does not read, or undefined when
 * it is most likely one of the Agent's own settings (see the module doc).
 */
function unknownKeyWarning(key: string, source: string): string | undefined {
  if (AGENT_NEIGHBOURS.has(key)) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const known of KNOWN_FILE_KEYS) {
    const own = key.startsWith(OWN_PREFIX) && known.startsWith(OWN_PREFIX);
    // Under kevents' own prefix, where no Agent setting can be meant, a
    // looser match is still worth suggesting.
    const limit = own ? Math.max(typoLimit(known), Math.floor(known.length / 4)) : typoLimit(known);
    const d = editDistance(key, known, limit);
    if (d <= limit && d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  if (best !== undefined) {
    return `Unknown setting ${key} (${source}) is ignored: did you mean ${best}?`;
  }
  if (key.startsWith(OWN_PREFIX)) {
    return `Unknown setting ${key} (${source}) is ignored: kevents has no such setting ` +
      "(the README's Settings table lists them)";
  }
  return undefined;
}

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

/** A YAML file's document, its top-level mapping (undefined when the file sets nothing) and its warnings. */
interface YamlFile {
  doc: Document.Parsed;
  lineCounter: LineCounter;
  top: YAMLMap | undefined;
  warnings: string[];
}

/** Parses a YAML file whose top level must be a mapping; ConfigError naming the file otherwise. */
function readYamlMapping(file: { path: string; text: string }): YamlFile {
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
  const warnings = doc.warnings.map((warning) => {
    const pos = warning.linePos?.[0];
    const where = pos === undefined ? "" : ` at line ${pos.line}, column ${pos.col}`;
    return `${file.path}${where}: ${yamlMessage(warning.message)}`;
  });
  const top = doc.contents;
  // An empty file, or one holding only comments or `~`, sets nothing.
  if (top === null || (isScalar(top) && top.value === null)) {
    return { doc, lineCounter, top: undefined, warnings };
  }
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
  return { doc, lineCounter, top, warnings };
}

function readFile(file: { path: string; text: string }): FileSettings {
  const { doc, lineCounter, top, warnings } = readYamlMapping(file);
  const entries = new Map<string, FileEntry>();
  if (top === undefined) return { entries, warnings };
  for (const pair of top.items) {
    const keyNode = pair.key as Node | null;
    if (keyNode === null || !isScalar(keyNode)) continue;
    // viper matches keys case-insensitively; so does kevents. Most unknown
    // keys are the hundreds of other Agent settings a datadog.yaml may
    // hold: only a likely misspelling of a kevents setting is reported.
    const key = String(keyNode.value).toLowerCase();
    const line = lineCounter.linePos(keyNode.range?.[0] ?? 0).line;
    const source = `${file.path} line ${line}`;
    if (!KNOWN_FILE_KEYS.has(key)) {
      const warning = unknownKeyWarning(key, source);
      if (warning !== undefined) warnings.push(warning);
      continue;
    }
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
    const value = resolveAlias(pair.value as Node | null, { doc, lineCounter, path: file.path });
    entries.set(key, { ...describeNode(value), source });
  }
  return { entries, warnings };
}

/**
 * The node an alias (`*name`) stands for; ConfigError naming its line and
 * column when no anchor (`&name`) before it has that name, which the yaml
 * package does not count as a syntax error.
 */
function resolveAlias(
  node: Node | null,
  file: { doc: Document.Parsed; lineCounter: LineCounter; path: string },
): Node | null {
  if (node === null || !isAlias(node)) return node;
  const target = node.resolve(file.doc);
  if (target !== undefined) return target;
  const pos = file.lineCounter.linePos(node.range?.[0] ?? 0);
  const rule = `the alias *${node.source} names no anchor &${node.source} before it`;
  throw new ConfigError({
    key: "",
    source: `${file.path} line ${pos.line}, column ${pos.col}`,
    value: `*${node.source}`,
    rule,
    message:
      `Cannot parse ${file.path}: YAML error at line ${pos.line}, column ${pos.col}: ${rule}`,
  });
}

function describeNode(
  node: Node | null,
): { raw: RawValue | undefined; shown: string; mapping?: boolean } {
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
  // A mapping of scalars (kevents_webhook_headers) becomes a list of "key=value".
  if (isMap(node)) {
    const items = node.items.map((pair) => {
      const key = pair.key === null ? undefined : scalarText(pair.key as Node);
      const value = pair.value === null ? "" : scalarText(pair.value as Node);
      return key === undefined || value === undefined ? undefined : `${key}=${value}`;
    });
    if (items.every((item) => item !== undefined)) {
      return { raw: items as string[], shown, mapping: true };
    }
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
    // A list or mapping is shown as JSON, a scalar quoted; a secret masked.
    const display = spec.mask !== undefined
      ? spec.mask(raw)
      : typeof raw === "string"
      ? JSON.stringify(shown)
      : shown;
    throw new ConfigError({
      key: spec.fileKey,
      source,
      value: spec.mask !== undefined ? display : shown,
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
    // A mapping given to a setting that takes a value or a list is refused
    // as written, rather than read as a list of "key=value" texts.
    const raw = entry.mapping === true && spec.fileMapping !== true ? undefined : entry.raw;
    value = parseOrThrow(spec, raw, entry.shown, entry.source);
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
  applyAgent5Settings(input, settings, origins, warningList);

  // The Agent's DaemonSet manifest sets KUBERNETES, and its entrypoint only
  // tests that the variable is non-empty: "false" turns things on too.
  // KUBERNETES always turns on the control-plane check, as in the Agent; it
  // turns on event collection only where collect_kubernetes_events is not
  // set: a value the user wrote (file or environment) wins over it.
  const kubernetes = input.env["KUBERNETES"];
  const kubernetesSet = kubernetes !== undefined && kubernetes !== "";
  let collectEvents = settings.collectEvents;
  if (kubernetesSet) {
    const origin = origins.get("collectEvents");
    const explicit = origin?.explicit === true;
    if (parseBool(kubernetes) === false) {
      warningList.push(
        `KUBERNETES is ${JSON.stringify(kubernetes)}: any non-empty value turns on the ` +
          "control-plane check, and event collection unless collect_kubernetes_events is set, " +
          "as in the Agent; unset it to turn them off",
      );
    }
    if (explicit && !collectEvents) {
      warningList.push(
        `Events are not collected: collect_kubernetes_events is false (${origin.source}), ` +
          "which wins over KUBERNETES; KUBERNETES turns on the control-plane check only",
      );
    }
    if (!explicit) collectEvents = true;
  }

  // Collecting events without an election would let every replica deliver
  // every event; the Agent turns the election on for the same reason.
  let leaderElection = settings.leaderElection;
  if ((collectEvents || kubernetesSet) && !leaderElection) {
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
  checkAnnotationLock(settings, origins, deriveTimings(leaseDurationMs));

  const eventFilters = resolveEventFilters(settings, origins, warningList);
  const sinkSettings = resolveSinkSettings(settings, origins, warningList);

  return {
    collectEvents,
    leaderElection,
    controlPlaneCheck: kubernetesSet,
    controlPlaneCheckIntervalMs: settings.controlPlaneCheckIntervalMs,
    leaseDurationSeconds: settings.leaseDurationSeconds,
    leaseName: settings.leaseName,
    leaderElectionResource: settings.leaderElectionResource,
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
    ...(eventFilters === undefined ? {} : { eventFilters }),
    ...sinkSettings,
    health: {
      address: settings.healthAddress,
      port: settings.healthPort,
      watchStallLimitMs: settings.watchStallLimitSeconds * 1000,
    },
    followerWatch: settings.followerWatch,
    shutdownBudgetMs: settings.shutdownBudgetSeconds * 1000,
    watchFailureLimitMs: settings.watchFailureLimitSeconds * 1000,
    warnings: warningList,
  };
}

/**
 * Gathers the filter settings; undefined when none is set. Checks every
 * `filtered_event_types` entry as the API server would, so that a bad one
 * stops the start naming the entry instead of failing every list later.
 */
function resolveEventFilters(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  warnings: string[],
): EventFilterSettings | undefined {
  const filters: EventFilterSettings = {
    filteredEventTypes: settings.filteredEventTypes,
    include: {
      types: settings.includeTypes,
      namespaces: settings.includeNamespaces,
      reasons: settings.includeReasons,
      kinds: settings.includeKinds,
    },
    exclude: {
      types: settings.excludeTypes,
      namespaces: settings.excludeNamespaces,
      reasons: settings.excludeReasons,
      kinds: settings.excludeKinds,
    },
  };
  if (!filtersAnything(filters)) return undefined;
  const source = origins.get("filteredEventTypes")?.source ?? "";
  try {
    checkFilteredEventTypes(filters.filteredEventTypes);
  } catch (e) {
    if (!(e instanceof FilteredEventTypeError)) throw e;
    throw new ConfigError({
      key: "filtered_event_types",
      source,
      value: e.entry,
      rule: e.detail,
      message: `Cannot parse filtered_event_types entry ${JSON.stringify(e.entry)} ` +
        `(${source}): ${e.detail}`,
      cause: e,
    });
  }
  for (const entry of filters.filteredEventTypes) {
    // A bare word is a reason, as in the Agent; one with an operator's "!"
    // was probably meant as a selector.
    if (!entry.includes("=") && entry.includes("!")) {
      warnings.push(
        `filtered_event_types entry ${JSON.stringify(entry)} (${source}) has no "=": it is ` +
          `read as ${agentFilterTerm(entry)}, leaving out events with that reason; write ` +
          `field!=value to filter on a field`,
      );
    }
  }
  return filters;
}

// ---- Lock kinds --------------------------------------------------------------

/**
 * What a ConfigMap or Endpoints lock adds to the rules. Its record's times
 * have whole seconds and other replicas see a renewal only because the
 * record changed, so renewals (one per retry period) must be more than a
 * second apart; only the expert lease setting can make them closer. And a
 * ConfigMap lock must not be the checkpoint ConfigMap: each write to one
 * would make the other's compare-and-swap fail.
 */
function checkAnnotationLock(
  settings: Settings,
  origins: Map<keyof Settings, Origin>,
  timings: Timings,
): void {
  const resource = settings.leaderElectionResource;
  if (resource === "lease") return;
  const resourceSource = origins.get("leaderElectionResource")?.source ?? "default";
  if (timings.retryPeriodMs <= 1000) {
    const source = origins.get("expertLeaseDurationMs")?.source ?? "default";
    const rule = `with leader_election_default_resource ${resource} (${resourceSource}) the ` +
      `retry period (lease / 4, here ${timings.retryPeriodMs} ms) must be more than 1000 ms, ` +
      "as the lock's record has whole-second times: use a lease of at least 4004 ms";
    throw new ConfigError({
      key: "kevents_lease_duration_ms",
      source,
      value: String(timings.leaseDurationMs),
      rule,
    });
  }
  if (resource === "configmap" && settings.leaseName === settings.tokenConfigMapName) {
    const nameSource = origins.get("leaseName")?.source ?? "default";
    const tokenSource = origins.get("tokenConfigMapName")?.source ?? "default";
    throw new ConfigError({
      key: "leader_lease_name",
      source: nameSource,
      value: settings.leaseName,
      rule: "must differ from kubernetes_event_token_configmap when the lock is a ConfigMap",
      message: `Cannot use the ConfigMap ${JSON.stringify(settings.leaseName)} both as the ` +
        `leader-election lock (leader_lease_name, ${nameSource}; leader_election_default_resource ` +
        `${resource}, ${resourceSource}) and as the event checkpoint ` +
        `(kubernetes_event_token_configmap, ${tokenSource}): each write to one would make the ` +
        "other's compare-and-swap fail; give them different names",
    });
  }
}

// ---- Agent 5 compatibility ---------------------------------------------------

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

function specOf<K extends keyof Settings>(field: K): KeySpec<K> {
  const spec = CONFIG_KEYS.find((k) => k.field === field);
  if (spec === undefined) throw new Error(`Internal error: no setting ${field}`);
  return spec as unknown as KeySpec<K>;
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
function applyAgent5Settings(
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
