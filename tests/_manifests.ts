/**
 * Shared by the tests of manifests/: reading the plain manifests, and running
 * kubectl (create, kustomize) against fake API servers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import type { FakeApiServer } from "../lib/fake_apiserver/mod.ts";
import type { Json } from "./_fake_api.ts";
import { commandSucceeds } from "./_process.ts";

export const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
export const MANIFESTS = `${ROOT}manifests`;
export const RBAC = `${MANIFESTS}/rbac`;

/** The file names kustomize reads as a kustomization, in the order it looks for them. */
export const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/** Whether `dir` holds a kustomization file: a kustomize root, built with -k, not created with -f. */
export function isKustomizeRoot(dir: string): boolean {
  return KUSTOMIZATION_FILES.some((name) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  });
}

/**
 * Every YAML file under `dir` that `kubectl create -f` takes, sorted: the
 * folders of a kustomization (manifests/base/, manifests/overlays/) are
 * skipped, tests/kustomize_test.ts builds them.
 */
export function manifestFiles(dir = MANIFESTS): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      if (!isKustomizeRoot(path)) files.push(...manifestFiles(path));
    } else if (/\.ya?ml$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/** The documents of multi-document YAML text; fails on any YAML error or warning. */
export function parseManifest(text: string, origin: string): Json[] {
  const docs = Array.from(parseAllDocuments(text));
  assert.ok(docs.length > 0, `${origin} holds no document`);
  return docs.map((doc, i) => {
    assert.deepEqual(doc.errors.map((e) => e.message), [], `${origin} document ${i + 1}`);
    assert.deepEqual(doc.warnings.map((e) => e.message), [], `${origin} document ${i + 1}`);
    const value = doc.toJS();
    assert.ok(
      value !== null && typeof value === "object" && !Array.isArray(value),
      `${origin} document ${i + 1} is not an object`,
    );
    return value;
  });
}

/** The documents of a multi-document YAML file; fails on any YAML error or warning. */
export function readManifest(path: string): Json[] {
  return parseManifest(Deno.readTextFileSync(path), path);
}

/** The one document of a file. */
export function readOne(path: string): Json {
  const docs = readManifest(path);
  assert.equal(docs.length, 1, `${path} holds ${docs.length} documents, expected one`);
  return docs[0];
}

/** The fake server's resource name for each kind the manifests hold. */
export const RESOURCE_OF_KIND: Record<string, string> = {
  Namespace: "namespaces",
  ServiceAccount: "serviceaccounts",
  ClusterRole: "clusterroles.rbac.authorization.k8s.io",
  ClusterRoleBinding: "clusterrolebindings.rbac.authorization.k8s.io",
  ConfigMap: "configmaps",
  DaemonSet: "daemonsets.apps",
  Deployment: "deployments.apps",
};

/** What `kubectl create` prints for an object: `kind.group/name created`. */
export function createdLine(doc: Json): string {
  const group = String(doc.apiVersion).includes("/") ? `.${doc.apiVersion.split("/")[0]}` : "";
  return `${String(doc.kind).toLowerCase()}${group}/${doc.metadata.name} created`;
}

/** Whether kubectl is on PATH; the tests that need it are skipped (and say so) without it. */
export const HAVE_KUBECTL = await commandSucceeds("kubectl", ["version", "--client"]);

/** Options for {@linkcode Kubectl.run}. */
export interface KubectlRunOptions {
  /** The API server to talk to (none for `kubectl kustomize`). */
  server?: FakeApiServer;
  /** Written to kubectl's standard input (for `-f -`). */
  stdin?: string;
}

/** Runs kubectl from a temporary HOME that holds the kubeconfig of the server it talks to. */
export class Kubectl implements AsyncDisposable {
  readonly #home: string;

  private constructor(home: string) {
    this.#home = home;
  }

  /** A kubectl with a fresh temporary HOME, removed on dispose. */
  static async start(): Promise<Kubectl> {
    return new Kubectl(await Deno.makeTempDir({ prefix: "kevents-kubectl-" }));
  }

  /** Runs `kubectl args...`; fails unless it exits 0; returns its standard output. */
  async run(args: readonly string[], options: KubectlRunOptions = {}): Promise<string> {
    const kubeconfig = `${this.#home}/kubeconfig`;
    await Deno.writeTextFile(kubeconfig, options.server?.kubeconfig() ?? "");
    const child = new Deno.Command("kubectl", {
      args: [...args],
      env: { KUBECONFIG: kubeconfig, HOME: this.#home },
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    }
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `kubectl ${args.join(" ")}:\n${stdout}\n${stderr}`);
    return stdout;
  }

  /** `kubectl create -f`, sorted lines of what it printed ("kind.group/name created"). */
  async create(server: FakeApiServer, path: string, stdin?: string): Promise<string[]> {
    const stdout = await this.run(["create", "-f", path], { server, stdin });
    return stdout.trim().split("\n").sort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.#home, { recursive: true });
  }
}
