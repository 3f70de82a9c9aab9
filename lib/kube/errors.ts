/**
 * Typed errors for everything kevents asks of the Kubernetes API. Each API
 * failure carries the HTTP code and the `reason` of the Status the server
 * sent, so callers branch on the class (a 409 is a lost race, a 410 means
 * relist) instead of parsing messages.
 *
 * @module
 */

/** The parts of a metav1.Status that kevents reads. */
export interface KubeStatus {
  kind?: string;
  apiVersion?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
    retryAfterSeconds?: number;
  };
  metadata?: { continue?: string };
}

/** What request failed, for messages. */
export interface RequestDescription {
  method: string;
  path: string;
}

/** An error answered by the API server, with its Status. */
export class KubeApiError extends Error {
  /** HTTP status code. */
  readonly code: number;
  /** Status reason (NotFound, Conflict, Expired, Forbidden...); "Unknown" when the body was not a Status. */
  readonly reason: string;
  /** The Status object, when the server sent one. */
  readonly status: KubeStatus | undefined;
  /** Seconds the server asked us to wait (Retry-After or details.retryAfterSeconds). */
  readonly retryAfterSeconds: number | undefined;
  readonly request: RequestDescription | undefined;

  constructor(
    code: number,
    status: KubeStatus | undefined,
    request?: RequestDescription,
    retryAfterSeconds?: number,
    bodyExcerpt?: string,
  ) {
    const reason = status?.reason ?? "Unknown";
    const detail = status?.message ?? bodyExcerpt ?? "";
    const where = request === undefined ? "" : `${request.method} ${request.path}: `;
    super(`${where}${code} ${reason}${detail === "" ? "" : `: ${detail}`}`);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds ?? status?.details?.retryAfterSeconds;
    this.request = request;
  }
}

/** 400: the request was malformed. */
export class BadRequestError extends KubeApiError {}
/** 401: the credentials were refused. */
export class UnauthorizedError extends KubeApiError {}
/** 403: RBAC does not allow the request; the message names the verb and resource. */
export class ForbiddenError extends KubeApiError {}
/** 404: the object or resource does not exist. */
export class NotFoundError extends KubeApiError {}
/** 409 AlreadyExists: a create found the name taken. */
export class AlreadyExistsError extends KubeApiError {}
/** 409 Conflict: the resourceVersion we sent is stale (we lost a compare-and-swap). */
export class ConflictError extends KubeApiError {}
/** 410 Expired/Gone: the resourceVersion is older than the server's history. */
export class GoneError extends KubeApiError {}
/** 422: the object failed validation. */
export class InvalidError extends KubeApiError {}
/** 429: the server is throttling us. */
export class TooManyRequestsError extends KubeApiError {}
/** 5xx (and 504 Timeout): the server failed; retrying later may work. */
export class ServerError extends KubeApiError {}

/** The request never got an answer: connection refused or reset, DNS, TLS. */
export class KubeNetworkError extends Error {
  readonly request: RequestDescription | undefined;
  constructor(message: string, options: { cause?: unknown; request?: RequestDescription } = {}) {
    super(message, { cause: options.cause });
    this.name = "KubeNetworkError";
    this.request = options.request;
  }
}

/** The request took longer than its timeout. */
export class KubeTimeoutError extends Error {
  readonly timeoutMs: number;
  readonly request: RequestDescription | undefined;
  constructor(timeoutMs: number, request?: RequestDescription) {
    const where = request === undefined ? "Request" : `${request.method} ${request.path}`;
    super(`${where}: no answer within ${timeoutMs} ms`);
    this.name = "KubeTimeoutError";
    this.timeoutMs = timeoutMs;
    this.request = request;
  }
}

/** A watch stream carried something that is not a valid watch event. */
export class WatchDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WatchDecodeError";
  }
}

/** A watch stream sent no byte for longer than its idle limit. */
export class WatchStalledError extends Error {
  readonly idleMs: number;
  constructor(idleMs: number) {
    super(`Watch sent nothing for ${idleMs} ms`);
    this.name = "WatchStalledError";
    this.idleMs = idleMs;
  }
}

function parseStatus(body: string): KubeStatus | undefined {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed !== null && typeof parsed === "object" && (parsed as KubeStatus).kind === "Status") {
      return parsed as KubeStatus;
    }
  } catch {
    // Not JSON (an HTML error page from a proxy, say): the caller keeps an excerpt instead.
  }
  return undefined;
}

function classFor(code: number, reason: string | undefined): typeof KubeApiError {
  switch (code) {
    case 400:
      return BadRequestError;
    case 401:
      return UnauthorizedError;
    case 403:
      return ForbiddenError;
    case 404:
      return NotFoundError;
    case 409:
      return reason === "AlreadyExists" ? AlreadyExistsError : ConflictError;
    case 410:
      return GoneError;
    case 422:
      return InvalidError;
    case 429:
      return TooManyRequestsError;
  }
  return code >= 500 ? ServerError : KubeApiError;
}

/** Builds the typed error for a Status (from a response body or a watch ERROR event). */
export function errorFromStatus(
  status: KubeStatus,
  request?: RequestDescription,
  retryAfterSeconds?: number,
): KubeApiError {
  const code = status.code ?? 500;
  const Class = classFor(code, status.reason);
  return new Class(code, status, request, retryAfterSeconds);
}

/** Builds the typed error for a failed HTTP response. */
export function errorFromResponse(
  code: number,
  body: string,
  retryAfterHeader: string | null,
  request?: RequestDescription,
): KubeApiError {
  const status = parseStatus(body);
  const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader)
    ? Number(retryAfterHeader)
    : undefined;
  const Class = classFor(code, status?.reason);
  const excerpt = status === undefined ? body.slice(0, 200).trim() : undefined;
  return new Class(code, status, request, retryAfter, excerpt);
}
