/**
 * The operations room: what an operator sees and touches while kevents
 * runs. The health server (/healthz, /readyz, /metrics) and the liveness it
 * reports, the Prometheus metrics (metrics.ts on prometheus.ts), logging
 * with redaction of secrets (log.ts, redact.ts), `kevents status`
 * (status.ts) and the control-plane service check.
 *
 * @module
 */

export { runControlPlaneCheck, serviceCheckSinks } from "./control_plane_check.ts";
export { type HealthServer, startHealthServer } from "./health_server.ts";
export { Liveness } from "./liveness.ts";
export { addLogSecrets, logLevelFrom, setupLogging, teardownLogging } from "./log.ts";
export { eventTypeLabel, Metrics } from "./metrics.ts";
export { isSecretHeader, redact, urlSecrets } from "./redact.ts";
export { formatStatus, readStatus, StatusReadError } from "./status.ts";
