/**
 * What the webhook and OTLP sinks share before and around each request:
 * the receiver's URL (its user info made a Basic Authorization header),
 * the headers every request carries, the texts that must never reach a
 * message, and the fence's headers of one request.
 *
 * @module
 */

import { isSecretHeader, urlSecrets } from "../ops/mod.ts";
import { displayUrl } from "./_http.ts";
import { type Fence, FENCE_HEADERS } from "./sink.ts";

/** Where an HTTP sink POSTs, and with what. */
export interface HttpTarget {
  /** The URL without its user info. */
  url: URL;
  /** Every request's headers. */
  headers: Record<string, string>;
  /** Credentials: every header value the user gave, the user info, the query values. */
  secrets: string[];
}

/** Options of {@linkcode httpTarget}. */
export interface HttpTargetOptions {
  /** Set first: the sink's defaults (Content-Type, User-Agent), which the user's headers replace. */
  defaults: Record<string, string>;
  /** The user's headers. */
  headers?: Readonly<Record<string, string>>;
  /** Set last, over the user's headers (a bearer token's Authorization, a Content-Encoding). */
  overrides?: Readonly<Record<string, string>>;
  /** Values of `overrides` that are credentials whatever their header's name. */
  overrideSecrets?: readonly string[];
}

/**
 * The target of a sink named `sink` (for the error): TypeError unless the
 * URL is http(s). Header names are case-insensitive: a user's
 * "content-type" replaces the default "Content-Type". Any header the user
 * configured may carry a credential, whatever its name, and so may the
 * URL's query values (?token=...): all are secrets.
 */
export function httpTarget(sink: string, rawUrl: string | URL, o: HttpTargetOptions): HttpTarget {
  const url = new URL(rawUrl);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`Cannot create the ${sink} sink: ${displayUrl(url)} is not an http(s) URL`);
  }
  const secrets: string[] = [...urlSecrets(url), ...(o.overrideSecrets ?? [])];
  const headers: Record<string, string> = { ...o.defaults };
  const set = (name: string, value: string) => {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === name.toLowerCase()) delete headers[k];
    }
    headers[name] = value;
    if (isSecretHeader(name)) secrets.push(value);
  };
  if (url.username !== "" || url.password !== "") {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    secrets.push(user, password, url.username, url.password);
    set("Authorization", `Basic ${btoa(`${user}:${password}`)}`);
    url.username = "";
    url.password = "";
  }
  for (const [name, value] of Object.entries(o.headers ?? {})) {
    secrets.push(value);
    set(name, value);
  }
  for (const [name, value] of Object.entries(o.overrides ?? {})) set(name, value);
  return { url, headers, secrets };
}

/** `headers` with the fence's holder and token, when there is a fence: a copy. */
export function fencedHeaders(
  headers: Readonly<Record<string, string>>,
  fence: Fence | undefined,
): Record<string, string> {
  const out: Record<string, string> = { ...headers };
  if (fence !== undefined) {
    out[FENCE_HEADERS.holder] = fence.holder;
    out[FENCE_HEADERS.token] = String(fence.token);
  }
  return out;
}
