/**
 * Kubernetes `Status` objects as kube-apiserver writes them for failures,
 * with the same reasons, codes and message formats.
 *
 * @module
 */

import { qualifiedResource, type ResourceType } from "./resources.ts";

/** A metav1.Status cause. */
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** A metav1.Status object. */
export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: { continue?: string; resourceVersion?: string };
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

/** An error the request handlers throw; the server answers it with its Status. */
export class StatusError extends Error {
  /** The Status sent to the client. */
  readonly status: Status;
  /** Extra response headers, such as Retry-After. */
  readonly headers: Record<string, string>;
  constructor(status: Status, headers: Record<string, string> = {}) {
    super(status.message);
    this.name = "StatusError";
    this.status = status;
    this.headers = headers;
  }
}

type Target = Pick<ResourceType, "group" | "resource">;

function failure(
  code: number,
  reason: string,
  message: string,
  details?: Status["details"],
): Status {
  // Keep the field order of the real server: details (when set) before code.
  const head = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure" } as const;
  return details === undefined
    ? { ...head, message, reason, code }
    : { ...head, message, reason, details, code };
}

function detailsOf(t: Target, name: string): NonNullable<Status["details"]> {
  // Empty fields are omitted on the wire, as Go's omitempty does.
  return {
    ...(name === "" ? {} : { name }),
    ...(t.group === "" ? {} : { group: t.group }),
    kind: t.resource,
  };
}

/** 404 for a missing object: `configmaps "x" not found`. */
export function notFound(t: Target, name: string): StatusError {
  return new StatusError(
    failure(404, "NotFound", `${qualifiedResource(t)} "${name}" not found`, detailsOf(t, name)),
  );
}

/** 404 for a path the server does not serve. */
export function pathNotFound(): StatusError {
  return new StatusError(
    failure(404, "NotFound", "the server could not find the requested resource", {}),
  );
}

/** 409 AlreadyExists for a create of an existing name. */
export function alreadyExists(t: Target, name: string): StatusError {
  return new StatusError(
    failure(
      409,
      "AlreadyExists",
      `${qualifiedResource(t)} "${name}" already exists`,
      detailsOf(t, name),
    ),
  );
}

/** 409 Conflict for a stale resourceVersion (optimistic concurrency). */
export function conflict(t: Target, name: string, detail?: string): StatusError {
  const why = detail ??
    "the object has been modified; please apply your changes to the latest version and try again";
  return new StatusError(
    failure(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualifiedResource(t)} "${name}": ${why}`,
      detailsOf(t, name),
    ),
  );
}

/** 400 BadRequest with the given message. */
export function badRequest(message: string): StatusError {
  return new StatusError(failure(400, "BadRequest", message));
}

/** 422 Invalid, as for a failed validation of a field. */
export function invalid(
  kind: string,
  t: Target,
  name: string,
  causes: Required<StatusCause>[],
): StatusError {
  const summary = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
  const list = causes.length === 1 ? summary : `[${summary}]`;
  return new StatusError(
    failure(422, "Invalid", `${kind} "${name}" is invalid: ${list}`, {
      ...detailsOf(t, name),
      kind,
      causes,
    }),
  );
}

/** 410 Expired (too old resourceVersion, compacted history). */
export function expired(message: string): StatusError {
  return new StatusError(failure(410, "Expired", message));
}

/** 415 for a body in a media type the server does not accept. */
export function unsupportedMediaType(_contentType: string, accepted: string[]): StatusError {
  // The real server names the accepted types only: no details.
  return new StatusError(
    failure(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: ${
        accepted.join(", ")
      }`,
    ),
  );
}

/** 405 for a verb the resource does not support. */
export function methodNotAllowed(): StatusError {
  return new StatusError(
    failure(
      405,
      "MethodNotAllowed",
      "the server does not allow this method on the requested resource",
      {},
    ),
  );
}

/** 401 for a missing or unknown bearer token. */
export function unauthorized(): StatusError {
  return new StatusError(failure(401, "Unauthorized", "Unauthorized"));
}

/** 403 as the RBAC authorizer answers it. */
export function forbidden(
  target: { group: string; resource: string; name: string } | null,
  reason: string,
): StatusError {
  if (target === null) {
    return new StatusError(failure(403, "Forbidden", `forbidden: ${reason}`, {}));
  }
  const what = target.name === ""
    ? `${qualifiedResource(target)} is forbidden: ${reason}`
    : `${qualifiedResource(target)} "${target.name}" is forbidden: ${reason}`;
  return new StatusError(failure(403, "Forbidden", what, detailsOf(target, target.name)));
}

/** 429 TooManyRequests with Retry-After. */
export function tooManyRequests(retryAfterSeconds: number): StatusError {
  return new StatusError(
    failure(429, "TooManyRequests", "Too many requests, please try again later.", {
      retryAfterSeconds,
    }),
    { "Retry-After": String(retryAfterSeconds) },
  );
}

/** 500 InternalError. */
export function internalError(message: string): StatusError {
  return new StatusError(
    failure(500, "InternalError", `Internal error occurred: ${message}`, {
      causes: [{ message }],
    }),
  );
}

/** 503 ServiceUnavailable, optionally with Retry-After. */
export function serviceUnavailable(message: string, retryAfterSeconds?: number): StatusError {
  const headers: Record<string, string> = retryAfterSeconds === undefined
    ? {}
    : { "Retry-After": String(retryAfterSeconds) };
  return new StatusError(
    failure(
      503,
      "ServiceUnavailable",
      message,
      retryAfterSeconds === undefined ? undefined : { retryAfterSeconds },
    ),
    headers,
  );
}

/** 504 Timeout for a resourceVersion newer than the server has. */
export function tooLargeResourceVersion(requested: number, current: number): StatusError {
  return new StatusError(
    failure(
      504,
      "Timeout",
      `Timeout: Too large resource version: ${requested}, current: ${current}`,
      {
        causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
        retryAfterSeconds: 1,
      },
    ),
  );
}

/** A Success Status, as returned by DELETE (which, unlike failures, carries no code). */
export function success(t: Target, name: string, uid: string): Omit<Status, "code"> {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { ...detailsOf(t, name), uid },
  };
}
