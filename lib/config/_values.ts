/**
 * The value parsers of the settings table, with the rules they check as
 * text for messages. Each takes a value as a source gave it (a text, or a
 * list of texts from the file) and returns the parsed value, or undefined
 * when the value breaks the rule.
 *
 * @module
 */

import type { RawValue } from "./settings.ts";
import type { LockResource } from "./types.ts";

// The Agent reads booleans through spf13/cast (Go's strconv.ParseBool:
// 1, t, true, 0, f, false in lower, title or upper case), and its newer
// config tree also takes the YAML words y/yes/on and n/no/off. kevents
// accepts the union, in any case, with surrounding whitespace trimmed.
const TRUE_WORDS = new Set(["true", "t", "1", "yes", "y", "on"]);
const FALSE_WORDS = new Set(["false", "f", "0", "no", "n", "off"]);

/** A boolean word (see above). */
export function parseBool(raw: RawValue): boolean | undefined {
  if (typeof raw !== "string") return undefined;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}

export const BOOL_RULE =
  "must be a boolean (true/false, yes/no, on/off, 1/0, t/f or y/n, in any case)";

/** Decimal digits only: "12.5", "1e9", "0x3C" and "" are refused, whatever a number parser would make of them. */
export function integerIn(min: number, max: number): (raw: RawValue) => number | undefined {
  return (raw) => {
    if (typeof raw !== "string") return undefined;
    const text = raw.trim();
    if (!/^[+-]?\d+$/.test(text)) return undefined;
    const n = Number(text);
    return n >= min && n <= max ? n : undefined;
  };
}

/** A host name or an IP address (v4, or v6 without brackets): what Deno.serve binds. */
export function bindAddress(raw: RawValue): string | undefined {
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

/** A DNS-1123 label, as a namespace name. */
export function dnsLabel(raw: RawValue): string | undefined {
  return typeof raw === "string" && raw.length <= 63 && DNS1123_LABEL.test(raw) ? raw : undefined;
}

/** A DNS-1123 subdomain, as an object name. */
export function dnsSubdomain(raw: RawValue): string | undefined {
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
export function parseLockResource(raw: RawValue): LockResource | undefined {
  return typeof raw === "string" ? LOCK_RESOURCES[raw.trim().toLowerCase()] : undefined;
}

export const LABEL_RULE = "must be a DNS-1123 label (at most 63 characters: lowercase letters, " +
  "digits and '-', starting and ending with a letter or digit)";
export const SUBDOMAIN_RULE = "must be a DNS-1123 subdomain (at most 253 characters: lowercase " +
  "letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit)";

/**
 * `filtered_event_types`: a YAML list of entries, or a comma-separated text
 * (split on unescaped commas, so `reason!=a\,b` stays one entry); each
 * entry trimmed and non-empty. Whether the API server accepts each entry is
 * checked by parseConfig, which names the entry.
 */
export function parseFilterEntries(raw: RawValue): string[] | undefined {
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
export function valueList(
  item: (value: string) => boolean,
): (raw: RawValue) => string[] | undefined {
  return (raw) => {
    const items = (typeof raw === "string" ? raw.split(",") : raw).map((i) => i.trim());
    if (items.length === 1 && items[0] === "" && typeof raw === "string") return [];
    return items.every((i) => i !== "" && item(i)) ? [...new Set(items)] : undefined;
  };
}

export const FILTER_RULE =
  "must be a list (comma-separated, or a YAML list in the file) of non-empty";
export const FILTER_ENTRIES_RULE = `${FILTER_RULE} field selectors on events ` +
  "(field=value or field!=value, e.g. type!=Normal) or bare event reasons (X means reason!=X)";

/** An http:// or https:// URL with a host. */
export function httpUrl(raw: RawValue): string | undefined {
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
export function credential(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  return /^[\x21-\x7e]+$/.test(text) ? text : undefined;
}

/** A non-empty path (trimmed). */
export function filePath(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  return text === "" ? undefined : text;
}

/** One of `words`, in any case. */
export function oneOf<T extends string>(...words: T[]): (raw: RawValue) => T | undefined {
  return (raw) => {
    if (typeof raw !== "string") return undefined;
    const word = raw.trim().toLowerCase();
    return words.find((w) => w === word);
  };
}

/** An HTTP token (RFC 9110), the characters a header name may have. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `K=V,K2=V2` (environment) or a mapping (file); names distinct regardless of case, values without control characters. */
export function parseHeaders(raw: RawValue): Record<string, string> | undefined {
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

/** A Datadog site: a domain name, in any case. */
export function site(raw: RawValue): string | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim().toLowerCase();
  return text.length <= 253 && SITE.test(text) ? text : undefined;
}

export const URL_RULE = "must be an http:// or https:// URL";
export const ON_FAILURE_RULE = 'must be "retry" (the batch is retried until delivered) or "drop" ' +
  "(the batch is dropped and counted after the attempts)";
export const ATTEMPTS_RULE = "must be an integer from 1 to 100";

/** The Agent's form of a cluster name: lowercase, `_` as `-` (clustername.go's RFC 1123 form). */
export function normalClusterName(name: string): string {
  return name.toLowerCase().replaceAll("_", "-");
}

const CLUSTER_NAME = /^([a-z]([a-z0-9-]*[a-z0-9])?\.)*([a-z]([a-z0-9-]*[a-z0-9])?)$/;

/** A cluster name the Agent takes: once normalised, dot-separated parts of letters, digits and '-', each starting with a letter. */
export function clusterName(raw: RawValue): string | undefined {
  if (typeof raw !== "string" || raw.length > 253) return undefined;
  return CLUSTER_NAME.test(normalClusterName(raw)) ? raw : undefined;
}

export const CLUSTER_NAME_RULE =
  "must be a cluster name as the Datadog Agent takes it (at most 253 " +
  "characters: letters, digits, '-', '_' and '.', each dot-separated part starting with a letter " +
  "and ending with a letter or digit; '_' and capitals become '-' and lowercase in hosts)";

/** A list of Datadog tags: `key:value` or `value`, without spaces or commas. */
export const tagList: (raw: RawValue) => string[] | undefined = valueList((t) =>
  !/[\s,]/.test(t) && !t.startsWith(":") && t.length <= 200
);

/** A no_proxy list: host or host:port entries, comma- or space-separated (DD_PROXY_NO_PROXY). */
export function hostList(raw: RawValue): string[] | undefined {
  const items = typeof raw === "string" ? raw.split(/[\s,]+/) : raw.map((i) => i.trim());
  const hosts = items.filter((i) => i !== "");
  // CIDR ranges and other forms other programs take are kept: they match no
  // host exactly, so they change nothing here.
  return hosts.every((h) => /^[A-Za-z0-9.*:\[\]_\/%-]+$/.test(h)) ? [...new Set(hosts)] : undefined;
}

export const HOST_LIST_RULE = "must be a list (comma- or space-separated, or a YAML list in the " +
  "file) of host names or host:port, as the Agent's proxy.no_proxy";

export const PROXY_URL_RULE = "must be an http:// or https:// proxy URL (a SOCKS proxy is not " +
  "supported)";

export const TAG_LIST_RULE = "must be a list (comma-separated, or a YAML list in the file) of " +
  "Datadog tags (key:value or value, at most 200 characters, no spaces or commas)";

/** One entry of `collected_event_types`, as the settings hold it. */
type EventTypeEntry = { kind?: string; source?: string; reasons: string[] };

const EVENT_TYPE_KEYS: ReadonlySet<string> = new Set(["kind", "source", "reasons"]);

const nonEmptyText = (v: unknown): v is string => typeof v === "string" && v !== "";

/**
 * `collected_event_types`: JSON text of a list of `{"kind", "source",
 * "reasons"}` entries (the Agent's check takes a YAML list of mappings,
 * which kevents' datadog.yaml takes as that JSON in one quoted text); ""
 * is the empty list. Each entry has only those keys, `kind` and `source`
 * non-empty texts when given, `reasons` a list of non-empty texts (absent:
 * `[]`, any reason). Whether each entry has `kind` or `source` is checked
 * by resolveSinkSettings, which names the entry.
 */
export function parseEventTypes(raw: RawValue): EventTypeEntry[] | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  if (text === "") return [];
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(list)) return undefined;
  const entries: EventTypeEntry[] = [];
  for (const item of list as unknown[]) {
    if (typeof item !== "object" || item === null || Array.isArray(item)) return undefined;
    const { kind, source, reasons = [] } = item as Record<string, unknown>;
    if (Object.keys(item).some((k) => !EVENT_TYPE_KEYS.has(k))) return undefined;
    if (kind !== undefined && !nonEmptyText(kind)) return undefined;
    if (source !== undefined && !nonEmptyText(source)) return undefined;
    if (!Array.isArray(reasons) || !reasons.every(nonEmptyText)) return undefined;
    entries.push({
      ...(kind === undefined ? {} : { kind }),
      ...(source === undefined ? {} : { source }),
      reasons: [...new Set(reasons)],
    });
  }
  return entries;
}

export const EVENT_TYPES_RULE = 'must be a JSON list of entries {"kind": KIND, "source": ' +
  'COMPONENT, "reasons": [REASON, ...]}, each with "kind" or "source" (non-empty texts, ' +
  'matched exactly) and optionally "reasons" (non-empty texts; none: any reason), no other ' +
  "key; in datadog.yaml the same JSON as one quoted text, e.g. " +
  `collected_event_types: '[{"kind":"Pod","reasons":["Failed"]}]'`;
