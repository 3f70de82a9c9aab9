/**
 * Bearer-token authentication and RBAC-style authorization for the fake API
 * server, with the 401 and 403 answers of the real one.
 *
 * @module
 */

import type { RequestInfo } from "./request_info.ts";
import { forbidden, unauthorized } from "./status.ts";

/** A ClusterRole rule. */
export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** A user the fake server knows by bearer token. */
export interface UserSpec {
  name: string;
  token: string;
  /** What the user may do; undefined grants everything (like system:masters). */
  rules?: PolicyRule[];
}

/** Paths any caller may GET, as the system:public-info-viewer role allows. */
const PUBLIC_PATHS = ["/healthz", "/livez", "/readyz", "/version"];
/** Paths any authenticated caller may GET, as system:discovery allows. */
const DISCOVERY_PREFIXES = ["/api", "/apis", "/openapi"];

function matches(list: string[] | undefined, value: string): boolean {
  return list !== undefined && (list.includes("*") || list.includes(value));
}

function ruleAllows(rule: PolicyRule, info: RequestInfo): boolean {
  if (!matches(rule.verbs, info.verb)) return false;
  if (!info.isResourceRequest) {
    return (rule.nonResourceURLs ?? []).some((u) =>
      u === "*" || u === info.path || (u.endsWith("*") && info.path.startsWith(u.slice(0, -1)))
    );
  }
  if (!matches(rule.apiGroups, info.group)) return false;
  const resource = info.subresource === "" ? info.resource : `${info.resource}/${info.subresource}`;
  const resourceOk = (rule.resources ?? []).some((r) =>
    r === "*" || r === resource ||
    (info.subresource !== "" && r === `*/${info.subresource}`)
  );
  if (!resourceOk) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || (info.name !== "" && names.includes(info.name));
}

function isPublic(info: RequestInfo, authenticated: boolean): boolean {
  if (info.isResourceRequest || info.verb !== "get") return false;
  const p = info.path.replace(/\/$/, "");
  if (PUBLIC_PATHS.some((x) => p === x || p.startsWith(x + "/"))) return true;
  return authenticated && DISCOVERY_PREFIXES.some((x) => p === x || p.startsWith(x + "/"));
}

function forbiddenReason(user: string, info: RequestInfo): string {
  if (!info.isResourceRequest) {
    return `User "${user}" cannot ${info.verb} path "${info.path}"`;
  }
  const resource = info.subresource === "" ? info.resource : `${info.resource}/${info.subresource}`;
  const scope = info.namespace === ""
    ? "at the cluster scope"
    : `in the namespace "${info.namespace}"`;
  return `User "${user}" cannot ${info.verb} resource "${resource}" in API group "${info.group}" ${scope}`;
}

/** Options for {@linkcode Authenticator}. */
export interface AuthenticatorOptions {
  /**
   * Requests without a token: false answers 401 (default); true treats them
   * as system:anonymous; "admin" as the admin user, as an API server behind
   * `kubectl proxy` sees them (the proxy authenticates on their behalf).
   */
  anonymousAuth?: boolean | "admin";
}

/** Maps bearer tokens to users and decides what each may do. */
export class Authenticator {
  #byToken = new Map<string, UserSpec>();
  #anonymous: boolean | "admin";

  constructor(users: UserSpec[], options: AuthenticatorOptions = {}) {
    for (const u of users) this.#byToken.set(u.token, u);
    this.#anonymous = options.anonymousAuth ?? false;
  }

  /** Adds or replaces a user. */
  set(user: UserSpec): void {
    for (const [token, u] of this.#byToken) if (u.name === user.name) this.#byToken.delete(token);
    this.#byToken.set(user.token, user);
  }

  /** The user with this name, if known. */
  user(name: string): UserSpec | undefined {
    return [...this.#byToken.values()].find((u) => u.name === name);
  }

  /** Identifies the caller; throws a 401 StatusError when it cannot. */
  authenticate(authorization: string | null): { name: string; rules?: PolicyRule[] } {
    if (authorization === null || authorization === "") {
      if (this.#anonymous === "admin") return this.user("admin") ?? { name: "admin" };
      if (this.#anonymous) return { name: "system:anonymous", rules: [] };
      throw unauthorized();
    }
    const m = /^Bearer\s+(\S+)$/i.exec(authorization);
    const user = m === null ? undefined : this.#byToken.get(m[1]!);
    if (user === undefined) throw unauthorized();
    return user;
  }

  /** Throws a 403 StatusError when the user may not make this request. */
  authorize(user: { name: string; rules?: PolicyRule[] }, info: RequestInfo): void {
    if (isPublic(info, user.name !== "system:anonymous")) return;
    if (user.rules === undefined) return;
    if (user.rules.some((r) => ruleAllows(r, info))) return;
    const reason = forbiddenReason(user.name, info);
    throw forbidden(
      info.isResourceRequest
        ? { group: info.group, resource: info.resource, name: info.name }
        : null,
      reason,
    );
  }
}
