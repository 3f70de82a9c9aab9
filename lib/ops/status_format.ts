/**
 * How `kevents status` prints a {@linkcode Status}: an aligned table for
 * people, or one JSON object for scripts.
 *
 * @module
 */

import type { CheckpointStatus, LockStatus, Status, TokenStatus } from "./status.ts";

/** A raw value for a message: quoted, cut at 40 characters. */
export function excerpt(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}

/** "42s", "5m12s", "3h4m", "2d5h"; negative ages (clocks apart) get a minus sign. */
export function formatAge(secondsValue: number): string {
  const sign = secondsValue < 0 ? "-" : "";
  const s = Math.floor(Math.abs(secondsValue));
  if (s < 60) return `${sign}${s}s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${sign}${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${sign}${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** A duration as formatAge writes it, without a zero last part: "1h", "2m", "1h30m", "42s". */
export function formatSpan(secondsValue: number): string {
  return formatAge(secondsValue).replace(/(\d[dhm])0[hms]$/, "$1");
}

function when(time: string | null, age: number | null): string {
  if (time === null) return "-";
  if (age === null) return time;
  return age < 0
    ? `${time} (${formatAge(-age)} ahead of this machine's clock)`
    : `${time} (${formatAge(age)} ago)`;
}

function lockRows(lock: LockStatus): [string, string][] {
  const rows: [string, string][] = [["Lock", lock.object]];
  switch (lock.state) {
    case "absent":
      rows.push(["Holder", "no lock object"]);
      return rows;
    case "invalid":
      rows.push(["Holder", `unreadable: ${lock.problem}`]);
      return rows;
    case "released":
      // Releasing writes the release time into both times and a 1 s duration.
      rows.push(
        ["Holder", "none (released)"],
        ["Released", when(lock.renewTime, lock.renewAgeSeconds)],
        ["Transitions", String(lock.leaderTransitions ?? "-")],
      );
      return rows;
    case "held":
      rows.push(["Holder", lock.holder ?? "-"]);
      break;
  }
  rows.push(
    ["Acquired", when(lock.acquireTime, lock.acquiredAgeSeconds)],
    ["Last renewal", when(lock.renewTime, lock.renewAgeSeconds)],
    ["Lease duration", lock.leaseDurationSeconds === null ? "-" : `${lock.leaseDurationSeconds}s`],
  );
  if (lock.state === "held") {
    rows.push([
      "Expired",
      lock.expiredByLocalClock === null
        ? "unknown (no renewal time)"
        : `${lock.expiredByLocalClock ? "yes" : "no"} (${
          lock.expiredByLocalClock ? "expired" : "expires"
        } ${lock.expiresAt}, judged by this machine's clock)`,
    ]);
  }
  rows.push(["Transitions", String(lock.leaderTransitions ?? "-")]);
  return rows;
}

function tokenRows(token: TokenStatus): [string, string][] {
  const rows: [string, string][] = [["Token", token.object]];
  switch (token.state) {
    case "absent":
      rows.push(["Token RV", "no ConfigMap"]);
      return rows;
    case "empty":
      rows.push(["Token RV", "none yet"]);
      break;
    case "invalid":
      rows.push(["Token RV", `invalid: ${token.problem}`]);
      break;
    case "present":
      rows.push(["Token RV", token.resourceVersion ?? "-"]);
      rows.push([
        "Token time",
        token.timestamp === null
          ? token.problem === null ? "none" : `invalid: ${token.problem}`
          : when(token.timestamp, token.ageSeconds),
      ]);
      break;
  }
  const term = token.term;
  rows.push([
    "Term",
    term === null
      ? "none"
      : term.holder === null
      ? excerpt(term.raw)
      : `${term.holder}, transition ${term.leaderTransitions}, since ${term.startedAt}`,
  ]);
  return rows;
}

function checkpointRows(c: CheckpointStatus): [string, string][] {
  const ahead = c.resourceVersionsAheadOfToken === null || c.resourceVersionsAheadOfToken < 0
    ? ""
    : ` (${c.resourceVersionsAheadOfToken} ahead of the token)`;
  const verdict = { "up-to-date": "up to date", lagging: "lagging", unknown: "unknown" }[c.state];
  return [
    ["Current RV", `${c.currentResourceVersion}${ahead}`],
    ["Checkpoint", `${verdict}: ${c.reason}`],
    ["Checkpoint lag", lagText(c)],
  ];
}

/** "42s (1% of the 1h event TTL, limit 50%)", or "at most ..." when only a bound is known. */
function lagText(c: CheckpointStatus): string {
  const ttl = formatSpan(c.eventTtlSeconds);
  const limit = `${Math.round((100 * c.lagLimitSeconds) / c.eventTtlSeconds)}%`;
  if (c.lagSeconds === null) return `unknown (event TTL ${ttl}, limit ${limit})`;
  const share = `${Math.round((100 * c.lagSeconds) / c.eventTtlSeconds)}% of the ${ttl} event TTL`;
  const bound = c.lagIsUpperBound ? "at most " : "";
  // Over the limit only when measured: a bound proves nothing.
  return c.lagSeconds > c.lagLimitSeconds && !c.lagIsUpperBound
    ? `${formatSpan(c.lagSeconds)} (${share}, over the ${limit} limit: a handover now ` +
      "may lose the events the API server deletes first)"
    : `${bound}${formatSpan(c.lagSeconds)} (${share}, limit ${limit})`;
}

/** Renders a status as an aligned table for people ("text") or one JSON object ("json"). */
export function formatStatus(status: Status, output: "text" | "json"): string {
  if (output === "json") return JSON.stringify(status, null, 2);
  const rows: [string, string][] = [
    ["Server", status.server],
    ["Checked at", status.checkedAt],
    ...lockRows(status.lock),
    ...tokenRows(status.token),
    ...checkpointRows(status.checkpoint),
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, value]) => `${label.padEnd(width)}${value}`).join("\n");
}
