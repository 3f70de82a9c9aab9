/**
 * The token the checkpoint ConfigMap holds, in the Datadog Agent's format:
 * its data keys, reading it from a ConfigMap's data (a bad value is ignored
 * with a warning, never trusted), and what makes a ConfigMap unable to hold
 * it.
 *
 * @module
 */

import type { V1ConfigMap } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["kevents", "checkpoint"]);

/** The ConfigMap data key of the resourceVersion. */
export const TOKEN_KEY = "event.tokenKey";
/** The ConfigMap data key of the last event's time. */
export const TOKEN_TIMESTAMP = "event.tokenTimestamp";
/** The annotation a leader stamps its term into. */
export const TERM_ANNOTATION = "kevents.io/term";
/**
 * How far in the future a token's time may be before it is ignored: clocks
 * of nodes and replicas differ by seconds, rarely by minutes.
 */
export const TOKEN_TIME_SKEW_MS = 5 * 60 * 1000;

/** A position in the event stream. */
export interface Token {
  /** Opaque resourceVersion. */
  resourceVersion: string;
  /** RFC 3339 time of the last delivered event, if known. */
  timestamp: string | undefined;
}

/** Options of {@linkcode tokenFromData}. */
export interface TokenFromDataOptions {
  /** The time now, in ms since the epoch (default `Date.now()`), to spot a time in the future. */
  now?: number;
}

/**
 * Reads a token from ConfigMap data; undefined for absent, empty, "0" or
 * garbage (logged as a warning). A time more than
 * {@linkcode TOKEN_TIME_SKEW_MS} in the future is dropped with a warning:
 * after a 410 without integer resourceVersions, the pump delivers again
 * what is not older than the token's time, and a time in the future would
 * make it skip every event up to then.
 */
export function tokenFromData(
  data: Record<string, string> | undefined,
  options: TokenFromDataOptions = {},
): Token | undefined {
  const rv = data?.[TOKEN_KEY]?.trim() ?? "";
  if (rv === "" || rv === "0") return undefined;
  // A resourceVersion is opaque, but one with whitespace, control characters
  // or kilobytes of text is not one any API server handed out; nor is one
  // that reads as a number yet is no unsigned integer ("-1", "1e9", "12.5"):
  // the numeric ones are etcd revisions.
  const numberLike = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(rv) && !/^\d+$/.test(rv);
  if (rv.length > 256 || !/^[\x21-\x7e]+$/.test(rv) || numberLike) {
    log.warn("Ignoring the checkpoint: {key} holds {value}, which is not a resourceVersion", {
      key: TOKEN_KEY,
      value: rv.slice(0, 40),
    });
    return undefined;
  }
  const ts = data?.[TOKEN_TIMESTAMP]?.trim();
  const at = ts === undefined || ts === "" ? NaN : Date.parse(ts);
  let valid = !Number.isNaN(at);
  if (ts !== undefined && ts !== "" && !valid) {
    log.warn("Ignoring {key}: {value} is not a time", {
      key: TOKEN_TIMESTAMP,
      value: ts.slice(0, 40),
    });
  }
  const now = options.now ?? Date.now();
  if (valid && at > now + TOKEN_TIME_SKEW_MS) {
    valid = false;
    log.warn(
      "Ignoring {key}: {value} is more than {skew} s in the future; events are not ruled out by time",
      { key: TOKEN_TIMESTAMP, value: ts!.slice(0, 40), skew: TOKEN_TIME_SKEW_MS / 1000 },
    );
  }
  return { resourceVersion: rv, timestamp: valid ? ts : undefined };
}

/** Why a ConfigMap cannot hold the token; undefined when it can. */
export function unusableReason(cm: V1ConfigMap): string | undefined {
  if (cm.immutable === true) {
    return "it is immutable (immutable: true), so its data cannot change; delete it (kevents " +
      "creates it again) or recreate it without immutable";
  }
  if (cm.binaryData?.[TOKEN_KEY] !== undefined) {
    return `it holds ${TOKEN_KEY} in binaryData, where kevents (and the Datadog Agent) neither ` +
      `reads nor writes it; move it to data or delete the ConfigMap (kevents creates it again)`;
  }
  return undefined;
}

/** The token in `binaryData` (base64), read once so that a term can resume from it. */
export function binaryToken(cm: V1ConfigMap, now: number): Token | undefined {
  const encoded = cm.binaryData?.[TOKEN_KEY];
  if (encoded === undefined || cm.data?.[TOKEN_KEY] !== undefined) return undefined;
  const decode = (b64: string | undefined) => {
    if (b64 === undefined) return undefined;
    try {
      return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    } catch {
      return undefined;
    }
  };
  const data: Record<string, string> = {};
  const rv = decode(encoded);
  if (rv !== undefined) data[TOKEN_KEY] = rv;
  const ts = cm.data?.[TOKEN_TIMESTAMP] ?? decode(cm.binaryData?.[TOKEN_TIMESTAMP]);
  if (ts !== undefined) data[TOKEN_TIMESTAMP] = ts;
  return tokenFromData(data, { now });
}

/** Whether the data holds a token that {@linkcode tokenFromData} refused (garbage, not "0" or empty). */
export function refusedToken(data: Record<string, string> | undefined): boolean {
  const rv = data?.[TOKEN_KEY]?.trim() ?? "";
  return rv !== "" && rv !== "0";
}
