/**
 * Field and label selectors as kube-apiserver parses, checks and applies them
 * to list and watch requests, so that a client cannot tell the fake server
 * from the real one.
 *
 * The order of work mirrors the real server: the label selector is parsed
 * (k8s.io/apimachinery/pkg/labels), then the field selector
 * (k8s.io/apimachinery/pkg/fields), then every field is passed through the
 * resource's field label conversion, which is where an unknown field is
 * rejected. An object then matches when its labels and its selectable fields
 * (the resource's `GetAttrs`) satisfy both selectors.
 *
 * Error messages are the real server's text, which does not follow this
 * project's message style on purpose: clients and tests compare them. The
 * label validation wording is that of current kube-apiserver releases
 * ("must be no more than 63 bytes", "a valid label key"); older servers say
 * "characters" and "a qualified name".
 *
 * @module
 */

/** Raised for a selector the real API server would reject; the message matches the API server's text. */
export class SelectorError extends Error {
  /** The HTTP status code the API server answers with. */
  readonly code = 400;
  /** The Kubernetes Status reason the API server answers with. */
  readonly reason = "BadRequest";
  constructor(message: string) {
    super(message);
    this.name = "SelectorError";
  }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/** A parsed field selector. */
export interface FieldSelector {
  /** The terms, in the (sorted) order the API server keeps them. */
  readonly requirements: readonly FieldRequirement[];
  /** Whether an object with these selectable fields matches; a missing field counts as "". */
  matches(fields: Readonly<Record<string, string>>): boolean;
  /** The canonical form the API server prints (`==` becomes `=`, values escaped). */
  toString(): string;
  /** Whether the selector places no restriction. */
  isEmpty(): boolean;
}

/** One term of a field selector; `==` is stored as `=`. */
export interface FieldRequirement {
  field: string;
  operator: "=" | "!=";
  value: string;
}

class ParsedFieldSelector implements FieldSelector {
  readonly requirements: readonly FieldRequirement[];

  constructor(requirements: FieldRequirement[]) {
    this.requirements = Object.freeze(requirements.map((r) => Object.freeze({ ...r })));
  }

  matches(fields: Readonly<Record<string, string>>): boolean {
    return this.requirements.every((r) =>
      (lookup(fields, r.field) === r.value) === (r.operator === "=")
    );
  }

  toString(): string {
    return this.requirements
      .map((r) => `${r.field}${r.operator}${escapeFieldSelectorValue(r.value)}`)
      .join(",");
  }

  isEmpty(): boolean {
    return this.requirements.length === 0;
  }
}

/** Escapes a literal value for use in a field selector (`\` `,` `=` get a backslash). */
export function escapeFieldSelectorValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/** Parses a fieldSelector query value ("a=b,c!=d", "a==b", escapes "\\,", "\\=", "\\\\"); throws SelectorError. */
export function parseFieldSelector(text: string): FieldSelector {
  // The API server sorts the raw terms before parsing them, so the first
  // error reported is that of the first bad term in sorted order.
  const terms = splitFieldTerms(text).sort(compareGoStrings);
  const requirements: FieldRequirement[] = [];
  for (const term of terms) {
    if (term === "") continue;
    const split = splitFieldTerm(term);
    if (split === undefined) {
      throw new SelectorError(`invalid selector: '${text}'; can't understand '${term}'`);
    }
    const value = unescapeFieldValue(split.rhs);
    // A term whose field and value are both empty ("=", "!=") is dropped by
    // the parser's identity transform, so the server treats it as no term.
    if (split.lhs === "" && value === "") continue;
    requirements.push({
      field: split.lhs,
      operator: split.operator === "!=" ? "!=" : "=",
      value,
    });
  }
  return new ParsedFieldSelector(requirements);
}

/** Splits on commas that are not escaped; escapes stay in the terms. */
function splitFieldTerms(text: string): string[] {
  if (text === "") return [];
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (escaped) {
      escaped = false;
    } else if (c === "\\") {
      escaped = true;
    } else if (c === ",") {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

const FIELD_OPERATORS = ["!=", "==", "="] as const;

/** Splits a term at its first operator; the field part has no escaping. */
function splitFieldTerm(
  term: string,
): { lhs: string; operator: typeof FIELD_OPERATORS[number]; rhs: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const operator of FIELD_OPERATORS) {
      if (term.startsWith(operator, i)) {
        return { lhs: term.slice(0, i), operator, rhs: term.slice(i + operator.length) };
      }
    }
  }
  return undefined;
}

function unescapeFieldValue(raw: string): string {
  if (!/[\\,=]/.test(raw)) return raw;
  let out = "";
  let escaped = false;
  for (const c of raw) {
    if (escaped) {
      if (c !== "\\" && c !== "," && c !== "=") {
        throw new SelectorError(`invalid field selector: invalid escape sequence: \\${c}`);
      }
      out += c;
      escaped = false;
    } else if (c === "\\") {
      escaped = true;
    } else if (c === "," || c === "=") {
      // The API server prints the rune with %v, that is as its code point number.
      throw new SelectorError(
        `invalid field selector: unescaped character in value: ${c.codePointAt(0)}`,
      );
    } else {
      out += c;
    }
  }
  if (escaped) throw new SelectorError("invalid field selector: invalid escape sequence: \\");
  return out;
}

// ---------------------------------------------------------------------------
// Selectable fields per resource
// ---------------------------------------------------------------------------

type Obj = Record<string, unknown>;

/** How one resource's field selectors are converted and which fields its objects expose. */
interface FieldRules {
  /** The fields its conversion accepts; undefined means the generic metadata.name/namespace rule. */
  supported?: ReadonlySet<string>;
  /** The selectable fields of an object, beyond metadata.name (and metadata.namespace when namespaced). */
  fields?: (obj: Obj) => Record<string, string>;
  /** Cluster-scoped objects expose no metadata.namespace field. */
  clusterScoped?: boolean;
}

const EVENT_FIELDS = [
  "involvedObject.kind",
  "involvedObject.namespace",
  "involvedObject.name",
  "involvedObject.uid",
  "involvedObject.apiVersion",
  "involvedObject.resourceVersion",
  "involvedObject.fieldPath",
  "reason",
  "reportingComponent",
  "source",
  "type",
  "metadata.namespace",
  "metadata.name",
];

// Only core/v1 kinds register a field label conversion; everything else
// (configmaps, leases, endpoints, serviceaccounts, ...) gets the generic one.
const RULES: Readonly<Record<string, FieldRules>> = {
  events: {
    supported: new Set(EVENT_FIELDS),
    fields: (o) => {
      const involved = (k: string) => text(o, "involvedObject", k);
      // Newer servers fall back to reportingComponent (the core/v1 name of
      // reportingController) when source.component is empty.
      const source = text(o, "source", "component") || text(o, "reportingComponent");
      return {
        "involvedObject.kind": involved("kind"),
        "involvedObject.namespace": involved("namespace"),
        "involvedObject.name": involved("name"),
        "involvedObject.uid": involved("uid"),
        "involvedObject.apiVersion": involved("apiVersion"),
        "involvedObject.resourceVersion": involved("resourceVersion"),
        "involvedObject.fieldPath": involved("fieldPath"),
        "reason": text(o, "reason"),
        "reportingComponent": text(o, "reportingComponent"),
        "source": source,
        "type": text(o, "type"),
      };
    },
  },
  namespaces: {
    // No metadata.namespace here: the namespace conversion rejects it.
    supported: new Set(["status.phase", "metadata.name"]),
    clusterScoped: true,
    // "name" is exposed by the real server for backward compatibility even
    // though no selector can reach it through the conversion.
    fields: (o) => ({
      "status.phase": text(o, "status", "phase"),
      "name": text(o, "metadata", "name"),
    }),
  },
  nodes: {
    supported: new Set(["metadata.name", "spec.unschedulable"]),
    clusterScoped: true,
    fields: (o) => ({ "spec.unschedulable": String(nested(o, "spec", "unschedulable") === true) }),
  },
  pods: {
    supported: new Set([
      "metadata.name",
      "metadata.namespace",
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.podIPs",
      "status.nominatedNodeName",
      // Old clients' name for spec.nodeName; the server rewrites it.
      "spec.host",
    ]),
    fields: (o) => {
      const podIPs = nested(o, "status", "podIPs");
      const firstIP = Array.isArray(podIPs) && isObj(podIPs[0]) ? text(podIPs[0], "ip") : "";
      const nodeName = text(o, "spec", "nodeName");
      return {
        "spec.nodeName": nodeName,
        "spec.host": nodeName,
        "spec.restartPolicy": text(o, "spec", "restartPolicy"),
        "spec.schedulerName": text(o, "spec", "schedulerName"),
        "spec.serviceAccountName": text(o, "spec", "serviceAccountName"),
        "spec.hostNetwork": String(nested(o, "spec", "hostNetwork") === true),
        "status.phase": text(o, "status", "phase"),
        "status.podIP": firstIP || text(o, "status", "podIP"),
        "status.nominatedNodeName": text(o, "status", "nominatedNodeName"),
      };
    },
  },
  replicationcontrollers: {
    supported: new Set(["metadata.name", "metadata.namespace", "status.replicas"]),
    fields: (o) => {
      const replicas = nested(o, "status", "replicas");
      return { "status.replicas": String(typeof replicas === "number" ? replicas : 0) };
    },
  },
  secrets: {
    supported: new Set(["type", "metadata.namespace", "metadata.name"]),
    fields: (o) => ({ "type": text(o, "type") }),
  },
  services: {
    supported: new Set(["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"]),
    fields: (o) => ({
      "spec.clusterIP": text(o, "spec", "clusterIP"),
      "spec.type": text(o, "spec", "type"),
    }),
  },
  // Cluster-scoped kinds with the generic conversion: metadata.namespace is
  // accepted but always "", so it matches only "" (as on the real server).
  componentstatuses: { clusterScoped: true },
  persistentvolumes: { clusterScoped: true },
  clusterroles: { clusterScoped: true },
  clusterrolebindings: { clusterScoped: true },
};

const GENERIC_FIELDS = new Set(["metadata.name", "metadata.namespace"]);

function rulesOf(resource: string): FieldRules {
  return Object.hasOwn(RULES, resource) ? RULES[resource] ?? {} : {};
}

/** The selectable fields of an object of a given resource, as the real API server exposes them, e.g. fieldsOf("events", obj). */
export function fieldsOf(resource: string, obj: Record<string, unknown>): Record<string, string> {
  const rules = rulesOf(resource);
  const meta: Record<string, string> = { "metadata.name": text(obj, "metadata", "name") };
  if (!rules.clusterScoped) meta["metadata.namespace"] = text(obj, "metadata", "namespace");
  // Metadata wins over a resource field of the same name, as in the server.
  return { ...rules.fields?.(obj), ...meta };
}

/** Checks that every field in the selector is supported for the resource; throws SelectorError `field label not supported: <field>` otherwise. */
export function checkFieldSelector(resource: string, selector: FieldSelector): void {
  const rules = rulesOf(resource);
  for (const { field } of selector.requirements) {
    if (rules.supported !== undefined) {
      if (!rules.supported.has(field)) {
        throw new SelectorError(`field label not supported: ${field}`);
      }
    } else if (!GENERIC_FIELDS.has(field)) {
      throw new SelectorError(
        `${
          goQuote(field)
        } is not a known field selector: only "metadata.name", "metadata.namespace"`,
      );
    }
  }
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nested(obj: Obj, ...path: string[]): unknown {
  let current: unknown = obj;
  for (const key of path) {
    if (!isObj(current) || !Object.hasOwn(current, key)) return undefined;
    current = current[key];
  }
  return current;
}

/** A string field of the object, "" when missing or not a string (Go's zero value). */
function text(obj: Obj, ...path: string[]): string {
  const value = nested(obj, ...path);
  return typeof value === "string" ? value : "";
}

function lookup(map: Readonly<Record<string, string>>, key: string): string {
  return Object.hasOwn(map, key) ? map[key] ?? "" : "";
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/** A parsed label selector (equality- and set-based). */
export interface LabelSelector {
  /** Whether an object with these labels matches. */
  matches(labels: Readonly<Record<string, string>>): boolean;
  /** Whether the selector places no restriction. */
  isEmpty(): boolean;
  /** The canonical form the API server prints (requirements sorted by key). */
  toString(): string;
}

type LabelOperator = "in" | "notin" | "=" | "==" | "!=" | "gt" | "lt" | "exists" | "!";

interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Sorted and without duplicates, as the server's string set gives them. */
  values: readonly string[];
}

class ParsedLabelSelector implements LabelSelector {
  readonly #requirements: readonly LabelRequirement[];

  constructor(requirements: LabelRequirement[]) {
    this.#requirements = requirements;
  }

  matches(labels: Readonly<Record<string, string>>): boolean {
    return this.#requirements.every((r) => requirementMatches(r, labels));
  }

  isEmpty(): boolean {
    return this.#requirements.length === 0;
  }

  toString(): string {
    return this.#requirements.map(requirementString).join(",");
  }
}

function requirementMatches(
  r: LabelRequirement,
  labels: Readonly<Record<string, string>>,
): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = has ? labels[r.key] ?? "" : "";
  switch (r.operator) {
    case "in":
    case "=":
    case "==":
      return has && r.values.includes(value);
    case "notin":
    case "!=":
      return !has || !r.values.includes(value);
    case "exists":
      return has;
    case "!":
      return !has;
    case "gt":
    case "lt": {
      if (!has || r.values.length !== 1) return false;
      const actual = parseInt64(value);
      const bound = parseInt64(r.values[0] ?? "");
      if (actual === undefined || bound === undefined) return false;
      return r.operator === "gt" ? actual > bound : actual < bound;
    }
  }
}

function requirementString(r: LabelRequirement): string {
  const values = r.values.join(",");
  switch (r.operator) {
    case "exists":
      return r.key;
    case "!":
      return `!${r.key}`;
    case "in":
    case "notin":
      return `${r.key} ${r.operator} (${values})`;
    case "gt":
      return `${r.key}>${values}`;
    case "lt":
      return `${r.key}<${values}`;
    default:
      return `${r.key}${r.operator}${values}`;
  }
}

/** Parses a labelSelector query value: "a=b", "a==b", "a!=b", "a in (x,y)", "a notin (x)", "a", "!a", comma-separated; throws SelectorError with the apiserver's wording. */
export function parseLabelSelector(text: string): LabelSelector {
  const requirements = new LabelParser(lexLabelSelector(text)).parse();
  // Stable, so repeated keys keep their written order, as the server keeps
  // them for selectors of up to twelve requirements.
  requirements.sort((a, b) => compareGoStrings(a.key, b.key));
  return new ParsedLabelSelector(requirements);
}

/** Token kinds: operators and punctuation are their own literal. */
type Tok =
  | "end"
  | "identifier"
  | "("
  | ")"
  | ","
  | "!"
  | "="
  | "=="
  | "!="
  | ">"
  | "<"
  | "in"
  | "notin";

interface Token {
  tok: Tok;
  literal: string;
}

const KEYWORDS: ReadonlySet<string> = new Set([
  "(",
  ")",
  ",",
  "!",
  "=",
  "==",
  "!=",
  ">",
  "<",
  "in",
  "notin",
]);

const tokenOf = (literal: string): Token => ({
  tok: KEYWORDS.has(literal) ? literal as Tok : "identifier",
  literal,
});

const isWhitespace = (c: string) => c === " " || c === "\t" || c === "\r" || c === "\n";
const isSpecial = (c: string) => "=!(),><".includes(c) && c !== "";

/**
 * Splits a label selector into tokens the way the server's lexer does. A NUL
 * character behaves like the end of the input where a token starts, and like
 * a separator inside one, because the server reads bytes and uses 0 as "end".
 */
function lexLabelSelector(s: string): Token[] {
  let pos = 0;
  // "" at the real end (without moving), "\0" for a NUL (consumed).
  const read = (): string => (pos < s.length ? s[pos++] ?? "" : "");
  const atEnd = (c: string) => c === "" || c === "\0";
  const tokens: Token[] = [];
  for (;;) {
    let c = read();
    while (isWhitespace(c)) c = read();
    if (atEnd(c)) {
      tokens.push({ tok: "end", literal: "" });
      return tokens;
    }
    if (isSpecial(c)) {
      // Longest match: "==" and "!=" are the only two-character operators.
      // The server reads one character past the operator and puts it back
      // unless it is the end (a NUL there is consumed).
      let literal = c;
      let next = read();
      if (!atEnd(next) && KEYWORDS.has(c + next)) {
        literal = c + next;
        next = read();
      }
      if (!atEnd(next)) pos--;
      tokens.push(tokenOf(literal));
      continue;
    }
    let literal = c;
    for (;;) {
      const next = read();
      if (atEnd(next)) break;
      if (isSpecial(next) || isWhitespace(next)) {
        pos--;
        break;
      }
      literal += next;
    }
    tokens.push(tokenOf(literal));
  }
}

const BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt";

class LabelParser {
  readonly #tokens: Token[];
  #position = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens;
  }

  /** In a value position the keywords "in" and "notin" are plain identifiers. */
  #lookahead(valueContext = true): Token {
    const token = this.#tokens[Math.min(this.#position, this.#tokens.length - 1)] ??
      { tok: "end", literal: "" };
    if (valueContext && (token.tok === "in" || token.tok === "notin")) {
      return { tok: "identifier", literal: token.literal };
    }
    return token;
  }

  #consume(valueContext = true): Token {
    const token = this.#lookahead(valueContext);
    this.#position++;
    return token;
  }

  parse(): LabelRequirement[] {
    const requirements: LabelRequirement[] = [];
    for (;;) {
      const { tok, literal } = this.#lookahead();
      if (tok === "end") return requirements;
      if (tok !== "identifier" && tok !== "!") {
        throw new SelectorError(`found '${literal}', expected: !, identifier, or 'end of string'`);
      }
      requirements.push(this.#requirement());
      const after = this.#consume();
      if (after.tok === "end") return requirements;
      if (after.tok !== ",") {
        throw new SelectorError(`found '${after.literal}', expected: ',' or 'end of string'`);
      }
      const next = this.#lookahead();
      if (next.tok !== "identifier" && next.tok !== "!") {
        throw new SelectorError(`found '${next.literal}', expected: identifier after ','`);
      }
    }
  }

  #requirement(): LabelRequirement {
    try {
      const { key, operator } = this.#keyAndInferredOperator();
      if (operator !== undefined) return newRequirement(key, operator, []);
      const op = this.#operator();
      const values = op === "in" || op === "notin" ? this.#setValues() : this.#exactValue();
      return newRequirement(key, op, [...values].sort(compareGoStrings));
    } catch (error) {
      if (error instanceof SelectorError) {
        throw new SelectorError(`unable to parse requirement: ${error.message}`);
      }
      throw error;
    }
  }

  #keyAndInferredOperator(): { key: string; operator: "exists" | "!" | undefined } {
    let token = this.#consume();
    let operator: "exists" | "!" | undefined;
    if (token.tok === "!") {
      operator = "!";
      token = this.#consume();
    }
    if (token.tok !== "identifier") {
      throw new SelectorError(`found '${token.literal}', expected: identifier`);
    }
    const problems = labelKeyProblems(token.literal);
    if (problems.length > 0) {
      throw new SelectorError(invalidValue("<nil>", token.literal, problems.join("; ")));
    }
    const next = this.#lookahead().tok;
    if ((next === "end" || next === ",") && operator === undefined) {
      operator = "exists";
    }
    return { key: token.literal, operator };
  }

  #operator(): Exclude<LabelOperator, "exists" | "!"> {
    const { tok, literal } = this.#consume(false);
    switch (tok) {
      case "in":
        return "in";
      case "notin":
        return "notin";
      case "=":
        return "=";
      case "==":
        return "==";
      case "!=":
        return "!=";
      case ">":
        return "gt";
      case "<":
        return "lt";
      default:
        throw new SelectorError(`found '${literal}', expected: ${BINARY_OPERATORS}`);
    }
  }

  #setValues(): Set<string> {
    const open = this.#consume();
    if (open.tok !== "(") throw new SelectorError(`found '${open.literal}' expected: '('`);
    const first = this.#lookahead();
    if (first.tok === ")") {
      this.#consume();
      return new Set([""]);
    }
    if (first.tok !== "identifier" && first.tok !== ",") {
      throw new SelectorError(`found '${first.literal}', expected: ',', ')' or identifier`);
    }
    const values = this.#identifierList();
    if (this.#consume().tok !== ")") {
      // The server reports the token after "(" here, not the one it found.
      throw new SelectorError(`found '${first.literal}', expected: ')'`);
    }
    return values;
  }

  /** A comma-separated list in which empty items are "" values. */
  #identifierList(): Set<string> {
    const values = new Set<string>();
    for (;;) {
      const { tok, literal } = this.#consume();
      if (tok === "identifier") {
        values.add(literal);
        const next = this.#lookahead();
        if (next.tok === ",") continue;
        if (next.tok === ")") return values;
        throw new SelectorError(`found '${next.literal}', expected: ',' or ')'`);
      }
      if (tok !== ",") throw new SelectorError(`found '${literal}', expected: ',', or identifier`);
      if (values.size === 0) values.add("");
      const next = this.#lookahead().tok;
      if (next === ")") {
        values.add("");
        return values;
      }
      if (next === ",") {
        this.#consume();
        values.add("");
      }
    }
  }

  #exactValue(): Set<string> {
    const next = this.#lookahead().tok;
    if (next === "end" || next === ",") return new Set([""]);
    const { tok, literal } = this.#consume();
    if (tok !== "identifier") throw new SelectorError(`found '${literal}', expected: identifier`);
    return new Set([literal]);
  }
}

/** Validates a requirement the way the server's NewRequirement does (the key is already checked). */
function newRequirement(
  key: string,
  operator: LabelOperator,
  values: string[],
): LabelRequirement {
  const errors: string[] = [];
  if (operator === "gt" || operator === "lt") {
    values.forEach((v, i) => {
      if (parseInt64(v) === undefined) {
        errors.push(
          invalidValue(`values[${i}]`, v, "for 'Gt', 'Lt' operators, the value must be an integer"),
        );
      }
    });
  }
  values.forEach((v, i) => {
    const problems = labelValueProblems(v);
    if (problems.length > 0) {
      errors.push(invalidValue(`values[${i}][${key}]`, v, problems.join("; ")));
    }
  });
  const unique = [...new Set(errors)];
  if (unique.length === 1) throw new SelectorError(unique[0] ?? "");
  if (unique.length > 1) throw new SelectorError(`[${unique.join(", ")}]`);
  return { key, operator, values };
}

// ---------------------------------------------------------------------------
// Label key and value validation (k8s.io/apimachinery/pkg/api/validate/content)
// ---------------------------------------------------------------------------

const LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT = `(${LABEL_KEY_FMT})?`;
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT = `${DNS1123_LABEL_FMT}(\\.${DNS1123_LABEL_FMT})*`;
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

const labelKeyRegexp = new RegExp(`^${LABEL_KEY_FMT}$`);
const labelValueRegexp = new RegExp(`^${LABEL_VALUE_FMT}$`);
const subdomainRegexp = new RegExp(`^${DNS1123_SUBDOMAIN_FMT}$`);

const byteLength = (s: string) => new TextEncoder().encode(s).length;
const maxLenError = (n: number) => `must be no more than ${n} bytes`;

function regexError(msg: string, fmt: string, ...examples: string[]): string {
  const shown = examples.map((e) => `'${e}', `).join(" or ");
  return `${msg} (e.g. ${shown}regex used for validation is '${fmt}')`;
}

function labelKeyProblems(key: string): string[] {
  const problems: string[] = [];
  const parts = key.split("/");
  if (parts.length > 2) {
    return [
      `a valid label key ${
        regexError(LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
      }` +
      " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  const name = parts.length === 2 ? parts[1] ?? "" : key;
  if (parts.length === 2) {
    const prefix = parts[0] ?? "";
    if (prefix === "") {
      problems.push("prefix part must be non-empty");
    } else {
      if (byteLength(prefix) > 253) problems.push(`prefix part ${maxLenError(253)}`);
      if (!subdomainRegexp.test(prefix)) {
        problems.push(
          `prefix part ${regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com")}`,
        );
      }
    }
  }
  if (name === "") problems.push("name part must be non-empty");
  else if (byteLength(name) > 63) problems.push(`name part ${maxLenError(63)}`);
  if (!labelKeyRegexp.test(name)) {
    problems.push(
      `name part ${regexError(LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName", "my.name", "123-abc")}`,
    );
  }
  return problems;
}

function labelValueProblems(value: string): string[] {
  const problems: string[] = [];
  if (byteLength(value) > 63) problems.push(maxLenError(63));
  if (!labelValueRegexp.test(value)) {
    problems.push(regexError(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"));
  }
  return problems;
}

/** A field.Invalid error as the server prints it: `<path>: Invalid value: "<value>": <detail>`. */
function invalidValue(path: string, value: string, detail: string): string {
  return `${path}: Invalid value: ${goQuote(value)}: ${detail}`;
}

// ---------------------------------------------------------------------------
// Go compatibility helpers
// ---------------------------------------------------------------------------

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** strconv.ParseInt(s, 10, 64): optional sign, decimal digits, within int64. */
function parseInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

/** Orders strings as Go does (by UTF-8 bytes, which is code point order). */
function compareGoStrings(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i]?.codePointAt(0) ?? 0) - (y[i]?.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  '"': '\\"',
  "\\": "\\\\",
};

/** Go's %q of a string (strconv.Quote), close enough for selector messages. */
function goQuote(s: string): string {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0) ?? 0;
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) out += simple;
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else if (c === " " || /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(c)) out += c;
    else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += `\\U${code.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}
