/**
 * How a secret setting's value is shown in messages instead of as given:
 * the `mask` of a row of the settings table.
 *
 * @module
 */

import type { RawValue } from "./settings.ts";

/** Shows a secret as its length and last 4 characters (none when it is short). */
export function maskSecret(raw: RawValue | undefined): string {
  if (typeof raw !== "string") return "(hidden)";
  const text = raw.trim();
  const tail = text.length >= 16 ? text.slice(-4) : "";
  return `"****${tail}" (${text.length} characters, hidden)`;
}

/** Shows a URL without the password of its user info and without its query. */
export function maskUrl(raw: RawValue | undefined): string {
  if (typeof raw !== "string") return "(hidden)";
  return JSON.stringify(
    raw.replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:****@").replace(/\?.*$/, "?****"),
  );
}

/** Shows headers by name only: any value may be a credential. */
export function maskHeaders(raw: RawValue | undefined): string {
  if (raw === undefined) return "(hidden)";
  const items = typeof raw === "string" ? raw.split(",") : raw;
  return JSON.stringify(
    items.map((item) => (item.includes("=") ? `${item.slice(0, item.indexOf("="))}=****` : "****"))
      .join(","),
  );
}
