/**
 * Parses a request URL and method into the attributes kube-apiserver
 * authorizes and routes on (its RequestInfo): verb, group, version,
 * resource, subresource, namespace and name.
 *
 * @module
 */

/** The attributes of one request. */
export interface RequestInfo {
  isResourceRequest: boolean;
  /** Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection; or the lowercased HTTP method for non-resource paths. */
  verb: string;
  group: string;
  version: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  path: string;
  /** True when the URL used the legacy `/watch/` prefix. */
  legacyWatch: boolean;
}

function isWatchParam(params: URLSearchParams): boolean {
  const v = params.get("watch");
  return v !== null && v !== "" && v !== "false" && v !== "0";
}

/** Parses a request; non-resource paths (discovery, health) come back with isResourceRequest false. */
export function parseRequestInfo(method: string, url: URL): RequestInfo {
  const path = url.pathname;
  const info: RequestInfo = {
    isResourceRequest: false,
    verb: method.toLowerCase(),
    group: "",
    version: "",
    resource: "",
    subresource: "",
    namespace: "",
    name: "",
    path,
    legacyWatch: false,
  };
  let parts = path.split("/").filter((p) => p !== "").map(decodeURIComponent);
  if (parts[0] === "api") {
    if (parts.length < 3) return info;
    info.version = parts[1]!;
    parts = parts.slice(2);
  } else if (parts[0] === "apis") {
    if (parts.length < 4) return info;
    info.group = parts[1]!;
    info.version = parts[2]!;
    parts = parts.slice(3);
  } else {
    return info;
  }
  info.isResourceRequest = true;
  if (parts[0] === "watch") {
    info.legacyWatch = true;
    parts = parts.slice(1);
  }
  // /namespaces/{ns}/{resource}/... is namespaced unless it is the namespace object itself.
  if (parts[0] === "namespaces" && parts.length >= 3) {
    info.namespace = parts[1]!;
    parts = parts.slice(2);
  }
  info.resource = parts[0] ?? "";
  info.name = parts[1] ?? "";
  info.subresource = parts.slice(2).join("/");
  if (info.resource === "namespaces" && info.name !== "") info.namespace = info.name;
  const params = url.searchParams;
  switch (method) {
    case "GET":
    case "HEAD":
      if (info.legacyWatch || isWatchParam(params)) info.verb = "watch";
      else info.verb = info.name === "" ? "list" : "get";
      break;
    case "POST":
      info.verb = "create";
      break;
    case "PUT":
      info.verb = "update";
      break;
    case "PATCH":
      info.verb = "patch";
      break;
    case "DELETE":
      info.verb = info.name === "" ? "deletecollection" : "delete";
      break;
  }
  // A list or watch of one object by name is authorized as that name.
  if ((info.verb === "list" || info.verb === "watch") && info.name === "") {
    const selector = params.get("fieldSelector") ?? "";
    const m = /^metadata\.name==?([^,]+)$/.exec(selector);
    if (m !== null) info.name = m[1]!;
  }
  return info;
}
