/**
 * A fake Kubernetes API server for tests, demos and benchmarks: a real
 * HTTP(S) server on 127.0.0.1 speaking the Kubernetes wire format, so code
 * under test (and kubectl) cannot tell it from kube-apiserver for what
 * kevents uses.
 *
 * What it serves: core/v1 events, configmaps, endpoints, namespaces,
 * componentstatuses and serviceaccounts; coordination.k8s.io/v1 leases;
 * rbac.authorization.k8s.io/v1 roles and bindings and apps/v1 daemonsets and
 * deployments (stored as data); events.k8s.io/v1 events (a view of the core
 * ones). Verbs get, list (limit/continue, field and label selectors), watch
 * (replay from a resourceVersion, bookmarks, timeouts, 410 after
 * compaction), create, update, patch (merge, strategic-as-merge, JSON
 * patch), delete and deletecollection; discovery and server-side Tables for
 * kubectl; TLS with a generated CA; bearer tokens with RBAC-like rules; an
 * event TTL; an event generator; fault controls; and a request log.
 *
 * @example
 * ```ts
 * import { startFakeApiServer } from "./lib/fake_apiserver/mod.ts";
 * await using server = await startFakeApiServer();
 * await Deno.writeTextFile("/tmp/kubeconfig", server.kubeconfig());
 * ```
 *
 * @module
 */

export {
  type ArrivedRequest,
  type FailureRule,
  FakeApiServer,
  type FakeApiServerOptions,
  type HoldOptions,
  HTML_PAGE,
  type KubeconfigOptions,
  type RequestHold,
  type RequestRule,
  type RunningGenerator,
  startFakeApiServer,
  type WatchFault,
  type WatchFaultRule,
} from "./server.ts";
export { NON_JSON_LINE } from "./watch.ts";
export type { PolicyRule, UserSpec } from "./auth.ts";
export {
  type CoreEvent,
  EventGenerator,
  type EventGeneratorOptions,
  type GeneratedChange,
} from "./event_generator.ts";
export type { RequestFilter, RequestLog, RequestLogEntry } from "./request_log.ts";
export type { Change, KubeObject, Store, StoredRecord } from "./store.ts";
export { formatMicroTime, formatTime } from "./objects.ts";
export { auditDeliveries, type DeliveryAudit, generatedEventKeys } from "./audit.ts";
