/**
 * The checkpoint-lag settings' rows (lib/checkpoint/lag.ts): the API
 * server's event TTL, which kevents cannot read (it is a kube-apiserver
 * flag, `--event-ttl`, 1 h by default), and the share of it the checkpoint
 * may lag before the leader warns. Their product is the limit that
 * `kevents_checkpoint_lag_limit_seconds` exports, for alerts.
 *
 * @module
 */

import { integerIn } from "./_values.ts";
import type { AnyKeySpec, RawValue } from "./settings.ts";

/**
 * The smallest share: 1% of the TTL (36 s of the default 1 h). Under it the
 * limit falls within the lag the checkpoint has on its own rhythm (its
 * interval, a sink's retries), so the leader would warn about a healthy
 * pump; and the lag is counted to the second, so a limit of a few seconds
 * or less cannot be told apart from no lag at all.
 */
export const MIN_CHECKPOINT_LAG_SHARE = 0.01;

/**
 * A decimal fraction from {@linkcode MIN_CHECKPOINT_LAG_SHARE} to 1, 1
 * excluded ("0.5", ".25"); "", "1", "0.001", "50%" and "1e-1" are refused.
 */
export function lagShare(raw: RawValue): number | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  if (!/^0?\.\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= MIN_CHECKPOINT_LAG_SHARE && n < 1 ? n : undefined;
}

/** The checkpoint-lag rows of the settings table. */
export const CHECKPOINT_LAG_ROWS: readonly AnyKeySpec[] = [
  {
    field: "eventTtlSeconds",
    fileKey: "kevents_event_ttl_seconds",
    envVar: "KEVENTS_EVENT_TTL_SECONDS",
    parse: integerIn(60, 604_800),
    default: 3600,
    rule: "must be an integer number of seconds from 60 to 604800",
    description: "The API server's event TTL (kube-apiserver --event-ttl, 1 h by default): " +
      "events are deleted this long after their last update",
  },
  {
    field: "checkpointLagShare",
    fileKey: "kevents_checkpoint_lag_share",
    envVar: "KEVENTS_CHECKPOINT_LAG_SHARE",
    parse: lagShare,
    default: 0.5,
    rule: "must be a decimal fraction from 0.01 to 1, 1 excluded (such as 0.5)",
    description: "The leader warns, and kevents_checkpoint_lag_limit_seconds says, when the " +
      "checkpoint lags this share of the event TTL behind the events read",
  },
];
