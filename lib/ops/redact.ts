/**
 * Keeping credentials out of what kevents writes: log lines, error
 * messages, metrics and status output.
 *
 * @module
 */

const REDACTED = "[redacted]";

/** Replaces every occurrence of each secret in `text` (secrets shorter than 4 characters are left alone: they would mangle ordinary words). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= 4) out = out.split(s).join(REDACTED);
  }
  return out;
}

/**
 * Whether a header's value is a credential by its name: anything about
 * authentication (`Authorization`, `X-Custom-Auth`), API and application
 * keys (`DD-API-KEY`, `DD-Application-Key`), tokens, secrets, passwords,
 * cookies.
 */
export function isSecretHeader(name: string): boolean {
  return /auth|api[-_]?key|app(lication)?[-_]?key|token|secret|passw|cookie/i.test(name);
}

/**
 * The parts of a URL that may be credentials, as written and decoded: the
 * user info and every value of the query string (`?token=...`,
 * `?api_key=...`). Empty for undefined or a text that is not a URL.
 */
export function urlSecrets(url: string | URL | undefined): string[] {
  if (url === undefined) return [];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const values = [parsed.username, parsed.password];
  for (const pair of parsed.search.replace(/^\?/, "").split("&")) {
    const eq = pair.indexOf("=");
    if (eq >= 0) values.push(pair.slice(eq + 1));
  }
  const decoded = values.map((v) => {
    try {
      return decodeURIComponent(v.replaceAll("+", " "));
    } catch {
      return v;
    }
  });
  return [...new Set([...values, ...decoded])].filter((v) => v !== "");
}
