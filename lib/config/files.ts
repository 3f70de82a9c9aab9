/**
 * Reading YAML files: where main.ts looks for `datadog.yaml`, and what a
 * `datadog.yaml` (or the Agent 5's kubernetes.yaml) sets, each value with
 * the file and line it came from; syntax errors, duplicate keys and
 * dangling aliases are ConfigErrors naming the line.
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
  type YAMLSeq,
} from "yaml";
import { unknownKeyWarning } from "./_typos.ts";
import { ConfigError } from "./errors.ts";
import { KNOWN_FILE_KEYS, KNOWN_FILE_PREFIXES, type RawValue } from "./settings.ts";

/** A setting found in the file. */
export interface FileEntry {
  /** Undefined when the node cannot be a setting's value (a nested list, a mapping of mappings). */
  raw: RawValue | undefined;
  /** A mapping's or list's value as JSON text, for a row with `fileJson`. */
  json?: string;
  /**
   * The same, every scalar as the text written (`0123` stays "0123", `0x1F`
   * "0x1F", `null` "null"), for a row with `fileJsonText`.
   */
  jsonText?: string;
  /** For a list of mappings: where each item (`"2"`) and each of its keys (`"2.url"`) is. */
  items?: ReadonlyMap<string, string>;
  /** The value was a mapping, which only a row with `fileMapping` takes. */
  mapping?: boolean;
  /** The value as shown in messages. */
  shown: string;
  /** `PATH line N`. */
  source: string;
}

/** The text of a scalar node as written; undefined for a list or mapping. */
export function scalarText(node: Node): string | undefined {
  // `source` is the scalar as written (after unquoting), before YAML typed
  // it: `0x3C` stays "0x3C" instead of becoming 60, so the file follows the
  // same rules as the environment.
  return isScalar(node) ? node.source ?? String(node.value) : undefined;
}

/** The known settings a datadog.yaml sets, and the YAML warnings it raised. */
export interface FileSettings {
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
export function readYamlMapping(file: { path: string; text: string }): YamlFile {
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

/** The kevents settings a datadog.yaml sets, each with its line, and its warnings. */
export function readFile(file: { path: string; text: string }): FileSettings {
  const { doc, lineCounter, top, warnings } = readYamlMapping(file);
  const entries = new Map<string, FileEntry>();
  if (top === undefined) return { entries, warnings };
  const pairs = [...top.items.map((pair) => ({ pair, prefix: "" }))];
  for (let i = 0; i < pairs.length; i++) {
    const { pair, prefix } = pairs[i]!;
    const keyNode = pair.key as Node | null;
    if (keyNode === null || !isScalar(keyNode)) continue;
    // viper matches keys case-insensitively; so does kevents. Most unknown
    // keys are the hundreds of other Agent settings a datadog.yaml may
    // hold: only a likely misspelling of a kevents setting is reported.
    const key = prefix + String(keyNode.value).toLowerCase();
    const line = lineCounter.linePos(keyNode.range?.[0] ?? 0).line;
    const source = `${file.path} line ${line}`;
    // A mapping under a key that prefixes known dotted keys (`cluster_agent:`
    // holding `token_name:`) is read as those keys, as viper reads them.
    const nested = resolveAlias(pair.value as Node | null, { doc, lineCounter, path: file.path });
    if (!KNOWN_FILE_KEYS.has(key) && isMap(nested) && KNOWN_FILE_PREFIXES.has(key)) {
      pairs.push(...nested.items.map((p) => ({ pair: p, prefix: `${key}.` })));
      continue;
    }
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
    const structured = isMap(value) || isSeq(value);
    const json = structured ? JSON.stringify(value.toJSON()) : undefined;
    const jsonText = structured ? JSON.stringify(textOf(value, doc)) : undefined;
    const items = isSeq(value) ? itemSources(value, lineCounter, file.path) : undefined;
    entries.set(key, {
      ...describeNode(value),
      ...(json === undefined ? {} : { json }),
      ...(jsonText === undefined ? {} : { jsonText }),
      ...(items === undefined ? {} : { items }),
      source,
    });
  }
  return { entries, warnings };
}

/**
 * A mapping or list as plain data, every scalar as the text written, so
 * that a value inside it follows the rules a top-level value follows (a
 * credential `000123` is not the number 123). An empty value is "".
 */
function textOf(node: unknown, doc: Document.Parsed): unknown {
  if (isAlias(node)) return textOf(node.resolve(doc), doc);
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = pair.key === null ? "" : scalarText(pair.key as Node) ?? "";
      out[key] = textOf(pair.value, doc);
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((item) => textOf(item, doc));
  if (node === null || node === undefined) return "";
  return scalarText(node as Node) ?? "";
}

/** Where each mapping item of a list and each of its keys is, as `PATH line N`; undefined when no item is a mapping. */
function itemSources(
  list: YAMLSeq,
  lineCounter: LineCounter,
  path: string,
): Map<string, string> | undefined {
  const out = new Map<string, string>();
  const at = (node: Node | null | undefined) =>
    `${path} line ${lineCounter.linePos(node?.range?.[0] ?? 0).line}`;
  list.items.forEach((item, i) => {
    if (!isMap(item)) return;
    out.set(`${i}`, at(item as Node));
    for (const pair of item.items) {
      const key = pair.key as Node | null;
      if (key !== null && isScalar(key)) out.set(`${i}.${String(key.value)}`, at(key));
    }
  });
  return out.size === 0 ? undefined : out;
}

/**
 * The node an alias (`*name`) stands for; ConfigError naming its line and
 * column when no anchor (`&name`) before it has that name, which the yaml
 * package does not count as a syntax error.
 */
export function resolveAlias(
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

/** A value node as a setting's raw value (a text, or a list of texts) and as shown in messages. */
export function describeNode(
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
