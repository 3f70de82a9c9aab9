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

/** Whether a header's value is a credential by its name (authorization, api keys, tokens, secrets, passwords, cookies). */
export function isSecretHeader(name: string): boolean {
  return /authorization|api[-_]?key|token|secret|passw|cookie/i.test(name);
}
