/**
 * Discovery documents (/version, /api, /apis, /api/v1, /apis/<group>[/<version>])
 * in the legacy (unaggregated) format, which kubectl and client libraries
 * fall back to when the server does not offer aggregated discovery.
 *
 * @module
 */

import { apiGroups, apiVersionOf, RESOURCE_TYPES } from "./resources.ts";

/** The version the fake server reports. */
export const FAKE_VERSION = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-kevents-fake",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "go1.23.0",
  compiler: "gc",
  platform: "linux/amd64",
};

function groupDoc(name: string, versions: string[]) {
  const list = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: list, preferredVersion: list[0] };
}

async function hash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest).slice(0, 8)));
}

/**
 * Answers a discovery path, or returns undefined when the path is not a
 * discovery document.
 */
export async function discovery(path: string, serverAddress: string): Promise<unknown> {
  const p = path.replace(/\/$/, "");
  if (p === "/version") return FAKE_VERSION;
  if (p === "/api") {
    return {
      kind: "APIVersions",
      versions: ["v1"],
      serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
    };
  }
  if (p === "/apis") {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: apiGroups().map((g) => groupDoc(g.name, g.versions)),
    };
  }
  const groupMatch = /^\/apis\/([^/]+)$/.exec(p);
  if (groupMatch !== null) {
    const g = apiGroups().find((x) => x.name === groupMatch[1]);
    return g === undefined
      ? undefined
      : { kind: "APIGroup", apiVersion: "v1", ...groupDoc(g.name, g.versions) };
  }
  const gv = /^\/api\/(v1)$/.exec(p) ?? /^\/apis\/([^/]+\/[^/]+)$/.exec(p);
  if (gv === null) return undefined;
  const groupVersion = gv[1]!;
  const types = RESOURCE_TYPES.filter((t) => apiVersionOf(t) === groupVersion);
  if (types.length === 0) return undefined;
  const resources = await Promise.all(types.map(async (t) => ({
    name: t.resource,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: t.verbs,
    ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
    ...(t.categories !== undefined ? { categories: t.categories } : {}),
    storageVersionHash: await hash(`${groupVersion}/${t.kind}`),
  })));
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion, resources };
}

/**
 * A minimal OpenAPI v3 tree: the root lists one document per group/version,
 * and each document declares, per kind, a PATCH operation that accepts the
 * `fieldValidation` query parameter. That is what kubectl reads to decide
 * that the server validates fields itself (so `kubectl create -f` needs no
 * client-side schema).
 */
export function openApiV3(path: string): unknown {
  const p = path.replace(/\/$/, "");
  const versions = [...new Set(RESOURCE_TYPES.map(apiVersionOf))];
  const keyOf = (gv: string) => (gv.includes("/") ? `apis/${gv}` : `api/${gv}`);
  if (p === "/openapi/v3") {
    return {
      paths: Object.fromEntries(versions.map((gv) => [
        keyOf(gv),
        { serverRelativeURL: `/openapi/v3/${keyOf(gv)}?hash=${gv.replaceAll("/", "-")}` },
      ])),
    };
  }
  const gv = versions.find((v) => p === `/openapi/v3/${keyOf(v)}`);
  if (gv === undefined) return undefined;
  const paths: Record<string, unknown> = {};
  for (const t of RESOURCE_TYPES.filter((x) => apiVersionOf(x) === gv)) {
    const base = `/${keyOf(gv)}${
      t.namespaced ? "/namespaces/{namespace}" : ""
    }/${t.resource}/{name}`;
    paths[base] = {
      patch: {
        operationId: `patch${t.kind}`,
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": { group: t.group, version: t.version, kind: t.kind },
        parameters: [
          { name: "dryRun", in: "query", schema: { type: "string", uniqueItems: true } },
          { name: "fieldManager", in: "query", schema: { type: "string", uniqueItems: true } },
          { name: "fieldValidation", in: "query", schema: { type: "string", uniqueItems: true } },
        ],
        responses: { "200": { description: "OK" } },
      },
    };
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.32.0" },
    paths,
    components: { schemas: {} },
  };
}
