/**
 * Reading PromQL for the tests of the alert rules and the dashboard: the
 * metric names an expression reads, to check them against a live /metrics.
 */

/** Words of PromQL that are not metric names when they stand without a parenthesis. */
const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "atan2",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression reads: identifiers outside label
 * matchers, strings, ranges, grouping label lists and Grafana variables,
 * not followed by `(` (functions and aggregations), not keywords.
 */
export function metricNames(expr: string): string[] {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\$\{[^}]*\}|\$\w+/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  // Numbers and durations (0.99, 1e3, 1h30m) are one token starting with a digit or a dot.
  const tokens = /[a-zA-Z_:][a-zA-Z0-9_:]*|\.?\d[\w.]*|\S/g;
  for (const m of text.matchAll(tokens)) {
    const word = m[0];
    if (!/^[a-zA-Z_:]/.test(word) || KEYWORDS.has(word.toLowerCase())) continue;
    const after = text.slice(m.index + word.length).trimStart();
    if (!after.startsWith("(")) names.add(word);
  }
  return [...names].sort();
}
