/**
 * PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (applied
 * as a merge patch: lists are replaced, not merged by key) and JSON patch
 * (RFC 6902).
 *
 * @module
 */

import { badRequest, StatusError } from "./status.ts";

/** The patch media types the fake API server accepts. */
export const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
] as const;

/** Applies an RFC 7386 merge patch; returns a new value. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete base[k];
    else base[k] = mergePatch(base[k], v);
  }
  return base;
}

function unescape(token: string): string {
  return token.replaceAll("~1", "/").replaceAll("~0", "~");
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw badRequest(`JSON pointer must start with "/": ${pointer}`);
  return pointer.slice(1).split("/").map(unescape);
}

type Container = Record<string, unknown> | unknown[];

function resolveParent(doc: unknown, path: string[], op: string): [Container, string] {
  let cur = doc;
  for (const part of path.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(part)];
    else if (cur !== null && typeof cur === "object") {
      cur = (cur as Record<string, unknown>)[part];
    } else cur = undefined;
    if (cur === undefined) {
      throw unprocessable(
        `${op} operation does not apply: doc is missing path: /${path.join("/")}`,
      );
    }
  }
  if (cur === null || typeof cur !== "object") {
    throw unprocessable(`${op} operation does not apply: doc is missing path: /${path.join("/")}`);
  }
  return [cur as Container, path[path.length - 1]!];
}

/**
 * A JSON patch that does not apply. The real server answers a generic 422
 * and drops the patch library's message (`detail`), so clients see only this.
 */
function unprocessable(_detail: string): StatusError {
  return new StatusError({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: "the server rejected our request due to an error in our request",
    reason: "Invalid",
    details: {},
    code: 422,
  });
}

function getAt(doc: unknown, pointer: string, op: string): unknown {
  let cur = doc;
  for (const part of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[Number(part)];
    else if (cur !== null && typeof cur === "object") {
      cur = (cur as Record<string, unknown>)[part];
    } else cur = undefined;
    if (cur === undefined) {
      throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}`);
    }
  }
  return cur;
}

function removeAt(doc: unknown, pointer: string, op: string): unknown {
  const path = parsePointer(pointer);
  const [parent, key] = resolveParent(doc, path, op);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) {
      throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}`);
    }
    return parent.splice(i, 1)[0];
  }
  if (!(key in parent)) {
    throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}`);
  }
  const old = parent[key];
  delete parent[key];
  return old;
}

function addAt(doc: unknown, pointer: string, value: unknown, replace: boolean): unknown {
  const path = parsePointer(pointer);
  if (path.length === 0) return value;
  const op = replace ? "replace" : "add";
  const [parent, key] = resolveParent(doc, path, op);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i === parent.length)) {
      throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}`);
    }
    parent.splice(i, replace ? 1 : 0, value);
  } else {
    if (replace && !(key in parent)) {
      throw unprocessable(`${op} operation does not apply: doc is missing key: ${pointer}`);
    }
    parent[key] = value;
  }
  return doc;
}

/** Applies an RFC 6902 JSON patch; returns a new value. */
export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  }
  let doc = structuredClone(target);
  for (const raw of patch) {
    const op = raw as { op?: string; path?: string; from?: string; value?: unknown };
    if (typeof op.path !== "string") throw badRequest("missing path in JSON patch operation");
    switch (op.op) {
      case "add":
        doc = addAt(doc, op.path, structuredClone(op.value), false);
        break;
      case "replace":
        doc = addAt(doc, op.path, structuredClone(op.value), true);
        break;
      case "remove":
        removeAt(doc, op.path, "remove");
        break;
      case "move": {
        const value = removeAt(doc, op.from ?? "", "move");
        doc = addAt(doc, op.path, value, false);
        break;
      }
      case "copy":
        doc = addAt(doc, op.path, structuredClone(getAt(doc, op.from ?? "", "copy")), false);
        break;
      case "test":
        if (JSON.stringify(getAt(doc, op.path, "test")) !== JSON.stringify(op.value)) {
          throw unprocessable(`testing value ${op.path} failed: test failed`);
        }
        break;
      default:
        throw badRequest(`Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}
