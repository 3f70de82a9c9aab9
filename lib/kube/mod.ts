/**
 * The Kubernetes room: finding, reading and checking the kubeconfig
 * (kubeconfig.ts, kubeconfig_file.ts, exec_credential.ts), the HTTP/1.1
 * pool requests go through (http_transport.ts), the API client with its
 * timeouts and AbortSignals (client.ts), the watch stream reader
 * (watch_stream.ts, json_scan.ts) and the typed errors every failure maps
 * to (errors.ts).
 *
 * @module
 */

export {
  COMPONENT_STATUSES,
  CONFIGMAPS,
  ENDPOINTS,
  EVENTS,
  KubeClient,
  LEASES,
  type ResourceRef,
  type TextAnswer,
} from "./client.ts";
export {
  AlreadyExistsError,
  BadRequestError,
  ConflictError,
  ForbiddenError,
  GoneError,
  InvalidError,
  KubeApiError,
  KubeNetworkError,
  NotFoundError,
  UnauthorizedError,
  WatchStalledError,
} from "./errors.ts";
export {
  describeNetworkError,
  type HttpResponse,
  type HttpTransport,
  openTransport,
} from "./http_transport.ts";
export {
  KubeConfigError,
  type LoadedKubeConfig,
  loadKubeConfig,
  PooledKubeConfig,
  SERVICE_ACCOUNT_DIR,
} from "./kubeconfig.ts";
export type { WatchEvent } from "./watch_stream.ts";
